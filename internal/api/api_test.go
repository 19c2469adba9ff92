package api

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/miekg/dns"
)

func TestParseType(t *testing.T) {
	cases := []struct {
		in   string
		want uint16
		err  string // fragment of the error; empty: no error
	}{
		{"A", dns.TypeA, ""},
		{"aaaa", dns.TypeAAAA, ""},
		{"Mx", dns.TypeMX, ""},
		{"HTTPS", dns.TypeHTTPS, ""},
		{"TYPE65", 65, ""},
		{"type1", dns.TypeA, ""},
		{"TYPE65280", 65280, ""}, // private use
		{"CAA", dns.TypeCAA, ""},
		{"TYPE256", 256, ""}, // URI: data types start again above the meta range
		{"ANY", dns.TypeANY, ""},
		{"TYPE255", dns.TypeANY, ""},

		{"", 0, `unknown record type ""`},
		{"NOPE", 0, `unknown record type "NOPE"`},
		{"A\x00", 0, `unknown record type "A\x00"`},
		{"NONE", 0, `unknown record type "NONE"`},
		{"TYPE", 0, `unknown record type "TYPE"`},
		{"TYPE-1", 0, `unknown record type "TYPE-1"`},
		{"TYPE1.5", 0, `unknown record type "TYPE1.5"`},
		{"TYPE0", 0, `"TYPE0" is out of range (1-65535)`},
		{"TYPE65536", 0, `"TYPE65536" is out of range (1-65535)`},
		{"TYPE99999999999999999999", 0, "is out of range"},
		{strings.Repeat("TYPE1 ", 10000), 0, `unknown record type "TYPE1 TYPE1 TYPE1 TYPE1 TYPE1 TY"…`},
		{"TYPE65535", 0, `"TYPE65535" is reserved`},
		{"RESERVED", 0, `unknown record type "RESERVED"`},
		{"OPT", 0, `"OPT" is the EDNS(0) pseudo-record`},
		{"TYPE41", 0, "EDNS(0) pseudo-record"},
		{"TSIG", 0, `"TSIG" is a transaction-security meta-type, not a record type a lookup can ask for`},
		{"tkey", 0, "transaction-security meta-type"},
		{"AXFR", 0, `"AXFR" asks for a zone transfer`},
		{"IXFR", 0, "asks for a zone transfer"},
		{"TYPE252", 0, "asks for a zone transfer"},
		{"MAILA", 0, "obsolete mailbox meta-query"},
		{"MAILB", 0, "obsolete mailbox meta-query"},
		{"TYPE128", 0, "range kept for meta and question types (128-255)"},
		{"TYPE200", 0, "range kept for meta and question types"},
	}
	for _, c := range cases {
		got, err := ParseType(c.in)
		switch {
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("ParseType(%q) = %d, %v; want %d", c.in, got, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("ParseType(%q) = %d, %v; want an error with %q", c.in, got, err, c.err)
		}
	}
}

// TestParseTypeEveryNumber: every number a question can carry is either accepted with its own
// value or refused with one sentence; only the meta types are refused.
func TestParseTypeEveryNumber(t *testing.T) {
	for n := 0; n <= 65536; n++ {
		s := "TYPE" + itoa(n)
		got, err := ParseType(s)
		meta := n == 0 || n == 41 || (n >= 128 && n <= 254) || n >= 65535
		if meta != (err != nil) {
			t.Fatalf("ParseType(%s) = %d, %v: meta=%v", s, got, err, meta)
		}
		if err == nil && int(got) != n {
			t.Fatalf("ParseType(%s) = %d", s, got)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Fatalf("ParseType(%s): %q is not one sentence", s, err)
		}
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestParseName(t *testing.T) {
	cases := []struct {
		in, want string
		reverse  bool
		err      string
	}{
		{"openwrt.org", "openwrt.org.", false, ""},
		{"openwrt.org.", "openwrt.org.", false, ""},
		{".", ".", false, ""},
		{"192.0.2.1", "1.2.0.192.in-addr.arpa.", true, ""},
		{"2001:db8::1", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", true, ""},
		{"_dmarc.example.com", "_dmarc.example.com.", false, ""},
		{"*.wild.delve.test", "*.wild.delve.test.", false, ""},
		{"xn--bcher-kva.example", "xn--bcher-kva.example.", false, ""},
		{strings.Repeat("a", 63) + ".test", strings.Repeat("a", 63) + ".test.", false, ""},

		{"", "", false, "the name is empty"},
		{"..", "", false, `the name ".." has an empty label`},
		{"....", "", false, "has an empty label"},
		{"a..b", "", false, "has an empty label"},
		{".a", "", false, "has an empty label"},
		{"\xff\xfe.test", "", false, "not valid UTF-8"},
		{"a\x00b.test", "", false, `control character ("\x00")`},
		{"a\tb.test", "", false, "control character"},
		{"a\nb.test", "", false, "control character"},
		{"a\x7fb", "", false, "control character"},
		{"bücher.example", "", false, "non-ASCII characters: give an internationalized name in its xn-- (punycode) form"},
		{"a b.test", "", false, `the character ' '`},
		{"a\"b", "", false, `the character '"'`},
		{"a\\.b", "", false, `the character '\\'`},
		{strings.Repeat("x", 64) + ".test", "", false, "is 64 bytes long, more than the 63 allowed"},
		{strings.Repeat("a.", 127) + "ab", "", false, "is 256 bytes long, more than the 253 allowed"},
		{strings.Repeat("x", 1<<20), "", false, "more than the 253 allowed"},
		{"fe80::1%eth0", "", false, `cannot make a reverse name for "fe80::1%eth0"`},
		{"::%" + strings.Repeat("0", 1<<20), "", false, `cannot make a reverse name for "::%0000000000000000000000000000000000000"…`},
	}
	for _, c := range cases {
		got, rev, err := ParseName(c.in)
		name := c.in
		if len(name) > 40 {
			name = name[:40] + "…"
		}
		switch {
		case c.err == "" && (err != nil || got != c.want || rev != c.reverse):
			t.Errorf("ParseName(%q) = %q, %v, %v; want %q, %v", name, got, rev, err, c.want, c.reverse)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("ParseName(%q) = %q, %v; want an error with %q", name, got, err, c.err)
		case err != nil && len(err.Error()) > 200:
			t.Errorf("ParseName(%q): the error is %d bytes long: it must not echo a huge input", name, len(err.Error()))
		}
	}
}

// FuzzLookupArgs: whatever a client sends as a name and a type, ParseName and ParseType return a
// valid fully qualified name or one short, valid-UTF-8 sentence, and never panic; an accepted
// name packs into a DNS question and an accepted type is no meta type.
func FuzzLookupArgs(f *testing.F) {
	for _, s := range []string{"openwrt.org", ".", "..", "192.0.2.1", "::1", "fe80::1%eth0", "a\x00b", "bücher.de",
		strings.Repeat("x", 64), strings.Repeat("a.", 127), "*.x", "a/b", "\xff"} {
		f.Add(s, "A")
	}
	for _, ty := range []string{"AAAA", "TYPE65535", "AXFR", "opt", "TYPE-1", "TYPE99999999999", "ANY"} {
		f.Add("a.test", ty)
	}
	f.Fuzz(func(t *testing.T, name, typ string) {
		fq, _, err := ParseName(name)
		if err != nil {
			checkSentence(t, err)
		} else {
			if !dns.IsFqdn(fq) || len(fq) > MaxName+1 && fq != "." {
				t.Fatalf("ParseName(%q) = %q", name, fq)
			}
			q := new(dns.Msg)
			q.SetQuestion(fq, dns.TypeA)
			if _, err := q.Pack(); err != nil {
				t.Fatalf("ParseName(%q) = %q, which does not pack: %v", name, fq, err)
			}
		}
		qt, err := ParseType(typ)
		if err != nil {
			checkSentence(t, err)
			return
		}
		if MetaType(qt) != "" || qt == 0 {
			t.Fatalf("ParseType(%q) = %d, a meta type", typ, qt)
		}
	})
}

func checkSentence(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	if msg == "" || !utf8.ValidString(msg) || strings.ContainsAny(msg, "\n\x00") || len(msg) > 300 {
		t.Fatalf("error %q is not one short printable sentence", msg)
	}
}
