package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/testenv"
	"github.com/delvedns/delve/internal/upstream"
)

// engineResult compares one-query-at-a-time with pipelining on the same upstream connection,
// using internal/upstream directly (no daemon, no cache).
type engineResult struct {
	seq, pipe       *result
	seqCPU, pipeCPU time.Duration // of this whole process during each run
	pipeDepth       int
	conns           uint64 // TLS connections opened for both runs together
	lookups         int
	seqConns        uint64 // after the sequential run
	unmatched       uint64
	retries         uint64
	pipeInFlight    int // MaxInFlight of the connection
}

// runEngine does n lookups one at a time, then n lookups with depth goroutines, on one Upstream
// with the default options (one connection, 128 queries in flight).
func runEngine(ctx context.Context, e *env, n, depth int, dur time.Duration) (*engineResult, error) {
	u, err := upstream.New(upstream.Options{
		Name: "bench", Address: e.upAddr, Port: e.upPort, TLSName: testenv.TLSName,
		RootCAs: mustPool(e.caFile),
	})
	if err != nil {
		return nil, err
	}
	defer u.Close()
	if err := engineLookup(ctx, u, testenv.BenchName(0), testenv.BenchAddr(0)); err != nil {
		return nil, fmt.Errorf("first lookup: %w", err)
	}
	er := &engineResult{lookups: n, pipeDepth: depth, pipeInFlight: u.Options().MaxInFlight}
	c0 := selfCPU()
	if er.seq, err = engineRun(ctx, u, n, 1, dur, 0); err != nil {
		return nil, err
	}
	c1 := selfCPU()
	er.seqConns = u.Stats().ConnsOpened
	if er.pipe, err = engineRun(ctx, u, n, depth, dur, n); err != nil {
		return nil, err
	}
	er.seqCPU, er.pipeCPU = c1-c0, selfCPU()-c1
	st := u.Stats()
	er.conns, er.unmatched, er.retries = st.ConnsOpened, st.Unmatched, st.Retries
	return er, nil
}

func engineRun(ctx context.Context, u *upstream.Upstream, n, workers int, dur time.Duration, offset int) (*result, error) {
	var next atomic.Int64
	lats := make([][]time.Duration, workers)
	bad := make([]int, workers)
	start := time.Now()
	end := start.Add(dur)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n || time.Now().After(end) {
					return
				}
				// 10,000 bench names, each asked once per run: the upstream answers from its zone.
				k := (i + offset) % 10000
				t := time.Now()
				if err := engineLookup(ctx, u, testenv.BenchName(k), testenv.BenchAddr(k)); err != nil {
					bad[w]++
					continue
				}
				lats[w] = append(lats[w], time.Since(t))
			}
		}()
	}
	wg.Wait()
	r := &result{elapsed: time.Since(start)}
	for w := range workers {
		r.ok += len(lats[w])
		r.bad += bad[w]
		r.lat = append(r.lat, lats[w]...)
	}
	return r, ctx.Err()
}

// selfCPU is the user and system CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func engineLookup(ctx context.Context, u *upstream.Upstream, name, want string) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeA)
	r, err := u.Exchange(ctx, q)
	if err != nil {
		return err
	}
	return checkA(r, want)
}
