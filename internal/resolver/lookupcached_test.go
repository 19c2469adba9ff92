package resolver

import (
	"context"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/testenv"
)

// TestLookupCached: LookupCached misses on what is not cached without counting it, and gives for
// a cached answer the Result Lookup gives, counting the hit.
func TestLookupCached(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	r := newResolver(t, Options{CacheSize: 100}, unboundUpstream(t, ub, "unbound"))
	a := []uint16{dns.TypeA}
	if _, ok := r.LookupCached("multi.delve.test.", a); ok {
		t.Fatal("LookupCached hit on an empty cache")
	}
	if _, cs := r.Status(); cs.Misses != 0 || cs.Hits != 0 {
		t.Fatalf("LookupCached counted %+v; a miss is Lookup's to count", cs)
	}
	if _, err := r.Lookup(ctxT(t, 5*time.Second), "multi.delve.test.", a, ""); err != nil {
		t.Fatal(err)
	}
	want, err := r.Lookup(ctxT(t, 5*time.Second), "multi.delve.test.", a, "")
	if err != nil || !want.Cached || len(want.Answers) < 2 {
		t.Fatalf("%+v, %v: want a cached answer of several records", want, err)
	}
	got, ok := r.LookupCached("multi.delve.test.", a)
	if !ok {
		t.Fatal("LookupCached missed a cached answer")
	}
	if got.Name != want.Name || got.Rcode != want.Rcode || got.Upstream != want.Upstream || got.RTT != want.RTT ||
		got.Cached != want.Cached || got.Secure != want.Secure || got.Stale != want.Stale ||
		len(got.Types) != 1 || got.Types[0] != dns.TypeA || len(got.Answers) != len(want.Answers) {
		t.Fatalf("LookupCached = %+v, Lookup = %+v", got, want)
	}
	for i, rr := range got.Answers {
		if rr.String() != want.Answers[i].String() {
			t.Errorf("answer %d: %v, want %v", i, rr, want.Answers[i])
		}
	}
	if _, cs := r.Status(); cs.Hits != 2 || cs.Misses != 1 {
		t.Errorf("cache counters %+v, want 2 hits, 1 miss", cs)
	}
	if _, ok := r.LookupCached("multi.delve.test.", []uint16{dns.TypeA, dns.TypeAAAA}); ok {
		t.Error("LookupCached answered two types; it answers one")
	}
}

// BenchmarkLookupCached is a socket lookup's cached answer of one A record (an in-process DoT
// server fills the cache once).
func BenchmarkLookupCached(b *testing.B) {
	r := benchResolver(b)
	a := []uint16{dns.TypeA}
	if _, err := r.Lookup(context.Background(), "one.example.", a, ""); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if res, ok := r.LookupCached("one.example.", a); !ok || len(res.Answers) != 1 {
			b.Fatalf("LookupCached: %v, %+v", ok, res)
		}
	}
}
