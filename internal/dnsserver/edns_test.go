package dnsserver

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/resolver"
)

func ecs() *dns.EDNS0_SUBNET {
	return &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(192, 168, 1, 0).To4()}
}

// TestEDNSToUpstream checks what reaches the upstream (an in-process DoT server that records its
// queries): the client's DO and CD bits, never its padding, cookie or ECS, unless ECS is
// configured to pass.
func TestEDNSToUpstream(t *testing.T) {
	checkGoroutines(t)
	rec := newRecorder(t)
	s := listen(t, Options{Resolver: rec.resolver(t)})
	sECS := listen(t, Options{Resolver: rec.resolver(t), ForwardECS: true})

	clientPad := &dns.EDNS0_PADDING{Padding: bytes.Repeat([]byte{0xAA}, 40)}
	cookie := &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "2464c4abcf10c957"}
	cases := []struct {
		name    string
		srv     *Server
		do, cd  bool
		wantECS bool
	}{
		{"do", s, true, false, false},
		{"nodo", s, false, false, false},
		{"cd", s, true, true, false},
		{"ecs-forwarded", sECS, false, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, network := range []string{"udp", "tcp"} {
				name := c.name + "-" + network + ".example."
				q := edns(question(name, dns.TypeA), 1232, c.do, clientPad, cookie, ecs())
				q.CheckingDisabled = c.cd
				addr := udpAddr(c.srv)
				if network == "tcp" {
					addr = tcpAddr(c.srv)
				}
				r := exchange(t, network, addr, q)
				got := rec.last()
				if got == nil || got.Question[0].Name != name {
					t.Fatalf("%s: the upstream did not get the query (last: %v)", network, got)
				}
				opt := got.IsEdns0()
				if opt == nil {
					t.Fatalf("%s: upstream query without OPT:\n%v", network, got)
				}
				if opt.Do() != c.do || got.CheckingDisabled != c.cd {
					t.Errorf("%s: upstream got DO=%v CD=%v, want %v %v", network, opt.Do(), got.CheckingDisabled, c.do, c.cd)
				}
				hasECS := false
				for _, o := range opt.Option {
					switch o := o.(type) {
					case *dns.EDNS0_PADDING:
						if bytes.ContainsRune(o.Padding, 0xAA) {
							t.Errorf("%s: the client's padding reached the upstream", network)
						}
					case *dns.EDNS0_COOKIE:
						t.Errorf("%s: the client's cookie reached the upstream", network)
					case *dns.EDNS0_SUBNET:
						hasECS = true
					}
				}
				if hasECS != c.wantECS {
					t.Errorf("%s: ECS at the upstream %v, want %v", network, hasECS, c.wantECS)
				}
				// The reply: the client's ID, delve's OPT with the client's DO, no upstream cookie,
				// padded because the query was.
				ropt := r.IsEdns0()
				if r.Id != q.Id || ropt == nil || ropt.Do() != c.do || ropt.UDPSize() != ednsSize || r.CheckingDisabled != c.cd {
					t.Errorf("%s: reply %v", network, r)
				}
				if ropt != nil {
					padded := false
					for _, o := range ropt.Option {
						switch o.(type) {
						case *dns.EDNS0_COOKIE:
							t.Errorf("%s: the upstream's cookie reached the client", network)
						case *dns.EDNS0_PADDING:
							padded = true
						}
					}
					if !padded {
						t.Errorf("%s: a padded query got an unpadded reply", network)
					}
				}
				r.Compress = true // as delve packed it
				if wire, _ := r.Pack(); len(wire)%paddingBlock != 0 {
					t.Errorf("%s: padded reply of %d octets, want a multiple of %d", network, len(wire), paddingBlock)
				}
			}
		})
	}
}

// TestEDNSReply: no OPT in the reply to a query without one; the upstream's Extended DNS Errors
// reach an EDNS client; the question comes back as the client wrote it.
func TestEDNSReply(t *testing.T) {
	checkGoroutines(t)
	rec := newRecorder(t)
	s := listen(t, Options{Resolver: rec.resolver(t)})
	for _, network := range []string{"udp", "tcp"} {
		addr := udpAddr(s)
		if network == "tcp" {
			addr = tcpAddr(s)
		}
		r := exchange(t, network, addr, question("plain-"+network+".example", dns.TypeA))
		if r.IsEdns0() != nil || len(r.Answer) != 1 || r.Rcode != dns.RcodeSuccess {
			t.Errorf("%s without EDNS: %v", network, r)
		}
		// Then from the cache, with the name in another case.
		q := question("PLAIN-"+network+".Example", dns.TypeA)
		r = exchange(t, network, addr, q)
		if r.Question[0].Name != q.Question[0].Name || len(r.Answer) != 1 {
			t.Errorf("%s: question %q, want the client's %q", network, r.Question[0].Name, q.Question[0].Name)
		}
		r = exchange(t, network, addr, edns(question("ede-"+network+".example", dns.TypeA), 1232, false))
		if e := edeOf(r); e == nil || e.InfoCode != 3 {
			t.Errorf("%s: the upstream's EDE 3 did not come through: %v", network, r)
		}
	}
}

// TestECSCache: with ForwardECS, an answer the upstream gave for one client subnet is not served
// from the cache to a client in another (it asks the upstream itself), but is to one in the same
// subnet; without ForwardECS the subnet reaches no upstream, and every client shares one entry.
func TestECSCache(t *testing.T) {
	checkGoroutines(t)
	subnet := func(a net.IP, bits uint8) *dns.EDNS0_SUBNET {
		return &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: bits, Address: a.To4()}
	}
	for _, tt := range []struct {
		forward bool
		want    []int // upstream queries seen after each client's query
	}{
		{true, []int{1, 2, 2, 3}},
		{false, []int{1, 1, 1, 1}},
	} {
		rec := newRecorder(t)
		s := listen(t, Options{Resolver: rec.resolver(t), ForwardECS: tt.forward})
		for i, e := range []*dns.EDNS0_SUBNET{
			subnet(net.IPv4(192, 0, 2, 0), 24),
			subnet(net.IPv4(198, 51, 100, 0), 24),
			subnet(net.IPv4(198, 51, 100, 9), 24), // the same /24 as before
			nil,
		} {
			q := question("subnet.example", dns.TypeA)
			if e != nil {
				q = edns(q, 1232, false, e)
			}
			if r := exchange(t, "udp", udpAddr(s), q); r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
				t.Fatalf("forward %v, query %d: %v", tt.forward, i, r)
			}
			rec.mu.Lock()
			n := len(rec.got)
			rec.mu.Unlock()
			if n != tt.want[i] {
				t.Fatalf("forward %v, after query %d: %d upstream queries, want %d", tt.forward, i, n, tt.want[i])
			}
		}
	}
}

// sharedFake is a resolver whose every answer is one shared message, as the daemon's fresh
// answers share the cache's records (resolver.Resolver.ExchangeShared).
type sharedFake struct{ m *dns.Msg }

func (f sharedFake) Exchange(_ context.Context, q *dns.Msg, _ string) (*dns.Msg, resolver.Info, error) {
	c := *f.m // the header is the caller's, the sections are not
	c.Id = q.Id
	return &c, resolver.Info{Upstream: "shared"}, nil
}

// TestSharedReplyUnchanged: the listener answers from a reply whose sections are the resolver's
// over UDP and TCP, to clients with and without EDNS, padded, and too small for
// it (truncated), and leaves every record of it as it was, the upstream's OPT with its extended
// rcode bits and options included.
func TestSharedReplyUnchanged(t *testing.T) {
	checkGoroutines(t)
	m := new(dns.Msg)
	m.SetQuestion("shared.example.", dns.TypeTXT)
	m.Response, m.AuthenticatedData = true, true
	for i := range 8 {
		rr, err := dns.NewRR(fmt.Sprintf(`shared.example. 300 IN TXT "%s"`, strings.Repeat(string(rune('a'+i)), 200)))
		if err != nil {
			t.Fatal(err)
		}
		m.Answer = append(m.Answer, rr)
	}
	uopt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	uopt.SetUDPSize(1232)
	uopt.Hdr.Ttl = 1 << 24 // extended rcode bits, which packing the OPT for rcode 0 would clear
	uopt.Option = append(uopt.Option, &dns.EDNS0_EDE{InfoCode: 3, ExtraText: "stale"},
		&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708a1a2a3a4a5a6a7a8"})
	m.Extra = append(m.Extra, uopt)
	before := m.String()
	extra := m.Extra[:cap(m.Extra)]

	s := listen(t, Options{Resolver: sharedFake{m}})
	pad := &dns.EDNS0_PADDING{}
	for _, network := range []string{"udp", "tcp"} {
		addr := udpAddr(s)
		if network == "tcp" {
			addr = tcpAddr(s)
		}
		for _, q := range []*dns.Msg{
			question("shared.example.", dns.TypeTXT),                         // 512 octets: truncated over UDP
			edns(question("shared.example.", dns.TypeTXT), 4096, true),       // the whole answer
			edns(question("shared.example.", dns.TypeTXT), 4096, false, pad), // padded
		} {
			r := exchange(t, network, addr, q)
			if r.Rcode != dns.RcodeSuccess || r.Id != q.Id {
				t.Fatalf("%s: reply %v", network, r)
			}
		}
	}
	if after := m.String(); after != before {
		t.Errorf("the shared reply changed:\n%s\nwas:\n%s", after, before)
	}
	if len(m.Extra) != 1 || extra[0] != dns.RR(uopt) || uopt.Hdr.Ttl != 1<<24 {
		t.Errorf("the shared additional section changed: %v (OPT TTL %d)", extra, uopt.Hdr.Ttl)
	}
}
