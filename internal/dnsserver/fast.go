package dnsserver

import (
	"encoding/binary"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/resolver"
	"github.com/delvedns/delve/internal/upstream"
)

// wireResolver is a Resolver with a packed cache fast path, as *resolver.Resolver has: a cache
// hit is appended to dst already packed, with the query's ID and aged TTLs, and no OPT record.
type wireResolver interface {
	AppendCached(dst []byte, q *dns.Msg) ([]byte, resolver.Info, bool)
}

// fastResolver is a Resolver that can answer from its cache without waiting; ok is false on a
// miss.
type fastResolver interface {
	Cached(q *dns.Msg) (m *dns.Msg, info resolver.Info, ok bool)
}

// goResolver is a Resolver that runs functions on goroutines it keeps, as *resolver.Resolver
// does (Go): a query that waits for an upstream runs there, on a goroutine whose stack has grown
// to what asking an upstream needs, instead of on a new goroutine each. Go returns false when it
// did not run f (the resolver is closed).
type goResolver interface {
	Go(f func()) bool
}

// Header flag bits, in the third and fourth octets of a message.
const (
	flagQR = 0x80
	flagAA = 0x04
	flagTC = 0x02
	flagRD = 0x01
	flagRA = 0x80
	flagAD = 0x20
	flagCD = 0x10
)

// patchWire turns a packed cached reply w into the reply to q, whose packet was pkt, doing to
// the octets what answer and pack do to a message: the client's question as it wrote it and its
// flags, delve's OPT when the client sent one, TC and no records when it is too large for the
// client's UDP buffer. ok is false when that cannot be done on the octets (the caller then takes
// the message path).
func (q *query) patchWire(w, pkt []byte) (out []byte, ok bool) {
	qend := upstream.QuestionEnd(pkt)
	if qend < 0 || len(w) < qend || upstream.QuestionEnd(w) != qend {
		return w, false
	}
	copy(w[12:qend], pkt[12:qend])
	req := q.msg
	w[2] = flagQR
	if req.RecursionDesired {
		w[2] |= flagRD
	}
	rcode := w[3] & 0xF
	ad := w[3]&flagAD != 0 && (q.do() || req.AuthenticatedData)
	w[3] = flagRA | rcode
	if ad {
		w[3] |= flagAD
	}
	if req.CheckingDisabled {
		w[3] |= flagCD
	}
	if q.udp && len(w)+q.optLen() > q.udpLimit() {
		w = w[:qend]
		w[2] |= flagTC
		binary.BigEndian.PutUint32(w[6:], 0) // no answer, no authority
		binary.BigEndian.PutUint16(w[10:], 0)
	}
	if q.opt != nil {
		w = q.appendOPT(w)
		binary.BigEndian.PutUint16(w[10:], binary.BigEndian.Uint16(w[10:])+1)
	}
	return w, true
}

func (q *query) optLen() int {
	if q.opt == nil {
		return 0
	}
	return 11
}

// appendOPT appends delve's OPT record: root name, type OPT, delve's UDP size, extended rcode 0,
// version 0, the client's DO bit, no options.
func (q *query) appendOPT(w []byte) []byte {
	var do byte
	if q.do() {
		do = 0x80
	}
	return append(w, 0, 0, byte(dns.TypeOPT), ednsSize>>8, ednsSize&0xFF, 0, 0, do, 0, 0, 0)
}
