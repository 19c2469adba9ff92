package resolver

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// agedEntry caches name/A with address addr as if it had been stored age ago with a TTL of ttl:
// a test can start with an answer in its last tenth without waiting for it to get there.
func agedEntry(r *Resolver, name, addr string, ttl, age time.Duration) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeA)
	m := new(dns.Msg)
	m.SetReply(q)
	rr, _ := dns.NewRR(name + " 60 IN A " + addr)
	m.Answer = []dns.RR{rr}
	stored := time.Now().Add(-age)
	r.cache.put(&entry{key: keyOf(q), msg: m, upstream: "f1", stored: stored, expires: stored.Add(ttl)})
	return q
}

// waitAddr waits until the cache answers q with addr.
func waitAddr(t *testing.T, r *Resolver, q *dns.Msg, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if e := r.cache.get(keyOf(q), time.Now()); e != nil && e.msg.Answer[0].(*dns.A).A.String() == addr {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cache never answered %s with %s", q.Question[0].Name, addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPrefetch: an answer hit PrefetchMinHits times, the last in the final tenth of its TTL, is
// refreshed from the upstream in the background, once, while the hit itself is answered from the
// cache; after the refresh the cache holds the upstream's answer with its full TTL. An answer
// hit as often earlier in its TTL, or hit once in the last tenth, is not prefetched, nor is
// anything with Prefetch off. The fast path (AppendCached, the DNS listener's) prefetches too.
func TestPrefetch(t *testing.T) {
	srv := newDoTServer(t, reply(dns.RcodeSuccess, 0)) // answers 192.0.2.7, TTL 60
	const old, fresh = "192.0.2.99", "192.0.2.7"
	due := func(r *Resolver, name string) *dns.Msg {
		return agedEntry(r, name, old, time.Minute, 55*time.Second) // 5 s left of 60
	}
	lookupOld := func(t *testing.T, r *Resolver, name string) {
		t.Helper()
		res, err := lookupA(t, r, name)
		if err != nil || !res.Cached || res.Answers[0].(*dns.A).A.String() != old {
			t.Errorf("%s: %+v %v, want the cached answer", name, res, err) // not Fatal: also run in goroutines
		}
	}

	t.Run("due and popular", func(t *testing.T) {
		r := newResolver(t, Options{CacheSize: 16, Prefetch: true}, srv.upstream(t, "f1"))
		before := srv.queries.Load()
		q := due(r, "pf.example.")
		lookupOld(t, r, "pf.example.")
		if n := srv.queries.Load() - before; n != 0 {
			t.Fatalf("one hit sent %d upstream queries, want none before the answer is popular", n)
		}
		// The second hit makes it popular: concurrent hits start one refresh between them.
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() { lookupOld(t, r, "pf.example.") })
		}
		wg.Wait()
		waitAddr(t, r, q, fresh)
		if n := srv.queries.Load() - before; n != 1 {
			t.Fatalf("%d upstream queries for the prefetch, want 1", n)
		}
		if _, c := r.Status(); c.Prefetches != 1 {
			t.Fatalf("status counts %d prefetches, want 1", c.Prefetches)
		}
		res, err := lookupA(t, r, "pf.example.")
		if err != nil || !res.Cached || res.Answers[0].Header().Ttl < 59 {
			t.Fatalf("after the prefetch: %+v %v, want the refreshed answer with its whole TTL", res, err)
		}
		if n := srv.queries.Load() - before; n != 1 {
			t.Fatalf("%d upstream queries after the refreshed answer was hit, want still 1", n)
		}
	})

	t.Run("fast path", func(t *testing.T) {
		r := newResolver(t, Options{CacheSize: 16, Prefetch: true}, srv.upstream(t, "f1"))
		before := srv.queries.Load()
		q := due(r, "fast.example.")
		for range 2 {
			if _, _, ok := r.AppendCached(nil, q); !ok {
				t.Fatal("AppendCached missed a cached answer")
			}
		}
		waitAddr(t, r, q, fresh)
		if n := srv.queries.Load() - before; n != 1 {
			t.Fatalf("%d upstream queries, want the one prefetch", n)
		}
	})

	// What is not prefetched: each case's hits must send nothing upstream.
	for _, c := range []struct {
		name     string
		prefetch bool
		age      time.Duration
		hits     int
	}{
		{"popular but not due", true, 30 * time.Second, 5},
		{"due but hit once", true, 55 * time.Second, 1},
		{"prefetch off", false, 55 * time.Second, 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newResolver(t, Options{CacheSize: 16, Prefetch: c.prefetch}, srv.upstream(t, "f1"))
			before := srv.queries.Load()
			agedEntry(r, "no.example.", old, time.Minute, c.age)
			for range c.hits {
				lookupOld(t, r, "no.example.")
			}
			time.Sleep(100 * time.Millisecond) // a refresh to loopback would have been sent by now
			if n := srv.queries.Load() - before; n != 0 {
				t.Fatalf("%d upstream queries, want none", n)
			}
			if _, st := r.Status(); st.Prefetches != 0 {
				t.Fatalf("status counts %d prefetches", st.Prefetches)
			}
		})
	}
}

// TestPrefetchFailureKeepsTheAnswer: a prefetch the upstream does not answer leaves the cached
// answer in place until it expires, as if there had been none.
func TestPrefetchFailureKeepsTheAnswer(t *testing.T) {
	srv := newDoTServer(t, reply(dns.RcodeSuccess, 2*time.Second))
	r := newResolver(t, Options{CacheSize: 16, Prefetch: true, Timeout: 300 * time.Millisecond}, srv.upstream(t, "f1"))
	agedEntry(r, "slow.example.", "192.0.2.99", time.Minute, 55*time.Second)
	for range 2 {
		if _, err := r.Lookup(context.Background(), "slow.example.", []uint16{dns.TypeA}, ""); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond) // past the prefetch's timeout
	res, err := lookupA(t, r, "slow.example.")
	if err != nil || !res.Cached || res.Answers[0].(*dns.A).A.String() != "192.0.2.99" {
		t.Fatalf("after a failed prefetch: %+v %v, want the cached answer still", res, err)
	}
}
