package upstream

import (
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// FuzzReplyHandling feeds what a server sends as one framed message to the multiplexer's reply
// path: deliver routes it to the query in flight, or drops it; a delivered reply goes through
// reply (unpacking, the transport options removed, the keepalive applied). Whatever the bytes,
// nothing panics; a reply reaches the query only with its ID, the QR bit and its question (or
// none); what is returned carries the query's ID and no padding or keepalive option.
func FuzzReplyHandling(f *testing.F) {
	q := query("fuzz.example.")
	wire, err := wireQuery(q)
	if err != nil {
		f.Fatal(err)
	}
	question := wire[12:QuestionEnd(wire)]
	const id = 0x1234
	seed := func(mod func(m *dns.Msg)) []byte {
		m := answer(q)
		m.Id = id
		m.SetEdns0(1232, false)
		if mod != nil {
			mod(m)
		}
		b, _ := m.Pack()
		return b
	}
	f.Add(seed(nil))
	f.Add(seed(func(m *dns.Msg) { m.Id = id + 1 }))
	f.Add(seed(func(m *dns.Msg) { m.Question[0].Name = "evil.example." }))
	f.Add(seed(func(m *dns.Msg) { m.Response = false }))
	f.Add(seed(func(m *dns.Msg) { m.Question = nil }))
	f.Add(seed(func(m *dns.Msg) { m.Question[0].Name = "FUZZ.Example." }))
	f.Add(seed(func(m *dns.Msg) {
		m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE, Timeout: 0}, &dns.EDNS0_PADDING{Padding: make([]byte, 40)}}
	}))
	f.Add(seed(func(m *dns.Msg) {
		m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE, Timeout: 1200}}
	}))
	f.Add([]byte{0x12, 0x34, 0x81, 0x80, 0, 0, 0, 5, 0, 0, 0, 0, 0xc0, 0xff, 0xee})
	f.Add([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
	f.Add([]byte{})
	f.Add(func() []byte {
		m := answer(q)
		m.Id = id
		m.Answer = []dns.RR{&dns.RFC3597{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeHTTPS, Class: dns.ClassINET, Ttl: 300}, Rdata: badHTTPSRdata}}
		b, _ := m.Pack()
		return b
	}())
	f.Fuzz(func(t *testing.T, msg []byte) {
		u, err := New(Options{Name: "fuzz", Address: "127.0.0.1", TLSName: "fuzz.example"})
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		a, b := net.Pipe()
		defer b.Close()
		c := &conn{u: u, nc: a, pending: map[uint16]*call{}, idle: time.Minute, done: make(chan struct{}), inflight: 1}
		c.idleT = time.AfterFunc(time.Hour, func() {})
		defer c.idleT.Stop()
		cl := &call{id: id, question: question, done: make(chan struct{}, 1)}
		c.pending[id] = cl

		c.deliver(append([]byte(nil), msg...))
		select {
		case <-cl.done:
			r := cl
			if r.err != nil {
				t.Fatalf("deliver sent an error: %v", r.err)
			}
			if len(r.msg) < 12 || binary.BigEndian.Uint16(r.msg) != id || r.msg[2]&0x80 == 0 || !sameQuestion(r.msg, question) {
				t.Fatalf("delivered %x to the query %04x", r.msg, id)
			}
			m, err := u.reply(c, q, r.msg, time.Millisecond)
			var me *MalformedError
			if errors.As(err, &me) && me.Relay != nil {
				m = me.Relay // a zone's bad record, to be passed on as it came: it must pack
				if _, err := m.Pack(); err != nil {
					t.Fatalf("the relay of %x does not pack: %v", r.msg, err)
				}
			} else if err != nil {
				return // a malformed reply: an error for the caller
			}
			if m.Id != q.Id {
				t.Fatalf("reply ID %04x, query %04x", m.Id, q.Id)
			}
			if opt := m.IsEdns0(); opt != nil {
				for _, o := range opt.Option {
					if o.Option() == dns.EDNS0PADDING || o.Option() == dns.EDNS0TCPKEEPALIVE {
						t.Fatalf("transport option %d left in the reply", o.Option())
					}
				}
			}
		default:
			if c.pending[id] != cl {
				t.Fatal("a message that was dropped took the query out of flight")
			}
			if u.Stats().Unmatched != 1 {
				t.Fatalf("a dropped message counted %d times", u.Stats().Unmatched)
			}
		}
	})
}
