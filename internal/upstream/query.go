package upstream

import (
	"encoding/binary"
	"errors"

	"github.com/miekg/dns"
)

// paddingBlock is the RFC 8467 §4.1 block size for queries.
const paddingBlock = 128

// ednsSize is the UDP payload size advertised in the OPT record (the DNS flag day 2020 value);
// it means nothing on a stream transport but must be present.
const ednsSize = 1232

// ErrBadQuery is returned for a message that cannot be sent: no question, or more than one.
var ErrBadQuery = errors.New("a query must have exactly one question")

// wireQuery packs q for the wire without changing it: one question, AD set (RFC 6840 §5.7: a
// stub that wants the upstream's validation verdict asks with AD=1, and the answer's AD is then
// that verdict whoever asked, so one cached answer serves every client; the DNS listener clears
// AD again for a client that set neither AD nor DO, §5.8), EDNS(0) with the client's DO bit and
// UDP size, the edns-tcp-keepalive option (RFC 7828 §3.2.1: empty in queries) and
// padding to a multiple of 128 octets (RFC 7830, RFC 8467). Padding and keepalive options the
// caller set are replaced, other options (such as ECS a caller chose to send) are kept.
func wireQuery(q *dns.Msg) ([]byte, error) {
	if len(q.Question) != 1 {
		return nil, ErrBadQuery
	}
	m := &dns.Msg{MsgHdr: q.MsgHdr, Question: q.Question}
	m.Response = false
	m.Id = 0
	m.AuthenticatedData = true
	opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	opt.SetUDPSize(ednsSize)
	if old := q.IsEdns0(); old != nil {
		opt.SetDo(old.Do())
		if old.UDPSize() > ednsSize {
			opt.SetUDPSize(old.UDPSize())
		}
		for _, o := range old.Option {
			switch o.Option() {
			case dns.EDNS0PADDING, dns.EDNS0TCPKEEPALIVE:
			default:
				opt.Option = append(opt.Option, o)
			}
		}
	}
	for _, rr := range q.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			m.Extra = append(m.Extra, rr)
		}
	}
	opt.Option = append(opt.Option, &dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE})
	pad := &dns.EDNS0_PADDING{}
	opt.Option = append(opt.Option, pad)
	m.Extra = append(m.Extra, opt)
	if n := m.Len() % paddingBlock; n != 0 {
		pad.Padding = make([]byte, paddingBlock-n)
	}
	return m.Pack()
}

// questionEnd returns the offset just past the question section of a packed message with one
// question, or -1 when it is malformed. A question name is never compressed: nothing precedes it
// that a pointer could refer to.
func questionEnd(msg []byte) int {
	if len(msg) < 12 || binary.BigEndian.Uint16(msg[4:]) != 1 {
		return -1
	}
	off := 12
	for {
		if off >= len(msg) {
			return -1
		}
		l := int(msg[off])
		if l == 0 {
			off++
			break
		}
		if l > 63 {
			return -1
		}
		off += 1 + l
	}
	off += 4 // type and class
	if off > len(msg) {
		return -1
	}
	return off
}

// sameQuestion reports whether a reply carries the question q (the packed question section of
// the query): names compare without regard to ASCII case, type and class exactly. A reply with
// no question section matches by ID alone (RFC 7858 §3.3).
func sameQuestion(reply, q []byte) bool {
	if len(reply) < 12 {
		return false
	}
	if binary.BigEndian.Uint16(reply[4:]) == 0 {
		return true
	}
	end := 12 + len(q)
	if len(reply) < end {
		return false
	}
	r := reply[12:end]
	n := len(q) - 4
	// Length octets are below 64 and so never ASCII letters: folding the whole name is safe.
	for i := 0; i < n; i++ {
		a, b := r[i], q[i]
		if a != b && lower(a) != lower(b) {
			return false
		}
	}
	return string(r[n:]) == string(q[n:])
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// cleanReply removes the transport options (padding, keepalive) from a reply, returning the
// server's keepalive timeout when it sent one (RFC 7828 §3.3.1).
func cleanReply(m *dns.Msg) (keepalive uint16, hasKeepalive bool) {
	opt := m.IsEdns0()
	if opt == nil {
		return 0, false
	}
	kept := opt.Option[:0]
	for _, o := range opt.Option {
		switch v := o.(type) {
		case *dns.EDNS0_PADDING:
		case *dns.EDNS0_TCP_KEEPALIVE:
			keepalive, hasKeepalive = v.Timeout, true
		default:
			kept = append(kept, o)
		}
	}
	// The dropped options stay in the backing array past len(kept): clear them, or the cache
	// keeps every reply's padding (often 400 octets, RFC 8467) alive with the message.
	clear(opt.Option[len(kept):])
	opt.Option = kept
	return keepalive, hasKeepalive
}
