package dnsserver

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"time"
)

// maxClients bounds the clients the rate limiter tracks at once (about 100 KiB), so a flood of
// spoofed source addresses cannot grow memory.
const maxClients = 4096

const limiterShards = 16

// limiter is a token bucket per client address: rate tokens a second up to burst, one per query.
// A forgotten client starts again with a full bucket, so forgetting one whose bucket is full
// already changes nothing: when a shard is full those go first, then (a flood of fresh sources
// keeping every bucket busy) a random one.
type limiter struct {
	rate, burst float64
	perShard    int
	seed        maphash.Seed
	shards      [limiterShards]limiterShard
}

type limiterShard struct {
	mu        sync.Mutex
	buckets   map[netip.Addr]bucket
	lastSweep time.Time
}

type bucket struct {
	_      [0]func() // never compared: the binary then carries no equality function for it
	tokens float64
	last   time.Time
}

func newLimiter(rate, burst float64, max int) *limiter {
	l := &limiter{rate: rate, burst: burst, perShard: (max + limiterShards - 1) / limiterShards, seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].buckets = make(map[netip.Addr]bucket)
	}
	return l
}

// allow takes a token for client at now, reporting whether there was one.
func (l *limiter) allow(client netip.Addr, now time.Time) bool {
	sh := &l.shards[maphash.Comparable(l.seed, client)%limiterShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b, ok := sh.buckets[client]
	if ok {
		b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	} else {
		if len(sh.buckets) >= l.perShard {
			l.evict(sh, now)
		}
		b.tokens = l.burst
	}
	b.last = now
	allowed := b.tokens >= 1
	if allowed {
		b.tokens--
	}
	sh.buckets[client] = b
	return allowed
}

// evict makes room for one entry in a full shard.
func (l *limiter) evict(sh *limiterShard, now time.Time) {
	// Sweeping costs a pass over the shard, so at most once a second.
	if now.Sub(sh.lastSweep) >= time.Second {
		sh.lastSweep = now
		full := time.Duration(l.burst / l.rate * float64(time.Second))
		for a, b := range sh.buckets {
			if now.Sub(b.last) >= full {
				delete(sh.buckets, a)
			}
		}
	}
	for len(sh.buckets) >= l.perShard {
		for a := range sh.buckets { // map iteration starts at a random entry
			delete(sh.buckets, a)
			break
		}
	}
}

// len is the number of clients tracked.
func (l *limiter) len() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.buckets)
		sh.mu.Unlock()
	}
	return n
}
