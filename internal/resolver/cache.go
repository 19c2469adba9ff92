package resolver

import (
	"container/list"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// maxCacheTTL caps how long anything is kept, whatever the TTL says (as unbound's cache-max-ttl).
const maxCacheTTL = 24 * time.Hour

// cacheKey identifies a question. Names are case-insensitive; DO and CD change the answer, and
// so does the client subnet a query carries (RFC 7871): an answer for one subnet is not served
// to another.
type cacheKey struct {
	name   string
	qtype  uint16
	qclass uint16
	do, cd bool
	subnet netip.Prefix // the query's EDNS Client Subnet, masked; invalid when it has none
}

func keyOf(q *dns.Msg) cacheKey {
	k := cacheKey{name: strings.ToLower(q.Question[0].Name), qtype: q.Question[0].Qtype, qclass: q.Question[0].Qclass, cd: q.CheckingDisabled}
	if opt := q.IsEdns0(); opt != nil {
		k.do = opt.Do()
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_SUBNET); ok {
				// miekg/dns has checked family and prefix length; family 0 (no address: the
				// client asks that none be used) is as if there were no option.
				if a, ok := netip.AddrFromSlice(e.Address); ok {
					k.subnet, _ = a.Unmap().Prefix(int(e.SourceNetmask))
				}
				break
			}
		}
	}
	return k
}

type entry struct {
	key      cacheKey
	msg      *dns.Msg // read-only once stored
	upstream string
	stored   time.Time
	expires  time.Time
	packed   atomic.Pointer[packedReply] // msg packed for AppendCached, made on its first use
}

// cache is a bounded LRU of replies. Entries are never modified after they are stored, so a hit
// can be read without the lock.
type cache struct {
	mu    sync.Mutex
	max   int
	items map[cacheKey]*list.Element
	lru   list.List // front = most recently used

	hits, misses atomic.Uint64
}

func newCache(max int) *cache {
	c := &cache{max: max, items: make(map[cacheKey]*list.Element)}
	c.lru.Init()
	return c
}

func (c *cache) get(k cacheKey, now time.Time) *entry {
	c.mu.Lock()
	el, ok := c.items[k]
	if !ok {
		c.mu.Unlock()
		c.misses.Add(1)
		return nil
	}
	e := el.Value.(*entry)
	if !now.Before(e.expires) {
		c.lru.Remove(el)
		delete(c.items, k)
		c.mu.Unlock()
		c.misses.Add(1)
		return nil
	}
	c.lru.MoveToFront(el)
	c.mu.Unlock()
	c.hits.Add(1)
	return e
}

func (c *cache) put(e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.max <= 0 {
		return
	}
	if el, ok := c.items[e.key]; ok {
		el.Value = e
		c.lru.MoveToFront(el)
		return
	}
	c.items[e.key] = c.lru.PushFront(e)
	for len(c.items) > c.max {
		c.evictOldest()
	}
}

func (c *cache) evictOldest() {
	el := c.lru.Back()
	c.lru.Remove(el)
	delete(c.items, el.Value.(*entry).key)
}

func (c *cache) resize(max int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.max = max
	for len(c.items) > max && len(c.items) > 0 {
		c.evictOldest()
	}
}

func (c *cache) flush() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.items)
	clear(c.items)
	c.lru.Init()
	return n
}

func (c *cache) len() (n, max int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items), c.max
}

// cacheTTL is how long a reply may be kept: the smallest TTL of its answer and authority records
// for a positive answer; for NXDOMAIN and NODATA the SOA's min(TTL, MINIMUM) (RFC 2308 §5), and
// not at all without an SOA. SERVFAIL and other failures are never cached.
func cacheTTL(m *dns.Msg) time.Duration {
	switch m.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return negativeTTL(m)
	default:
		return 0
	}
	if m.Truncated {
		return 0
	}
	if !answers(m) {
		return negativeTTL(m)
	}
	ttl := uint32(1<<32 - 1)
	for _, sec := range [][]dns.RR{m.Answer, m.Ns} {
		for _, rr := range sec {
			if t := rr.Header().Ttl; t < ttl {
				ttl = t
			}
		}
	}
	return capTTL(ttl)
}

// answers reports whether the reply holds records of the type asked (or a CNAME/DNAME leading
// somewhere), as opposed to NODATA.
func answers(m *dns.Msg) bool {
	if len(m.Question) == 0 {
		return len(m.Answer) > 0
	}
	qt := m.Question[0].Qtype
	for _, rr := range m.Answer {
		switch t := rr.Header().Rrtype; {
		case t == qt, qt == dns.TypeANY, t == dns.TypeCNAME, t == dns.TypeDNAME:
			return true
		}
	}
	return false
}

func negativeTTL(m *dns.Msg) time.Duration {
	for _, rr := range m.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return capTTL(min(soa.Hdr.Ttl, soa.Minttl))
		}
	}
	return 0
}

func capTTL(ttl uint32) time.Duration {
	d := time.Duration(ttl) * time.Second
	return min(d, maxCacheTTL)
}
