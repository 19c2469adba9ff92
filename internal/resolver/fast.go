package resolver

import (
	"encoding/binary"
	"time"

	"github.com/miekg/dns"
)

// Cached answers q from the cache alone, without waiting for anything: ok is false when the
// answer is not cached (the caller then uses Exchange, which counts the miss). The reply is the
// caller's to modify, with q's ID and aged TTLs, as from Exchange.
func (r *Resolver) Cached(q *dns.Msg) (m *dns.Msg, info Info, ok bool) {
	if len(q.Question) != 1 {
		return nil, Info{}, false
	}
	k, now := keyOf(q), time.Now()
	e := r.cache.peek(k, now)
	if e == nil {
		return nil, Info{}, false
	}
	r.hit(k, e, now)
	m = clone(e.msg)
	m.Id = q.Id
	age(m, time.Since(e.stored))
	return m, Info{Upstream: e.upstream, Cached: true}, true
}

// AppendCached is Cached for a server that answers many cache hits: it appends the cached reply
// to dst already packed (compressed), with q's ID and aged TTLs, and costs a copy instead of a
// message copy and a pack. The packed reply has no OPT record: the caller adds its own EDNS.
// ok is false on a miss and for the replies that need more than that and so the message form
// (an extended rcode, or EDNS options other than cookies and NSID, such as Extended DNS Errors):
// the caller then uses Cached or Exchange.
func (r *Resolver) AppendCached(dst []byte, q *dns.Msg) (out []byte, info Info, ok bool) {
	if len(q.Question) != 1 {
		return dst, Info{}, false
	}
	k, now := keyOf(q), time.Now()
	e := r.cache.peek(k, now)
	if e == nil {
		return dst, Info{}, false
	}
	p := r.cache.pack(e)
	if p.wire == nil {
		return dst, Info{}, false // the caller's Cached counts the hit
	}
	r.hit(k, e, now)
	n := len(dst)
	dst = append(dst, p.wire...)
	w := dst[n:]
	binary.BigEndian.PutUint16(w, q.Id)
	if secs := uint32(time.Since(e.stored) / time.Second); secs > 0 {
		for _, off := range p.ttls {
			ttl := binary.BigEndian.Uint32(w[off:])
			binary.BigEndian.PutUint32(w[off:], ttl-min(ttl, secs))
		}
	}
	return dst, Info{Upstream: e.upstream, Cached: true}, true
}

// packedReply is a cached reply packed without its OPT record, with the offsets of its TTLs.
// wire is nil for a reply AppendCached leaves to the slow path.
type packedReply struct {
	wire []byte
	ttls []int
}

func packEntry(m *dns.Msg) *packedReply {
	if m.Rcode > 0xF {
		return &packedReply{}
	}
	c := *m // a shallow copy is enough: only the Extra slice is replaced
	c.Extra = nil
	for _, rr := range m.Extra {
		if opt, ok := rr.(*dns.OPT); ok {
			for _, o := range opt.Option {
				switch o.Option() {
				case dns.EDNS0COOKIE, dns.EDNS0NSID:
				default:
					return &packedReply{}
				}
			}
			continue
		}
		c.Extra = append(c.Extra, rr)
	}
	c.Compress = true
	wire, err := c.Pack()
	if err != nil {
		return &packedReply{}
	}
	ttls, ok := ttlOffsets(wire)
	if !ok {
		return &packedReply{}
	}
	return &packedReply{wire: wire, ttls: ttls}
}

// ttlOffsets walks a packed message and returns where each record's TTL is.
func ttlOffsets(w []byte) ([]int, bool) {
	if len(w) < 12 {
		return nil, false
	}
	qd := int(binary.BigEndian.Uint16(w[4:]))
	rrs := int(binary.BigEndian.Uint16(w[6:])) + int(binary.BigEndian.Uint16(w[8:])) + int(binary.BigEndian.Uint16(w[10:]))
	off := 12
	var ok bool
	for range qd {
		if off, ok = skipName(w, off); !ok || off+4 > len(w) {
			return nil, false
		}
		off += 4
	}
	ttls := make([]int, 0, rrs)
	for range rrs {
		if off, ok = skipName(w, off); !ok || off+10 > len(w) {
			return nil, false
		}
		ttls = append(ttls, off+4)
		off += 10 + int(binary.BigEndian.Uint16(w[off+8:]))
		if off > len(w) {
			return nil, false
		}
	}
	return ttls, off == len(w)
}

// skipName returns the offset just past the (possibly compressed) name at off.
func skipName(w []byte, off int) (int, bool) {
	for off < len(w) {
		l := int(w[off])
		switch {
		case l == 0:
			return off + 1, true
		case l&0xC0 == 0xC0:
			return off + 2, off+2 <= len(w)
		case l > 63:
			return 0, false
		}
		off += 1 + l
	}
	return 0, false
}

// peek is get without counting a miss: a miss here is followed by an Exchange that counts it.
func (c *cache) peek(k cacheKey, now time.Time) *entry {
	c.mu.Lock()
	el, ok := c.items[k]
	if !ok || !now.Before(el.Value.(*entry).expires) {
		c.mu.Unlock()
		return nil
	}
	c.lru.MoveToFront(el)
	c.mu.Unlock()
	c.hits.Add(1)
	return el.Value.(*entry)
}
