package resolver

import (
	"context"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestStaleAfterClientResponseTimer: with an expired answer at hand and an upstream that answers
// the name only after 2.5 s, a lookup gets the expired answer with TTL 30 and Stale after
// StaleAnswerAfter, not after the timeout, and the upstream's late answer, when it comes,
// refreshes the cache: the next lookup is a fresh hit. Without MaxStale it waits for the answer.
func TestStaleAfterClientResponseTimer(t *testing.T) {
	srv, wait := lateServer(t, 2500*time.Millisecond)
	defer wait()
	u := srv.upstream(t, "f1")
	r := newResolver(t, Options{Timeout: 4 * time.Second, CacheSize: 16, MaxStale: time.Hour}, u)

	q := new(dns.Msg)
	q.SetQuestion("dead-stale.example.", dns.TypeA)
	old := new(dns.Msg)
	old.SetReply(q)
	rr, _ := dns.NewRR("dead-stale.example. 60 IN A 192.0.2.99")
	old.Answer = []dns.RR{rr}
	now := time.Now()
	r.cache.put(&entry{key: keyOf(q), msg: old, upstream: "f1", stored: now.Add(-2 * time.Minute), expires: now.Add(-time.Minute)})

	start := time.Now()
	res, err := r.Lookup(context.Background(), "dead-stale.example.", []uint16{dns.TypeA}, "")
	took := time.Since(start)
	if err != nil || !res.Stale || len(res.Answers) != 1 || res.Answers[0].Header().Ttl != StaleTTL ||
		res.Answers[0].(*dns.A).A.String() != "192.0.2.99" {
		t.Fatalf("after %v: %+v %v, want the expired answer, stale, TTL %d", took, res, err, StaleTTL)
	}
	if took < StaleAnswerAfter {
		t.Fatalf("the stale answer came after %v, before the client-response timer (%v)", took, StaleAnswerAfter)
	}
	if _, c := r.Status(); c.Stale != 1 {
		t.Fatalf("status counts %d stale answers, want 1", c.Stale)
	}
	// The refresh: the flight goes on and caches the upstream's answer.
	deadline := time.Now().Add(30 * time.Second)
	for r.cache.get(keyOf(q), time.Now()) == nil {
		if time.Now().After(deadline) {
			t.Fatal("the late answer did not refresh the cache")
		}
		time.Sleep(50 * time.Millisecond)
	}
	res, err = r.Lookup(context.Background(), "dead-stale.example.", []uint16{dns.TypeA}, "")
	if err != nil || res.Stale || !res.Cached || res.Answers[0].(*dns.A).A.String() != "192.0.2.7" {
		t.Fatalf("after the refresh: %+v %v, want the upstream's answer from the cache", res, err)
	}
	if _, c := r.Status(); c.Stale != 1 {
		t.Fatalf("after a fresh hit, status counts %d stale answers, want still 1", c.Stale)
	}

	// Serve-stale off: the same expired entry is not used.
	r2 := newResolver(t, Options{Timeout: 4 * time.Second, CacheSize: 16}, u)
	r2.cache.put(&entry{key: keyOf(q), msg: old, upstream: "f1", stored: now.Add(-2 * time.Minute), expires: now.Add(-time.Minute)})
	res, err = r2.Lookup(context.Background(), "dead-stale.example.", []uint16{dns.TypeA}, "")
	if err != nil || res.Stale || res.Answers[0].(*dns.A).A.String() != "192.0.2.7" {
		t.Fatalf("serve-stale off: %+v %v, want the upstream's late answer", res, err)
	}
	if _, c := r2.Status(); c.Stale != 0 {
		t.Fatalf("serve-stale off: status counts %d stale answers", c.Stale)
	}
}
