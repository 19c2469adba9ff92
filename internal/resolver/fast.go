package resolver

import (
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
	e := r.cache.peek(keyOf(q), time.Now())
	if e == nil {
		return nil, Info{}, false
	}
	m = e.msg.Copy()
	m.Id = q.Id
	age(m, time.Since(e.stored))
	return m, Info{Upstream: e.upstream, Cached: true}, true
}

// peek is get without counting a miss.
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
