package resolver

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/testenv"
)

// TestInlineFlights: a caller whose deadline is the flight's (here: none given, so the
// resolver's timeout, as the DNS listener asks) runs the flight in its own goroutine: 50
// sequential misses against a real unbound start no worker at all, and each is answered and
// cached. A caller with a deadline of its own past the timeout still gets a worker's flight.
func TestInlineFlights(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{BenchNames: 100})
	r := newResolver(t, Options{CacheSize: 1000}, unboundUpstream(t, ub, "unbound"))
	for i := range 50 {
		q := new(dns.Msg)
		q.SetQuestion(testenv.BenchName(i), dns.TypeA)
		m, info, err := r.Exchange(context.Background(), q, "")
		if err != nil || info.Cached || len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != testenv.BenchAddr(i) {
			t.Fatalf("%s: %v %+v %v", q.Question[0].Name, m, info, err)
		}
	}
	if n := r.spawns.Load(); n != 0 {
		t.Errorf("50 sequential misses without a deadline started %d workers, want none (inline flights)", n)
	}
	if n := r.cache.use().entries; n != 50 {
		t.Errorf("%d answers cached, want 50", n)
	}
	if _, err := lookupA(t, r, "h60.bench.delve.test"); err != nil { // 5 s against the 3 s timeout
		t.Fatal(err)
	}
	if n := r.spawns.Load(); n != 1 {
		t.Errorf("a lookup with a later deadline of its own started %d workers, want 1", n)
	}
}

// TestInlineFlightCancelledJoinerAsksAgain: when the caller running an inline flight is
// cancelled (a socket client that hung up), the flight ends with it; a caller that had joined it
// and still has time asks the upstream again and gets the answer.
func TestInlineFlightCancelledJoinerAsksAgain(t *testing.T) {
	srv := newDoTServer(t, reply(dns.RcodeSuccess, 300*time.Millisecond))
	r := newResolver(t, Options{}, srv.upstream(t, "s"))
	name := "inline-cancel.example."
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeA)
		_, _, err := r.Exchange(ctx, q, "")
		first <- err
	}()
	for srv.queries.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	joined := make(chan error, 1)
	go func() {
		res, err := r.Lookup(ctxT(t, 5*time.Second), name, []uint16{dns.TypeA}, "")
		if err == nil && len(res.Answers) != 1 {
			err = fmt.Errorf("%d answers", len(res.Answers))
		}
		joined <- err
	}()
	// Wait until the joiner waits on the first caller's flight: a goroutine selecting in resolve
	// itself (the first caller selects deeper down, in the upstream's round trip).
	for deadline := time.Now().Add(10 * time.Second); !waitingInResolve(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second lookup never waited on the first one's flight")
		}
	}
	if n := srv.queries.Load(); n != 1 {
		t.Fatalf("%d upstream queries before the cancel, want 1 (the joiner joined)", n)
	}
	cancel()
	if err := <-first; err == nil {
		t.Error("the cancelled caller got an answer")
	}
	if err := <-joined; err != nil {
		t.Fatalf("joiner: %v", err)
	}
	if n := srv.queries.Load(); n != 2 {
		t.Errorf("%d upstream queries, want 2 (the cancelled flight's and the joiner's own)", n)
	}
}

// waitingInResolve reports whether some goroutine is blocked in resolve's own select: a
// goroutine in state select whose innermost frame (tracebacks leave the runtime's out) is resolve.
func waitingInResolve() bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		lines := strings.Split(g, "\n")
		if len(lines) > 1 && strings.Contains(lines[0], "[select") && strings.Contains(lines[1], "resolver.(*Resolver).resolve(") {
			return true
		}
	}
	return false
}
