package dnsserver

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/miekg/dns"
)

// FuzzPacket runs a client's packet through the whole path of the listener (parse, policy, the
// upstream query, the reply built from an upstream message, packing with truncation and padding)
// with the upstream's reply taken from the fuzzer too. Nothing may panic; a packet that parses
// gets a reply that unpacks, carries its ID, and fits the client's UDP buffer.
func FuzzPacket(f *testing.F) {
	add := func(q *dns.Msg, up *dns.Msg, udp bool) {
		qw, _ := q.Pack()
		var uw []byte
		if up != nil {
			uw, _ = up.Pack()
		}
		f.Add(qw, uw, udp)
	}
	a := question("a.example", dns.TypeA)
	big := new(dns.Msg)
	big.SetReply(a)
	for i := range 100 {
		rr, _ := dns.NewRR("a.example. 60 IN TXT \"" + string(bytes.Repeat([]byte{'x'}, i)) + "\"")
		big.Answer = append(big.Answer, rr)
	}
	add(a, nil, true)
	add(a, big, true)
	add(edns(question("a.example", dns.TypeA), 4096, true, &dns.EDNS0_PADDING{Padding: make([]byte, 30)}, ecs()), big, true)
	add(edns(question("a.example", dns.TypeTXT), 600, true), big, false)
	add(question("example", dns.TypeAXFR), nil, false)
	v1 := edns(question("a.example", dns.TypeA), 1232, false)
	v1.IsEdns0().SetVersion(3)
	add(v1, nil, true)
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 0x0C, 0, 1, 0, 1}, []byte{}, true)

	s := &Server{opts: Options{ForwardECS: true}, log: slog.New(slog.DiscardHandler)}
	f.Fuzz(func(t *testing.T, pkt, up []byte, udp bool) {
		m := parse(pkt)
		if m == nil {
			return
		}
		q := &query{msg: m, udp: udp}
		reply := s.policy(q)
		own := reply != nil
		if !own {
			uq := s.upstreamQuery(q)
			if _, err := uq.Pack(); err != nil {
				t.Fatalf("the upstream query does not pack: %v\n%v", err, uq)
			}
			um := new(dns.Msg)
			if um.Unpack(up) != nil {
				um, _, _ = answerA(context.Background(), uq)
			}
			// The wire path on the same upstream message, packed as the resolver's cache packs
			// it (question as asked, no OPT) and gives it (the query's ID).
			c := um.Copy()
			c.Id, c.Question, c.Compress = m.Id, m.Question, true
			var extra []dns.RR
			for _, rr := range c.Extra {
				if rr.Header().Rrtype != dns.TypeOPT {
					extra = append(extra, rr)
				}
			}
			c.Extra = extra
			if w, err := c.Pack(); err == nil {
				if w, ok := q.patchWire(w, pkt); ok {
					var r dns.Msg
					if err := r.Unpack(w); err != nil || r.Id != m.Id || !r.Response {
						t.Fatalf("wire path reply does not unpack or is not the client's (%v): %v", err, &r)
					}
					if udp && len(w) > q.udpLimit() {
						t.Fatalf("wire path UDP reply of %d octets for a buffer of %d", len(w), q.udpLimit())
					}
				}
			}
			reply = s.answer(q, um, nil)
		}
		out, err := q.pack(reply, nil)
		if err != nil {
			if own {
				t.Fatalf("delve's own reply does not pack: %v\n%v", err, reply)
			}
			return // an upstream message miekg/dns read but cannot write: the query goes unanswered
		}
		if udp && len(out) > q.udpLimit() {
			t.Fatalf("UDP reply of %d octets for a buffer of %d", len(out), q.udpLimit())
		}
		var r dns.Msg
		if err := r.Unpack(out); err != nil {
			t.Fatalf("the reply does not unpack: %v", err)
		}
		if r.Id != m.Id || !r.Response {
			t.Fatalf("reply id %d qr %v for query %d", r.Id, r.Response, m.Id)
		}
	})
}
