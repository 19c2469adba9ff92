package dnsserver

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/resolver"
	"github.com/delvedns/delve/internal/testenv"
)

// TestWireMatchesMessagePath: for every kind of query, the reply patched on the octets of the
// packed cache entry says what the reply built as a message says (TTLs aside: aging is the
// resolver's and shown there), and carries the question exactly as the client wrote it.
func TestWireMatchesMessagePath(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	res := realResolver(t, ub)
	s := &Server{opts: Options{}, log: slog.New(slog.DiscardHandler)}
	s.wire, s.fast = res, res

	type variant struct {
		name string
		make func(m *dns.Msg) *dns.Msg
	}
	variants := []variant{
		{"plain", func(m *dns.Msg) *dns.Msg { return m }},
		{"edns", func(m *dns.Msg) *dns.Msg { return edns(m, 1232, false) }},
		{"do", func(m *dns.Msg) *dns.Msg { return edns(m, 4096, true) }},
		{"do-small", func(m *dns.Msg) *dns.Msg { return edns(m, 512, true) }},
		{"cd-ad", func(m *dns.Msg) *dns.Msg { m.CheckingDisabled, m.AuthenticatedData = true, true; return m }},
		{"no-rd", func(m *dns.Msg) *dns.Msg { m.RecursionDesired = false; return m }},
	}
	names := []struct {
		name string
		typ  uint16
	}{
		{"a.delve.test", dns.TypeA}, {"A.Delve.TEST", dns.TypeA}, {"missing.delve.test", dns.TypeA},
		{"a.delve.test", dns.TypeMX}, {"www.delve.test", dns.TypeA}, {"big.delve.test", dns.TypeA},
		{"bigtxt.delve.test", dns.TypeTXT}, {"multi.delve.test", dns.TypeA},
	}
	for _, n := range names {
		for _, v := range variants {
			for _, udp := range []bool{true, false} {
				t.Run(fmt.Sprintf("%s/%s/%s/udp=%v", n.name, dns.TypeToString[n.typ], v.name, udp), func(t *testing.T) {
					m := v.make(question(n.name, n.typ))
					pkt, err := m.Pack()
					if err != nil {
						t.Fatal(err)
					}
					q := &query{msg: parse(pkt), udp: udp}
					if s.policy(q) != nil {
						t.Fatal("refused")
					}
					if _, _, ok := s.fast.Cached(q.msg); !ok {
						if _, _, err := res.Exchange(t.Context(), s.upstreamQuery(q), ""); err != nil {
							t.Fatal(err)
						}
					}
					cached, info, ok := s.fast.Cached(q.msg)
					if !ok {
						t.Fatal("not cached after an exchange")
					}
					slow, err := q.pack(s.answer(q, cached, nil), nil)
					if err != nil {
						t.Fatal(err)
					}
					fast, finfo, ok := s.cachedWire(q, pkt, make([]byte, 0, 512))
					if !ok {
						t.Fatal("no wire fast path")
					}
					var fm dns.Msg
					if err := fm.Unpack(fast); err != nil || fm.Question[0].Name != m.Question[0].Name {
						t.Errorf("question %v, want the client's %q (%v)", fm.Question, m.Question[0].Name, err)
					}
					if finfo != info {
						t.Errorf("info %+v, message path %+v", finfo, info)
					}
					// Names compare without case: the wire path's answers point at the question,
					// which carries the client's case (as unbound's do).
					if a, b := render(t, fast), render(t, slow); !strings.EqualFold(a, b) {
						t.Errorf("wire path:\n%s\nmessage path:\n%s", a, b)
					}
				})
			}
		}
	}
}

// render prints a packed message with its TTLs zeroed.
func render(t *testing.T, w []byte) string {
	t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(w); err != nil {
		t.Fatalf("unpacking: %v", err)
	}
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			if rr.Header().Rrtype != dns.TypeOPT {
				rr.Header().Ttl = 0
			}
		}
	}
	return m.String()
}

// BenchmarkCachedUDP is one client asking a cached name over loopback UDP, one query at a time:
// the listener's cost per cache hit, with the kernel's. Nothing asserts its result.
func BenchmarkCachedUDP(b *testing.B) {
	ub := testenv.UnboundT(b, testenv.UnboundOptions{})
	s := listen(b, Options{Resolver: realResolver(b, ub)})
	c := &dns.Client{Timeout: time.Second}
	conn, err := c.Dial(udpAddr(s))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	q := edns(question(testenv.NameA, dns.TypeA), 1232, false)
	for b.Loop() {
		if _, _, err := c.ExchangeWithConn(q, conn); err != nil {
			b.Fatal(err)
		}
	}
}

// sharedExchange is the resolver as the daemon gives it to the listener: fresh answers share the
// cache's records.
type sharedExchange struct{ *resolver.Resolver }

func (r sharedExchange) Exchange(ctx context.Context, q *dns.Msg, via string) (*dns.Msg, resolver.Info, error) {
	return r.ExchangeShared(ctx, q, via)
}

// BenchmarkMissUDP is one client asking a name no one asked before over loopback UDP, one query
// at a time, with the daemon's settings (the resolver's own lookup timeout, ExchangeShared): the
// listener's, resolver's and upstream's cost per cache miss, the kernel's and the test unbound's
// round trip with it. The client packs nothing per query (a fixed-length label in a packed query is
// rewritten), so -benchmem counts the server's allocations. Nothing asserts its result.
func BenchmarkMissUDP(b *testing.B) {
	ub := testenv.UnboundT(b, testenv.UnboundOptions{})
	s := listen(b, Options{Resolver: sharedExchange{realResolver(b, ub)}, Timeout: -1})
	conn, err := net.Dial("udp", udpAddr(s))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	const label = "m000000000"
	q := edns(question(testenv.WildName(label), dns.TypeA), 1232, false)
	wire, err := q.Pack()
	if err != nil {
		b.Fatal(err)
	}
	digits := wire[12+1+1 : 12+1+len(label)] // the label's length octet, "m", then the digits
	reply := make([]byte, 4096)
	var seq uint64
	b.ReportAllocs()
	for b.Loop() {
		seq++
		for i, n := len(digits)-1, seq; i >= 0; i, n = i-1, n/10 {
			digits[i] = '0' + byte(n%10)
		}
		if _, err := conn.Write(wire); err != nil {
			b.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(reply)
		if err != nil {
			b.Fatal(err)
		}
		if n < 12 || reply[3]&0xF != dns.RcodeSuccess || binary.BigEndian.Uint16(reply[6:]) != 1 {
			b.Fatalf("reply %x: want one answer", reply[:n])
		}
	}
}
