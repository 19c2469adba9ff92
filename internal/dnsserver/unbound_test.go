package dnsserver

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/testenv"
)

// records renders records without their TTLs (the listener's may be aged), in order.
func records(rs []testenv.Record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, strings.ToLower(r.Name)+" "+r.Class+" "+r.Type+" "+r.Data)
	}
	return out
}

// sameAnswer fails unless got carries ref's rcode and records, with TTLs no larger than ref's,
// and the flags of a forwarder's reply: qr rd ra, never aa.
func sameAnswer(t *testing.T, what string, ref, got *testenv.KdigResult) {
	t.Helper()
	if got.Rcode != ref.Rcode {
		t.Errorf("%s: rcode %s, unbound says %s\n%s", what, got.Rcode, ref.Rcode, got.Output)
	}
	for _, sec := range []struct {
		name     string
		ref, got []testenv.Record
	}{{"answer", ref.Answer, got.Answer}, {"authority", ref.Authority, got.Authority}} {
		if !slices.Equal(records(sec.got), records(sec.ref)) {
			t.Errorf("%s: %s section\n got %q\nwant %q", what, sec.name, records(sec.got), records(sec.ref))
			continue
		}
		for i := range sec.got {
			if sec.got[i].TTL > sec.ref[i].TTL {
				t.Errorf("%s: TTL %d above unbound's %d", what, sec.got[i].TTL, sec.ref[i].TTL)
			}
		}
	}
	for _, f := range []string{"qr", "rd", "ra"} {
		if !got.HasFlag(f) {
			t.Errorf("%s: flag %s missing (flags %v)", what, f, got.Flags)
		}
	}
	if got.HasFlag("aa") {
		t.Errorf("%s: aa set on a forwarded answer", what)
	}
}

// TestAnswersLikeUnbound compares what dig (UDP, TCP) and kdig (plain UDP) get through the
// listener with what kdig gets from unbound directly over DoT, twice: the first from the
// upstream, the second from the cache.
func TestAnswersLikeUnbound(t *testing.T) {
	checkGoroutines(t)
	testenv.RequireTool(t, "dig", "bind9-dnsutils")
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	s := listen(t, Options{Resolver: realResolver(t, ub)})
	cases := []struct{ name, typ string }{
		{testenv.NameA, "A"},
		{testenv.NameA, "AAAA"},
		{testenv.Zone, "MX"},
		{testenv.NameTXT, "TXT"},
		{testenv.NameMissing, "A"},   // NXDOMAIN
		{testenv.NameA, "MX"},        // NODATA
		{testenv.NameMulti, "A"},     // order kept
		{testenv.NameCNAME, "CNAME"}, // CNAME
		{testenv.NamePTR, "PTR"},
	}
	for _, c := range cases {
		t.Run(c.name+"/"+c.typ, func(t *testing.T) {
			ref := testenv.KdigT(t, ub, c.name, c.typ)
			for round := range 2 {
				for _, tcp := range []bool{false, true} {
					got, err := testenv.Dig(t.Context(), testenv.DigQuery{Port: port(s), Name: c.name, Type: c.typ, TCP: tcp})
					if err != nil {
						t.Fatal(err)
					}
					sameAnswer(t, fmt.Sprintf("dig tcp=%v round %d", tcp, round), ref, got)
				}
				got, err := testenv.Kdig(t.Context(), testenv.KdigQuery{Port: port(s), Name: c.name, Type: c.typ, Extra: []string{"+notls"}})
				if err != nil {
					t.Fatal(err)
				}
				sameAnswer(t, fmt.Sprintf("kdig round %d", round), ref, got)
			}
		})
	}
	st := s.Stats()
	if st.UDPQueries == 0 || st.TCPQueries == 0 || st.Cached == 0 || st.Answered != st.UDPQueries+st.TCPQueries {
		t.Errorf("stats %+v: want UDP, TCP and cached queries, every one answered", st)
	}
}

// TestTruncation: answers larger than the client's UDP buffer come with TC and no records, and
// dig retries over TCP and gets them all.
func TestTruncation(t *testing.T) {
	checkGoroutines(t)
	testenv.RequireTool(t, "dig", "bind9-dnsutils")
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	s := listen(t, Options{Resolver: realResolver(t, ub)})
	cases := []struct {
		name, typ string
		count     int
	}{{testenv.NameBigTXT, "TXT", testenv.BigTXTCount}, {testenv.NameBig, "A", testenv.BigCount}}
	bufs := []struct {
		name string
		q    testenv.DigQuery
	}{
		{"noedns", testenv.DigQuery{NoEDNS: true}},
		{"bufsize512", testenv.DigQuery{BufSize: 512}},
		{"bufsize1232", testenv.DigQuery{BufSize: 1232}},
		{"bufsize4096", testenv.DigQuery{BufSize: 4096}}, // delve sends at most 1232 over UDP
	}
	for _, c := range cases {
		for _, b := range bufs {
			t.Run(c.typ+"/"+b.name, func(t *testing.T) {
				q := b.q
				q.Port, q.Name, q.Type, q.Ignore = port(s), c.name, c.typ, true
				got, err := testenv.Dig(t.Context(), q)
				if err != nil {
					t.Fatal(err)
				}
				if !got.HasFlag("tc") || got.Rcode != "NOERROR" || len(got.Answer) != 0 {
					t.Errorf("truncated: rcode %s flags %v, %d answers; want NOERROR, tc, none\n%s", got.Rcode, got.Flags, len(got.Answer), got.Output)
				}
				if b.q.NoEDNS == strings.Contains(got.Output, "OPT PSEUDOSECTION") {
					t.Errorf("OPT in the reply should be there exactly when the query had one\n%s", got.Output)
				}
				q.Ignore = false
				got, err = testenv.Dig(t.Context(), q)
				if err != nil {
					t.Fatal(err)
				}
				if got.Rcode != "NOERROR" || len(got.Answer) != c.count || got.HasFlag("tc") {
					t.Errorf("retried over TCP: rcode %s flags %v, %d answers; want %d\n%s", got.Rcode, got.Flags, len(got.Answer), c.count, got.Output)
				}
			})
		}
	}
	if s.Stats().Truncated == 0 {
		t.Error("no truncation counted")
	}
}

// TestTruncationMiekg checks the truncated reply itself: the client's ID and question, TC, the
// OPT, no records.
func TestTruncationMiekg(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	s := listen(t, Options{Resolver: realResolver(t, ub)})
	q := edns(question("BIG.delve.TEST", dns.TypeA), 1232, false)
	r := exchange(t, "udp", udpAddr(s), q)
	if r.Id != q.Id || !r.Truncated || len(r.Answer)+len(r.Ns) != 0 || len(r.Question) != 1 || r.Question[0].Name != "BIG.delve.TEST." {
		t.Errorf("truncated reply:\n%v", r)
	}
	if opt := r.IsEdns0(); opt == nil || opt.UDPSize() != ednsSize || len(r.Extra) != 1 {
		t.Errorf("want exactly delve's OPT (size %d):\n%v", ednsSize, r)
	}
	r = exchange(t, "tcp", tcpAddr(s), q)
	if r.Truncated || len(r.Answer) != testenv.BigCount {
		t.Errorf("over TCP: tc=%v, %d answers", r.Truncated, len(r.Answer))
	}
}

// TestServFail: with the upstream gone, the listener answers SERVFAIL with an Extended DNS
// Error to an EDNS client and a plain SERVFAIL to one without.
func TestServFail(t *testing.T) {
	checkGoroutines(t)
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	res := realResolver(t, ub)
	if err := ub.Stop(); err != nil {
		t.Fatal(err)
	}
	s := listen(t, Options{Resolver: res})
	r := exchange(t, "udp", udpAddr(s), edns(question(testenv.NameA, dns.TypeA), 1232, false))
	if r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	if e := edeOf(r); e == nil || (e.InfoCode != edeNetworkError && e.InfoCode != edeNoReachableAut) {
		t.Errorf("want EDE 22 or 23, got %v", r)
	}
	r = exchange(t, "tcp", tcpAddr(s), question(testenv.NameA, dns.TypeAAAA))
	if r.Rcode != dns.RcodeServerFailure || r.IsEdns0() != nil {
		t.Errorf("without EDNS: want SERVFAIL and no OPT, got %v", r)
	}
	if st := s.Stats(); st.ServFail != 2 {
		t.Errorf("servfail counted %d, want 2", st.ServFail)
	}
}
