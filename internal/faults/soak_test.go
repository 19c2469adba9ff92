//go:build soak

package faults

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/jsonrpc"
	"github.com/delvedns/delve/internal/testenv"
)

// TestSoak is `make soak`: 1,000,000 lookups through the real daemon on the unix socket, mostly
// cache hits, some misses (fresh names under the wildcard, answered by unbound), some NXDOMAIN
// (fresh missing names), bounded in time: it stops at the bound and says how many were done.
// The daemon's RSS, goroutines and open descriptors are sampled every 10 s; at the end they must
// be where they were at the start, give or take. DELVE_SOAK_LOOKUPS and DELVE_SOAK_TIME change
// the count and the bound; DELVE_SOAK_OUT names the file the report is written to.
func TestSoak(t *testing.T) {
	total := envInt("DELVE_SOAK_LOOKUPS", 1_000_000)
	bound := 10 * time.Minute
	if v := os.Getenv("DELVE_SOAK_TIME"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		bound = d
	}
	const (
		workers = 16
		clients = 4
	)
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	c := newConf(t)
	c.addUnbound("u0", ub)
	c.main = []string{"option cache_size '4096'"}
	p := serve(t, c, serveOptions{})
	var cls []*jsonrpc.Client
	for range clients {
		cls = append(cls, p.client(t))
	}
	watch := p.client(t)

	hot := []struct{ name, typ string }{
		{"a.delve.test", "A"}, {"a.delve.test", "AAAA"}, {"multi.delve.test", "A"}, {"delve.test", "MX"},
		{"delve.test", "NS"}, {"txt.delve.test", "TXT"}, {"ns.delve.test", "A"}, {"dot.delve.test", "A"},
		{"www.delve.test", "CNAME"}, {"192.0.2.1", ""}, {"missing.delve.test", "A"}, {"a.delve.test", "MX"},
	}
	// Warm up: every hot name once, and a few rounds so that the connections' workers exist.
	for range 3 {
		for _, h := range hot {
			if _, _, err := lookup(watch, h.name, h.typ); err != nil {
				t.Fatal(err)
			}
		}
	}
	type sample struct {
		at                      time.Duration
		done                    int64
		rss, peak, heap         int64
		goroutines, fds         int
		misses, hits, upQueries uint64
	}
	take := func(start time.Time, done int64) sample {
		st := status(t, watch)
		return sample{at: time.Since(start), done: done, rss: st.Process.RSSKiB, peak: st.Process.PeakRSSKiB, heap: st.Process.HeapKiB,
			goroutines: st.Process.Goroutines, fds: st.Process.OpenFDs, misses: st.Cache.Misses, hits: st.Cache.Hits, upQueries: st.Upstreams[0].Queries}
	}

	var done, failed, missesSent, nxSent atomic.Int64
	var errMu sync.Mutex
	var firstErrs []string
	var next atomic.Int64
	var wg sync.WaitGroup
	var worker func(cl *jsonrpc.Client, n int64, deadline time.Time)
	phase := "warm" // in the fresh names, so that the run's are not the warm-up's
	// run runs lookups number next+1 to n on every worker, until deadline.
	run := func(n int64, deadline time.Time) {
		for w := range workers {
			cl := cls[w%clients]
			wg.Add(1)
			go func() {
				defer wg.Done()
				worker(cl, n, deadline)
			}()
		}
	}
	worker = func(cl *jsonrpc.Client, n int64, deadline time.Time) {
		for time.Now().Before(deadline) {
			i := next.Add(1)
			if i > n {
				return
			}
			var name, typ, want string
			switch {
			case i%50 == 7: // 2%: NXDOMAIN, each a fresh name
				name, typ, want = phase+"nx"+strconv.FormatInt(i, 10)+".delve.test", "A", "NXDOMAIN"
				nxSent.Add(1)
			case i%50 < 5: // 8%: misses
				name, typ, want = testenv.WildName(phase+strconv.FormatInt(i, 10)), "A", "192.0.2.99"
				missesSent.Add(1)
			default:
				h := hot[int(i)%len(hot)]
				name, typ = h.name, h.typ
			}
			l, _, err := lookup(cl, name, typ)
			ok := err == nil
			switch {
			case !ok:
			case want == "NXDOMAIN":
				ok = l.Rcode == "NXDOMAIN"
			case want != "":
				ok = len(l.Addresses) == 1 && l.Addresses[0] == want
			}
			done.Add(1)
			if !ok {
				failed.Add(1)
				errMu.Lock()
				if len(firstErrs) < 10 {
					firstErrs = append(firstErrs, fmt.Sprintf("%s %s: %v %+v", name, typ, err, l))
				}
				errMu.Unlock()
			}
		}
	}
	// The steady state first: 20,000 lookups at full concurrency, so that each connection has
	// the workers it keeps for its next requests (up to 4 idle ones) before the start is taken.
	const warm = 20_000
	idle := take(time.Now(), 0)
	run(warm, time.Now().Add(bound))
	wg.Wait()
	warmFailed := failed.Load()
	next.Store(0)
	phase = "s"
	done.Store(0)
	missesSent.Store(0)
	nxSent.Store(0)

	start := time.Now()
	first := take(start, 0)
	samples := []sample{first}
	run(int64(total), start.Add(bound))
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	var smu sync.Mutex
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				s := take(start, done.Load())
				smu.Lock()
				samples = append(samples, s)
				smu.Unlock()
			}
		}
	}()
	wg.Wait()
	wall := time.Since(start)
	close(stop)
	sampler.Wait()
	time.Sleep(2 * time.Second) // the last responses are written, the workers idle
	last := take(start, done.Load())
	samples = append(samples, last)

	var b strings.Builder
	fmt.Fprintf(&b, "delve soak, %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "command: make soak (go test -tags soak -run '^TestSoak$' ./internal/faults/), %s/%s, %d CPUs, %s\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	fmt.Fprintf(&b, "daemon: the real binary (delve serve), unix socket, one unbound DoT upstream on loopback, cache_size 4096\n")
	fmt.Fprintf(&b, "idle before the warm-up (%d lookups, %d failed): RSS %d KiB, goroutines %d, open fds %d\n", warm, warmFailed, idle.rss, idle.goroutines, idle.fds)
	fmt.Fprintf(&b, "load: %d workers on %d socket connections; ~90%% cache hits over %d names, 8%% misses (fresh wildcard names), 2%% NXDOMAIN (fresh names)\n",
		workers, clients, len(hot))
	fmt.Fprintf(&b, "lookups: %d of %d done in %v (bound %v)%s; %.0f/s; %d failed; %d misses and %d NXDOMAIN sent\n",
		done.Load(), total, wall.Round(time.Millisecond), bound, map[bool]string{true: ", STOPPED AT THE TIME BOUND", false: ""}[done.Load() < int64(total)],
		float64(done.Load())/wall.Seconds(), failed.Load(), missesSent.Load(), nxSent.Load())
	fmt.Fprintf(&b, "daemon cache: %d hits, %d misses; upstream queries %d\n", last.hits-first.hits, last.misses-first.misses, last.upQueries-first.upQueries)
	fmt.Fprintf(&b, "\n%10s %10s %10s %10s %10s %10s %6s\n", "t", "lookups", "rss_kib", "peak_kib", "heap_kib", "goroutines", "fds")
	for _, s := range samples {
		fmt.Fprintf(&b, "%10s %10d %10d %10d %10d %10d %6d\n", s.at.Round(time.Second), s.done, s.rss, s.peak, s.heap, s.goroutines, s.fds)
	}
	fmt.Fprintf(&b, "\nstart → end: RSS %d → %d KiB, goroutines %d → %d, open fds %d → %d\n",
		first.rss, last.rss, first.goroutines, last.goroutines, first.fds, last.fds)
	if len(firstErrs) > 0 {
		fmt.Fprintf(&b, "first failures: %s\n", strings.Join(firstErrs, "\n  "))
	}
	report := b.String()
	t.Log("\n" + report)
	if out := os.Getenv("DELVE_SOAK_OUT"); out != "" {
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	if failed.Load() != 0 || warmFailed != 0 {
		t.Errorf("%d lookups failed", failed.Load())
	}
	// Flat: the same goroutines and descriptors, a few for the upstream connection aside, and
	// memory that did not grow with the number of lookups.
	if last.goroutines > first.goroutines+2 || last.fds > first.fds+1 {
		t.Errorf("goroutines %d → %d, fds %d → %d: not flat", first.goroutines, last.goroutines, first.fds, last.fds)
	}
	if last.rss > 2*first.rss+16<<10 {
		t.Errorf("RSS %d → %d KiB: not flat", first.rss, last.rss)
	}
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return n
		}
	}
	return def
}
