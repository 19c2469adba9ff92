package testenv

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestKdigTLS(t *testing.T) {
	t.Parallel()
	RequireTool(t, "kdig", "knot-dnsutils")
	u := UnboundT(t, UnboundOptions{})
	other, err := NewCA("unknown CA")
	if err != nil {
		t.Fatal(err)
	}
	otherFile := t.TempDir() + "/other.pem"
	if err := other.WriteFile(otherFile); err != nil {
		t.Fatal(err)
	}
	ok := u.KdigQuery(NameMulti, "A")
	tests := []struct {
		name   string
		change func(*KdigQuery)
		fails  bool
	}{
		{"CA and name", func(*KdigQuery) {}, false},
		{"IP SAN", func(q *KdigQuery) { q.TLSName = "127.0.0.1" }, false},
		{"pin", func(q *KdigQuery) { q.CAFile, q.TLSName, q.Pin = "", "", u.Leaf.Pin }, false},
		{"other name", func(q *KdigQuery) { q.TLSName = "other.delve.test" }, true},
		{"unknown CA", func(q *KdigQuery) { q.CAFile = otherFile }, true},
		{"wrong pin", func(q *KdigQuery) { q.CAFile, q.TLSName, q.Pin = "", "", SPKIPin(u.CA.Cert) }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := ok
			tt.change(&q)
			r, err := Kdig(t.Context(), q)
			if tt.fails {
				if err == nil {
					t.Errorf("kdig succeeded:\n%s", r.Output)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Data("A"); !slices.Equal(got, MultiAddrs) {
				t.Errorf("A data %v, want %v", got, MultiAddrs)
			}
		})
	}
	t.Run("short", func(t *testing.T) {
		t.Parallel()
		q := u.KdigQuery(NameMulti, "A")
		q.Short = true
		r, err := Kdig(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.Short, MultiAddrs) {
			t.Errorf("+short %q, want %q", r.Short, MultiAddrs)
		}
		q = u.KdigQuery(Zone, "MX")
		q.Short = true
		if r, err := Kdig(t.Context(), q); err != nil || !slices.Equal(r.Short, []string{MXData}) {
			t.Errorf("+short MX: %q %v", r.Short, err)
		}
	})
	t.Run("stopped server", func(t *testing.T) {
		u := UnboundT(t, UnboundOptions{})
		u.Stop()
		if r, err := Kdig(t.Context(), u.KdigQuery(NameA, "A")); err == nil {
			t.Errorf("kdig against a stopped server succeeded:\n%s", r.Output)
		}
	})
}

func TestDig(t *testing.T) {
	t.Parallel()
	RequireTool(t, "dig", "bind9-dnsutils")
	u := UnboundT(t, UnboundOptions{Plain: true})
	bigTXT := rrLines(NameBigTXT, "TXT", BigTXT()...)
	tests := []struct {
		name   string
		q      DigQuery
		tc     bool
		answer []string
	}{
		{"UDP", DigQuery{Port: u.PlainPort, Name: NameA, Type: "AAAA"}, false, rrLines(NameA, "AAAA", AddrAAAA)},
		{"UDP on the DoT port", DigQuery{Port: u.Port, Name: NameTXT, Type: "TXT"}, false, rrLines(NameTXT, "TXT", TXTData)},
		{"TCP", DigQuery{Port: u.PlainPort, Name: NameBigTXT, Type: "TXT", TCP: true}, false, bigTXT},
		{"UDP truncated", DigQuery{Port: u.PlainPort, Name: NameBigTXT, Type: "TXT", Ignore: true, BufSize: 4096}, true, nil},
		{"UDP without EDNS", DigQuery{Port: u.PlainPort, Name: NameMulti, Type: "A", Ignore: true, NoEDNS: true}, false,
			rrLines(NameMulti, "A", MultiAddrs...)},
		{"UDP without EDNS truncated", DigQuery{Port: u.PlainPort, Name: NameBigTXT, Type: "TXT", Ignore: true, NoEDNS: true}, true, nil},
		{"big over UDP truncated", DigQuery{Port: u.PlainPort, Name: NameBig, Type: "A", Ignore: true}, true, nil},
		{"UDP retried over TCP", DigQuery{Port: u.PlainPort, Name: NameBig, Type: "A"}, false, rrLines(NameBig, "A", BigAddrs()...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := Dig(t.Context(), tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if r.Rcode != "NOERROR" || r.HasFlag("tc") != tt.tc {
				t.Errorf("rcode %s flags %v, want NOERROR and tc=%v", r.Rcode, r.Flags, tt.tc)
			}
			if got := recordLines(r.Answer); !slices.Equal(got, tt.answer) {
				t.Errorf("answer\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.answer, "\n"))
			}
		})
	}
	t.Run("NXDOMAIN", func(t *testing.T) {
		t.Parallel()
		r, err := Dig(t.Context(), DigQuery{Port: u.PlainPort, Name: NameMissing, TCP: true})
		if err != nil {
			t.Fatal(err)
		}
		if r.Rcode != "NXDOMAIN" || !slices.Equal(recordLines(r.Authority), []string{soaLine(Zone)}) {
			t.Errorf("%s %v, want NXDOMAIN with the SOA", r.Rcode, r.Authority)
		}
	})
	t.Run("short", func(t *testing.T) {
		t.Parallel()
		r, err := Dig(t.Context(), DigQuery{Port: u.PlainPort, Name: NameTXT, Type: "TXT", Short: true})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.Short, []string{TXTData}) {
			t.Errorf("+short %q, want %q", r.Short, TXTData)
		}
	})
}

// The parser keeps spacing inside quoted data and reads both tools' headers.
func TestParseOutput(t *testing.T) {
	kdigOut := `;; ->>HEADER<<- opcode: QUERY; status: NXDOMAIN; id: 1
;; Flags: qr aa rd ra; QUERY: 1; ANSWER: 1; AUTHORITY: 1; ADDITIONAL: 0

;; ANSWER SECTION:
t.test.             	300	IN	TXT	"two  spaces" "x"

;; AUTHORITY SECTION:
test.	60	IN	SOA	a. b. 1 2 3 4 5
`
	r := &KdigResult{Output: kdigOut}
	if err := parseOutput(r); err != nil {
		t.Fatal(err)
	}
	want := &KdigResult{Rcode: "NXDOMAIN", Flags: []string{"qr", "aa", "rd", "ra"},
		Answer:    []Record{{"t.test.", 300, "IN", "TXT", `"two  spaces" "x"`}},
		Authority: []Record{{"test.", 60, "IN", "SOA", "a. b. 1 2 3 4 5"}}}
	if fmt.Sprint(r.Rcode, r.Flags, r.Answer, r.Authority) != fmt.Sprint(want.Rcode, want.Flags, want.Answer, want.Authority) {
		t.Errorf("parsed %+v", r)
	}
	digOut := ";; ->>HEADER<<- opcode: QUERY, status: SERVFAIL, id: 2\n;; flags: qr tc rd; QUERY: 1, ANSWER: 0\n"
	r = &KdigResult{Output: digOut}
	if err := parseOutput(r); err != nil || r.Rcode != "SERVFAIL" || !r.HasFlag("tc") {
		t.Errorf("dig header: %+v %v", r, err)
	}
	if err := parseOutput(&KdigResult{Output: ";; connection refused\n"}); err == nil {
		t.Error("output with no header parsed")
	}
}

// fakeTB records what RequireTool reports instead of ending the test.
type fakeTB struct {
	testing.TB
	failed string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
}

func TestRequireTool(t *testing.T) {
	f := &fakeTB{TB: t}
	if p := RequireTool(f, "unbound", "unbound"); p == "" || f.failed != "" {
		t.Fatalf("unbound: path %q, failure %q", p, f.failed)
	}
	RequireTool(f, "delve-no-such-tool", "delve-no-such-package")
	const want = "delve-no-such-tool not found: install the Debian package delve-no-such-package (make deps)"
	if f.failed != want {
		t.Errorf("failure %q, want %q", f.failed, want)
	}
}
