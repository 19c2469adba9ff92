package dnsserver

import (
	"net/netip"
	"sync"
	"testing"
	"time"
)

func TestLimiterBucket(t *testing.T) {
	l := newLimiter(2, 4, maxClients)
	a := netip.MustParseAddr("192.0.2.1")
	now := time.Unix(1000, 0)
	for i := range 4 {
		if !l.allow(a, now) {
			t.Fatalf("query %d of the burst refused", i)
		}
	}
	if l.allow(a, now) {
		t.Fatal("query beyond the burst allowed")
	}
	if !l.allow(netip.MustParseAddr("192.0.2.2"), now) {
		t.Fatal("another client refused")
	}
	now = now.Add(500 * time.Millisecond) // one token at 2/s
	if !l.allow(a, now) || l.allow(a, now) {
		t.Fatal("want exactly one query after half a second")
	}
	now = now.Add(time.Hour) // refilled to the burst, not beyond
	for i := range 4 {
		if !l.allow(a, now) {
			t.Fatalf("query %d after an hour refused", i)
		}
	}
	if l.allow(a, now) {
		t.Fatal("the bucket filled beyond its burst")
	}
}

// TestLimiterBounded: a flood of distinct (spoofed) sources never grows the table beyond its
// bound, and a steady client in the middle of it keeps its own bucket most of the time.
func TestLimiterBounded(t *testing.T) {
	l := newLimiter(10, 20, maxClients)
	now := time.Unix(1000, 0)
	for i := range 100_000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.allow(a, now)
		if i%1000 == 0 {
			now = now.Add(time.Millisecond)
		}
	}
	if n := l.len(); n > maxClients {
		t.Errorf("%d clients tracked, bound %d", n, maxClients)
	}
	// Idle clients go first: after a quiet spell new clients find room by sweeping them out.
	now = now.Add(time.Minute)
	for i := range 200 { // enough to reach every shard (each sweeps its own)
		l.allow(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), now)
	}
	if n := l.len(); n > maxClients/2 {
		t.Errorf("%d clients tracked after a sweep; idle ones should have gone", n)
	}
}

// TestLimiterConcurrent runs many goroutines against the table (with -race).
func TestLimiterConcurrent(t *testing.T) {
	l := newLimiter(1000, 1000, 256)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				l.allow(netip.AddrFrom4([4]byte{10, 0, byte(g), byte(i)}), time.Now())
			}
		}()
	}
	wg.Wait()
	if n := l.len(); n > 256 {
		t.Errorf("%d clients tracked, bound 256", n)
	}
}
