package resolver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/testenv"
	"github.com/delvedns/delve/internal/upstream"
)

// dotServer is an in-process miekg/dns DoT server with its own mux, for behaviour a real server
// will not show on demand (SERVFAIL, delays). It counts the queries it receives.
type dotServer struct {
	srv     *dns.Server
	port    int
	ca      *testenv.CA
	queries atomic.Int64
}

func newDoTServer(t testing.TB, h func(w dns.ResponseWriter, q *dns.Msg)) *dotServer {
	t.Helper()
	ca, err := testenv.NewCA("resolver test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(testenv.IssueOptions{DNSNames: []string{"dot.delve.test"}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{leaf.Certificate}})
	if err != nil {
		t.Fatal(err)
	}
	s := &dotServer{ca: ca, port: ln.Addr().(*net.TCPAddr).Port}
	mux := dns.NewServeMux()
	mux.HandleFunc(".", func(w dns.ResponseWriter, q *dns.Msg) {
		s.queries.Add(1)
		h(w, q)
	})
	started := make(chan struct{})
	s.srv = &dns.Server{Listener: ln, Net: "tcp-tls", Handler: mux, NotifyStartedFunc: func() { close(started) }}
	go func() { _ = s.srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = s.srv.Shutdown() })
	return s
}

func (s *dotServer) upstream(t *testing.T, name string) *upstream.Upstream {
	t.Helper()
	u, err := upstream.New(upstream.Options{Name: name, Address: "127.0.0.1", Port: s.port, TLSName: "dot.delve.test", RootCAs: s.ca.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = u.Close() })
	return u
}

func reply(rcode int, delay time.Duration) func(w dns.ResponseWriter, q *dns.Msg) {
	return func(w dns.ResponseWriter, q *dns.Msg) {
		time.Sleep(delay)
		r := new(dns.Msg)
		r.SetRcode(q, rcode)
		if rcode == dns.RcodeSuccess {
			rr, _ := dns.NewRR(q.Question[0].Name + " 60 IN A 192.0.2.7")
			r.Answer = append(r.Answer, rr)
		}
		_ = w.WriteMsg(r)
	}
}

func unboundUpstream(t *testing.T, ub *testenv.Unbound, name string) *upstream.Upstream {
	t.Helper()
	u, err := upstream.New(upstream.Options{Name: name, Address: "127.0.0.1", Port: ub.Port, TLSName: ub.TLSName, RootCAs: ub.CertPool()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = u.Close() })
	return u
}

// deadUpstream points at a loopback port nobody listens on.
func deadUpstream(t *testing.T, name string) *upstream.Upstream {
	t.Helper()
	u, err := upstream.New(upstream.Options{Name: name, Address: "127.0.0.1", Port: testenv.DeadPort(t), TLSName: "dot.delve.test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = u.Close() })
	return u
}

func newResolver(t *testing.T, o Options, ups ...*upstream.Upstream) *Resolver {
	r := New(o, ups)
	t.Cleanup(r.Close)
	return r
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func lookupA(t *testing.T, r *Resolver, name string) (*Result, error) {
	return r.Lookup(ctxT(t, 5*time.Second), dns.Fqdn(name), []uint16{dns.TypeA}, "")
}

func TestLookupMergesTypes(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	r := newResolver(t, Options{CacheSize: 100}, unboundUpstream(t, ub, "unbound"))
	res, err := r.Lookup(ctxT(t, 5*time.Second), "a.delve.test.", []uint16{dns.TypeA, dns.TypeAAAA}, "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Rcode != dns.RcodeSuccess || len(res.Answers) != 2 {
		t.Fatalf("got %+v", res)
	}
	if a, ok := res.Answers[0].(*dns.A); !ok || a.A.String() != "192.0.2.1" {
		t.Fatalf("first answer %v", res.Answers[0])
	}
	if aaaa, ok := res.Answers[1].(*dns.AAAA); !ok || aaaa.AAAA.String() != "2001:db8::1" {
		t.Fatalf("second answer %v", res.Answers[1])
	}
	if res.Upstream != "unbound" || res.Cached {
		t.Fatalf("upstream %q cached %v", res.Upstream, res.Cached)
	}
	res, err = r.Lookup(ctxT(t, 5*time.Second), "missing.delve.test.", []uint16{dns.TypeA, dns.TypeAAAA}, "")
	if err != nil || res.Rcode != dns.RcodeNameError || len(res.Answers) != 0 {
		t.Fatalf("missing: %+v %v", res, err)
	}
}

func TestCache(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	u := unboundUpstream(t, ub, "unbound")
	r := newResolver(t, Options{CacheSize: 2}, u)

	t.Run("positive", func(t *testing.T) {
		first, err := lookupA(t, r, "a.delve.test")
		if err != nil || first.Cached {
			t.Fatalf("%+v %v", first, err)
		}
		q0 := u.Stats().Queries
		second, err := lookupA(t, r, "A.Delve.Test")
		if err != nil || !second.Cached || second.RTT != 0 {
			t.Fatalf("second lookup not from the cache: %+v %v", second, err)
		}
		if u.Stats().Queries != q0 {
			t.Fatal("a cached lookup reached the upstream")
		}
	})
	t.Run("negative with SOA minimum", func(t *testing.T) {
		r.Flush()
		if _, err := lookupA(t, r, "missing.delve.test"); err != nil {
			t.Fatal(err)
		}
		res, err := lookupA(t, r, "missing.delve.test")
		if err != nil || !res.Cached || res.Rcode != dns.RcodeNameError {
			t.Fatalf("NXDOMAIN not cached: %+v %v", res, err)
		}
		q := new(dns.Msg)
		q.SetQuestion("missing.delve.test.", dns.TypeA)
		m, _, _ := r.Exchange(ctxT(t, time.Second), q, "")
		if ttl := cacheTTL(m); ttl <= 0 || ttl > 60*time.Second {
			t.Fatalf("negative TTL %v, want at most the SOA minimum (60 s)", ttl)
		}
	})
	t.Run("LRU bound", func(t *testing.T) {
		r.Flush()
		for _, n := range []string{"a.delve.test", "txt.delve.test", "multi.delve.test"} {
			if _, err := lookupA(t, r, n); err != nil {
				t.Fatal(err)
			}
		}
		_, cs := r.Status()
		if cs.Entries != 2 {
			t.Fatalf("%d entries, size 2", cs.Entries)
		}
		res, _ := lookupA(t, r, "a.delve.test")
		if res.Cached {
			t.Fatal("the least recently used entry was not evicted")
		}
	})
	t.Run("flush", func(t *testing.T) {
		_, _ = lookupA(t, r, "a.delve.test")
		if n := r.Flush(); n == 0 {
			t.Fatal("flush emptied nothing")
		}
		res, _ := lookupA(t, r, "a.delve.test")
		if res.Cached {
			t.Fatal("cached after flush")
		}
	})
}

func TestCacheAgesTTL(t *testing.T) {
	srv := newDoTServer(t, reply(dns.RcodeSuccess, 0))
	r := newResolver(t, Options{CacheSize: 10}, srv.upstream(t, "s"))
	t0 := time.Now()
	if _, err := lookupA(t, r, "age.example"); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	time.Sleep(1100 * time.Millisecond)
	t2 := time.Now()
	res, err := lookupA(t, r, "age.example")
	t3 := time.Now()
	if err != nil || !res.Cached {
		t.Fatal(res, err)
	}
	// The entry's age is between t2-t1 and t3-t0, 59 s left on an idle machine; a busy one can
	// make it older, never younger.
	hi, lo := 60-uint32(t2.Sub(t1)/time.Second), 60-uint32(t3.Sub(t0)/time.Second)
	if ttl := res.Answers[0].Header().Ttl; ttl < lo || ttl > hi || ttl >= 60 {
		t.Fatalf("TTL %d after %v-%v in the cache, want %d-%d", ttl, t2.Sub(t1), t3.Sub(t0), lo, hi)
	}
}

func TestServfailNotCachedAndFailsOver(t *testing.T) {
	bad := newDoTServer(t, reply(dns.RcodeServerFailure, 0))
	good := newDoTServer(t, reply(dns.RcodeSuccess, 0))
	r := newResolver(t, Options{CacheSize: 10}, bad.upstream(t, "bad"), good.upstream(t, "good"))
	res, err := lookupA(t, r, "sf.example")
	if err != nil || res.Rcode != dns.RcodeSuccess || res.Upstream != "good" {
		t.Fatalf("%+v %v: want the answer of the second upstream", res, err)
	}
	// Alone, the SERVFAIL is returned, and never cached.
	r2 := newResolver(t, Options{CacheSize: 10}, bad.upstream(t, "bad"))
	for i := range 2 {
		res, err := lookupA(t, r2, "sf2.example")
		if err != nil || res.Rcode != dns.RcodeServerFailure || res.Cached {
			t.Fatalf("round %d: %+v %v", i, res, err)
		}
	}
}

func TestIdenticalLookupsShareOneQuery(t *testing.T) {
	srv := newDoTServer(t, reply(dns.RcodeSuccess, 100*time.Millisecond))
	r := newResolver(t, Options{CacheSize: 0}, srv.upstream(t, "s"))
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res, err := lookupA(t, r, "same.example"); err != nil || len(res.Answers) != 1 {
				t.Error(res, err)
			}
		}()
	}
	wg.Wait()
	if n := srv.queries.Load(); n != 1 {
		t.Fatalf("%d upstream queries for 50 identical concurrent lookups, want 1", n)
	}
}

func TestFailoverBackoffAndProbe(t *testing.T) {
	primary := testenv.UnboundT(t, testenv.UnboundOptions{})
	secondary := testenv.UnboundT(t, testenv.UnboundOptions{})
	up, us := unboundUpstream(t, primary, "primary"), unboundUpstream(t, secondary, "secondary")
	r := newResolver(t, Options{BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond}, up, us)

	res, err := lookupA(t, r, testenv.WildName("before"))
	if err != nil || res.Upstream != "primary" {
		t.Fatalf("%+v %v", res, err)
	}
	if err := primary.Stop(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		res, err := lookupA(t, r, testenv.WildName("during"+strconv.Itoa(i)))
		if err != nil || res.Upstream != "secondary" {
			t.Fatalf("lookup %d while the primary is down: %+v %v", i, res, err)
		}
	}
	ups, _ := r.Status()
	if ups[0].Healthy {
		t.Fatal("primary still healthy after failing")
	}
	if err := primary.Start(); err != nil {
		t.Fatal(err)
	}
	if !waitHealthy(r, 30*time.Second) {
		t.Fatal("the primary was not probed back to health")
	}
	res, err = lookupA(t, r, testenv.WildName("after"))
	if err != nil || res.Upstream != "primary" {
		t.Fatalf("after recovery: %+v %v", res, err)
	}
}

// TestAllDownFailsFast: with every upstream known down, a lookup fails without dialling any.
// (Counting dials, not timing: a refused dial to loopback is fast too.)
func TestAllDownFailsFast(t *testing.T) {
	d1, d2 := deadUpstream(t, "d1"), deadUpstream(t, "d2")
	r := newResolver(t, Options{Timeout: 2 * time.Second, BackoffMin: time.Hour}, d1, d2)
	for range 3 {
		if _, err := lookupA(t, r, "x.example"); !errors.Is(err, ErrNoUpstream) {
			t.Fatalf("err = %v", err)
		}
	}
	dials := func() uint64 {
		return d1.Stats().ConnsOpened + d1.Stats().DialFails + d2.Stats().ConnsOpened + d2.Stats().DialFails
	}
	before := dials()
	_, err := lookupA(t, r, "y.example")
	if !errors.Is(err, ErrNoUpstream) {
		t.Fatalf("err = %v", err)
	}
	if n := dials() - before; n != 0 {
		t.Fatalf("a lookup with every upstream known down dialled %d times", n)
	}
}

func TestStrategies(t *testing.T) {
	t.Run("round robin", func(t *testing.T) {
		a, b := newDoTServer(t, reply(dns.RcodeSuccess, 0)), newDoTServer(t, reply(dns.RcodeSuccess, 0))
		r := newResolver(t, Options{Strategy: RoundRobin}, a.upstream(t, "a"), b.upstream(t, "b"))
		for i := range 10 {
			if _, err := lookupA(t, r, "rr"+strconv.Itoa(i)+".example"); err != nil {
				t.Fatal(err)
			}
		}
		if a.queries.Load() != 5 || b.queries.Load() != 5 {
			t.Fatalf("a got %d, b got %d", a.queries.Load(), b.queries.Load())
		}
	})
	t.Run("fastest", func(t *testing.T) {
		slow, fast := newDoTServer(t, reply(dns.RcodeSuccess, 30*time.Millisecond)), newDoTServer(t, reply(dns.RcodeSuccess, 0))
		r := newResolver(t, Options{Strategy: Fastest}, slow.upstream(t, "slow"), fast.upstream(t, "fast"))
		// Both get measured, then the fast one takes the rest.
		for i := range 20 {
			if _, err := lookupA(t, r, "f"+strconv.Itoa(i)+".example"); err != nil {
				t.Fatal(err)
			}
		}
		if slow.queries.Load() > 2 {
			t.Fatalf("slow upstream got %d of 20 queries", slow.queries.Load())
		}
	})
	t.Run("failover sticks to the first", func(t *testing.T) {
		a, b := newDoTServer(t, reply(dns.RcodeSuccess, 0)), newDoTServer(t, reply(dns.RcodeSuccess, 0))
		r := newResolver(t, Options{}, a.upstream(t, "a"), b.upstream(t, "b"))
		for i := range 5 {
			if _, err := lookupA(t, r, "fo"+strconv.Itoa(i)+".example"); err != nil {
				t.Fatal(err)
			}
		}
		if a.queries.Load() != 5 || b.queries.Load() != 0 {
			t.Fatalf("a got %d, b got %d", a.queries.Load(), b.queries.Load())
		}
	})
	t.Run("named upstream", func(t *testing.T) {
		a, b := newDoTServer(t, reply(dns.RcodeSuccess, 0)), newDoTServer(t, reply(dns.RcodeSuccess, 0))
		r := newResolver(t, Options{CacheSize: 10}, a.upstream(t, "a"), b.upstream(t, "b"))
		res, err := r.Lookup(ctxT(t, 5*time.Second), "via.example.", []uint16{dns.TypeA}, "b")
		if err != nil || res.Upstream != "b" || b.queries.Load() != 1 {
			t.Fatalf("%+v %v", res, err)
		}
		if _, err := r.Lookup(ctxT(t, 5*time.Second), "via.example.", []uint16{dns.TypeA}, "nope"); !errors.Is(err, ErrUnknownUpstream) {
			t.Fatalf("unknown upstream: %v", err)
		}
	})
}

// TestStalledPrimaryLeavesTimeForSecondary: a primary that never answers costs half the
// deadline, not all of it.
func TestStalledPrimaryLeavesTimeForSecondary(t *testing.T) {
	stall := newDoTServer(t, func(w dns.ResponseWriter, q *dns.Msg) { time.Sleep(5 * time.Second) })
	good := newDoTServer(t, reply(dns.RcodeSuccess, 0))
	r := newResolver(t, Options{Timeout: time.Second}, stall.upstream(t, "stall"), good.upstream(t, "good"))
	res, err := r.Lookup(context.Background(), "stall.example.", []uint16{dns.TypeA}, "")
	if err != nil || res.Upstream != "good" {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestTimeout(t *testing.T) {
	stall := newDoTServer(t, func(w dns.ResponseWriter, q *dns.Msg) { time.Sleep(3 * time.Second) })
	r := newResolver(t, Options{Timeout: 200 * time.Millisecond}, stall.upstream(t, "stall"))
	_, err := r.Lookup(context.Background(), "slow.example.", []uint16{dns.TypeA}, "")
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
}

// TestCloseEndsFlights: Close ends an upstream query in flight at once, not at its deadline, and
// its caller gets an error.
func TestCloseEndsFlights(t *testing.T) {
	stall := newDoTServer(t, func(w dns.ResponseWriter, q *dns.Msg) { time.Sleep(3 * time.Second) })
	r := New(Options{Timeout: 10 * time.Second}, []*upstream.Upstream{stall.upstream(t, "stall")})
	done := make(chan error, 1)
	go func() {
		_, err := r.Lookup(context.Background(), "stall.example.", []uint16{dns.TypeA}, "")
		done <- err
	}()
	for stall.queries.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	r.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v with a query in flight", d)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("the lookup succeeded after Close")
		}
	case <-time.After(time.Second):
		t.Error("the lookup did not end after Close")
	}
}

func TestConfigureKeepsCacheAndHealth(t *testing.T) {
	a, b := newDoTServer(t, reply(dns.RcodeSuccess, 0)), newDoTServer(t, reply(dns.RcodeSuccess, 0))
	ua, ub := a.upstream(t, "a"), b.upstream(t, "b")
	r := newResolver(t, Options{CacheSize: 10}, ua)
	if _, err := lookupA(t, r, "keep.example"); err != nil {
		t.Fatal(err)
	}
	r.Configure(Options{CacheSize: 10}, []*upstream.Upstream{ub, ua})
	res, err := lookupA(t, r, "keep.example")
	if err != nil || !res.Cached {
		t.Fatalf("cache lost on Configure: %+v %v", res, err)
	}
	res, err = lookupA(t, r, "new.example")
	if err != nil || res.Upstream != "b" {
		t.Fatalf("new order not used: %+v %v", res, err)
	}
}

// benchResolver is a resolver with a cache of 1024 over one upstream, an in-process DoT server
// answering every name with one A record; both are closed when b ends.
func benchResolver(b *testing.B) *Resolver {
	srv := newDoTServer(b, reply(dns.RcodeSuccess, 0))
	u, err := upstream.New(upstream.Options{Name: "bench", Address: "127.0.0.1", Port: srv.port, TLSName: "dot.delve.test", RootCAs: srv.ca.Pool()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = u.Close() })
	r := New(Options{CacheSize: 1024}, []*upstream.Upstream{u})
	b.Cleanup(r.Close)
	return r
}

// BenchmarkLookupMiss is a cache miss through one upstream (an in-process DoT server), with 16
// lookups in flight at a time, as a router's DNS listener sees them.
func BenchmarkLookupMiss(b *testing.B) {
	r := benchResolver(b)
	var seq atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8) // 8 × GOMAXPROCS lookups in flight
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			name := "n" + strconv.FormatInt(seq.Add(1), 10) + ".example."
			if _, err := r.Lookup(context.Background(), name, []uint16{dns.TypeA}, ""); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestLookupMergesDuplicates: www.delve.test is a CNAME only, so the A and the AAAA replies
// carry the same record; the merged answer has it once.
func TestLookupMergesDuplicates(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	r := newResolver(t, Options{CacheSize: 100}, unboundUpstream(t, ub, "unbound"))
	res, err := r.Lookup(ctxT(t, 5*time.Second), "www.delve.test.", []uint16{dns.TypeA, dns.TypeAAAA}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Answers) != 1 {
		t.Fatalf("%d answers, want the CNAME once: %v", len(res.Answers), res.Answers)
	}
	if c, ok := res.Answers[0].(*dns.CNAME); !ok || c.Target != "a.delve.test." {
		t.Fatalf("answer %v, want the CNAME to a.delve.test.", res.Answers[0])
	}
}

func TestRRKey(t *testing.T) {
	rr := func(s string) dns.RR {
		t.Helper()
		r, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	var buf []byte // shared, as merge shares it
	key := func(s string) string {
		var k string
		k, buf = rrKey(rr(s), buf)
		return k
	}
	same := []struct{ a, b string }{
		{"a.example. 60 IN A 192.0.2.1", "a.example. 3600 IN A 192.0.2.1"},
		{"a.example. 60 IN A 192.0.2.1", "A.Example. 60 IN A 192.0.2.1"},
		{`t.example. 60 IN TXT "x y"`, `t.example. 1 IN TXT "x y"`},
	}
	for _, tt := range same {
		if key(tt.a) != key(tt.b) {
			t.Errorf("%q and %q: different keys, want the same record", tt.a, tt.b)
		}
	}
	differ := []struct{ a, b string }{
		{"a.example. 60 IN A 192.0.2.1", "a.example. 60 IN A 192.0.2.2"},
		{"a.example. 60 IN A 192.0.2.1", "b.example. 60 IN A 192.0.2.1"},
		{"a.example. 60 IN CNAME b.example.", "a.example. 60 IN DNAME b.example."},
		{`t.example. 60 IN TXT "x y"`, `t.example. 60 IN TXT "x" "y"`},
		{"a.example. 60 IN A 192.0.2.1", "a.example. 60 CH A 192.0.2.1"},
		{"a.example. 60 IN CNAME B.example.", "a.example. 60 IN CNAME b.example."}, // data as written
		{`t.example. 60 IN TXT "a long text, to grow the buffer past the first record's"`, `t.example. 60 IN TXT "a"`},
	}
	for _, tt := range differ {
		if key(tt.a) == key(tt.b) {
			t.Errorf("%q and %q: the same key, want different records", tt.a, tt.b)
		}
	}
}

// TestExchangeReplyIsTheCallers: what a caller does to a reply (ages a TTL, drops records)
// does not reach the cached entry that the next caller gets.
func TestExchangeReplyIsTheCallers(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	r := newResolver(t, Options{CacheSize: 100}, unboundUpstream(t, ub, "unbound"))
	q := new(dns.Msg)
	q.SetQuestion("multi.delve.test.", dns.TypeA)
	for i := range 3 {
		m, info, err := r.Exchange(ctxT(t, 5*time.Second), q, "")
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && !info.Cached {
			t.Fatalf("exchange %d not from the cache", i)
		}
		if len(m.Answer) != 4 {
			t.Fatalf("exchange %d: %d answers, want 4", i, len(m.Answer))
		}
		for _, rr := range m.Answer {
			if rr.Header().Ttl == 0 || rr.Header().Ttl > 300 {
				t.Fatalf("exchange %d: TTL %d", i, rr.Header().Ttl)
			}
		}
		for _, rr := range m.Answer {
			rr.Header().Ttl = 0
			rr.Header().Name = "changed.example."
			rr.(*dns.A).A = net.IPv4(198, 51, 100, 9) // a new slice, as a caller would set one
		}
		m.Answer = m.Answer[:1]
		m.Question[0].Name = "changed.example."
	}
	m, _, err := r.Exchange(ctxT(t, 5*time.Second), q, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Answer[0].(*dns.A).A.String(); got != "192.0.2.1" || m.Answer[0].Header().Name != "multi.delve.test." {
		t.Fatalf("the cached entry changed: %v", m.Answer[0])
	}
}

// TestExchangeSharedHeaderIsTheCallers: ExchangeShared's fresh answer carries the cached
// records (not copied), under a header of the caller's: what the caller sets there, and sections
// it replaces, do not reach the cache. An answer from the cache is a copy, its records included,
// as from Exchange.
func TestExchangeSharedHeaderIsTheCallers(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	r := newResolver(t, Options{CacheSize: 100}, unboundUpstream(t, ub, "unbound"))
	q := new(dns.Msg)
	q.SetQuestion("multi.delve.test.", dns.TypeA)
	m, info, err := r.ExchangeShared(ctxT(t, 5*time.Second), q, "")
	if err != nil || info.Cached || len(m.Answer) != 4 || m.Id != q.Id {
		t.Fatalf("first exchange: %v %+v %v", m, info, err)
	}
	e := r.cache.get(keyOf(q), time.Now())
	if e == nil || e.msg == m || &e.msg.Answer[0] != &m.Answer[0] {
		t.Fatalf("the fresh answer is not the cached records under a header of its own")
	}
	m.Id, m.Rcode, m.Response = q.Id+1, dns.RcodeRefused, false
	m.Answer, m.Question, m.Extra = m.Answer[:1], nil, nil

	c, info, err := r.ExchangeShared(ctxT(t, 5*time.Second), q, "")
	if err != nil || !info.Cached || len(c.Answer) != 4 || c.Rcode != dns.RcodeSuccess || !c.Response ||
		len(c.Question) != 1 || c.Id != q.Id {
		t.Fatalf("the cached entry changed: %v %+v %v", c, info, err)
	}
	if &c.Answer[0] == &e.msg.Answer[0] || c.Answer[0] == e.msg.Answer[0] {
		t.Fatalf("an answer from the cache shares the cached records")
	}
}

// TestCacheKeyedBySubnet: an answer for one EDNS Client Subnet is not served to another (RFC
// 7871); the same subnet, however the client wrote its host bits, shares the entry.
func TestCacheKeyedBySubnet(t *testing.T) {
	srv := newDoTServer(t, reply(dns.RcodeSuccess, 0))
	r := newResolver(t, Options{CacheSize: 10}, srv.upstream(t, "s"))
	ask := func(subnet string) Info {
		t.Helper()
		q := new(dns.Msg)
		q.SetQuestion("ecs.example.", dns.TypeA)
		if subnet != "" {
			p := netip.MustParsePrefix(subnet)
			fam := uint16(1)
			if p.Addr().Is6() {
				fam = 2
			}
			opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
			opt.Option = append(opt.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: fam, SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()})
			q.Extra = append(q.Extra, opt)
		}
		_, info, err := r.Exchange(ctxT(t, 5*time.Second), q, "")
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	for i, tt := range []struct {
		subnet  string
		cached  bool
		queries int64
	}{
		{"192.0.2.0/24", false, 1},
		{"192.0.2.0/24", true, 1},
		{"192.0.2.77/24", true, 1}, // the same /24
		{"198.51.100.0/24", false, 2},
		{"2001:db8:1::/48", false, 3},
		{"2001:db8:1::5/48", true, 3},
		{"", false, 4}, // no subnet: an entry of its own
		{"", true, 4},
	} {
		if info := ask(tt.subnet); info.Cached != tt.cached || srv.queries.Load() != tt.queries {
			t.Fatalf("step %d (%q): cached %v, %d upstream queries; want %v, %d", i, tt.subnet, info.Cached, srv.queries.Load(), tt.cached, tt.queries)
		}
	}
}

// TestWorkersAreReused: sequential misses run on the same worker instead of a new goroutine
// each; after a burst of concurrent misses at most MaxIdleWorkers wait, and none once WorkerIdle
// has passed; Close ends them all.
func TestWorkersAreReused(t *testing.T) {
	srv := newDoTServer(t, reply(dns.RcodeSuccess, 0))
	r := New(Options{}, []*upstream.Upstream{srv.upstream(t, "s")})
	for i := range 50 {
		if res, err := lookupA(t, r, fmt.Sprintf("seq%d.example", i)); err != nil || len(res.Answers) != 1 {
			t.Fatal(res, err)
		}
	}
	if n := r.spawns.Load(); n > 3 {
		t.Errorf("50 sequential misses started %d workers, want the same one or two", n)
	}
	// The server answers one query at a time, 20 ms each: the 40 lookups wait on one connection.
	slow := newDoTServer(t, reply(dns.RcodeSuccess, 20*time.Millisecond))
	r2 := New(Options{}, []*upstream.Upstream{slow.upstream(t, "slow")})
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res, err := lookupA(t, r2, fmt.Sprintf("burst%d.example", i)); err != nil || len(res.Answers) != 1 {
				t.Error(res, err)
			}
		}()
	}
	wg.Wait()
	if n := r2.spawns.Load(); n <= MaxIdleWorkers {
		t.Errorf("40 concurrent slow misses started only %d workers", n)
	}
	deadline := time.Now().Add(30 * time.Second)
	for r2.idle.Load() > MaxIdleWorkers && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := r2.idle.Load(); n > MaxIdleWorkers || n == 0 {
		t.Errorf("%d workers idle after the burst, want 1 to %d", n, MaxIdleWorkers)
	}
	for deadline := time.Now().Add(WorkerIdle + 3*time.Second); r2.idle.Load() > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("%d workers still idle %v after the burst", r2.idle.Load(), WorkerIdle+3*time.Second)
			break
		}
	}
	for _, res := range []*Resolver{r, r2} {
		res.Close() // waits for every worker, idle ones included
		if n := res.idle.Load(); n != 0 {
			t.Errorf("%d workers idle after Close", n)
		}
		if res.goWork(func() { t.Error("work ran after Close") }) {
			t.Error("goWork after Close said it started the work")
		}
	}
}
