package resolver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/upstream"
)

var errTestFail = errors.New("test failure")

func (s healthState) String() string {
	return [...]string{"healthy", "suspect", "down", "probing"}[s]
}

// invariant says what is wrong with h, or "" (tests).
func (h *health) invariant() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if (h.state == down || h.state == probing) && !h.alive && !h.retired {
		return h.state.String() + " with no probe alive"
	}
	if h.state == healthy && h.fails != 0 {
		return "healthy with failures counted"
	}
	return ""
}

// TestHealthFailAfterProbeSucceededStartsAProbe is issue 20's first finding on the state machine
// alone: two failures that land after the probe's success, while its goroutine is still on its
// way out, take the member down again, and fail must start the next probe.
func TestHealthFailAfterProbeSucceededStartsAProbe(t *testing.T) {
	h := newHealth()
	h.fail(errTestFail, 2)
	if !h.fail(errTestFail, 2) {
		t.Fatal("the failure that took it down started no probe")
	}
	if !h.beginProbe() {
		t.Fatal("the probe of a down member did not ask")
	}
	if again, up, _ := h.probed(nil); again || !up {
		t.Fatalf("probe answered: again %v, recovered %v", again, up)
	}
	// The probe's goroutine has not returned yet (it is writing "upstream up").
	h.fail(errTestFail, 2)
	if !h.fail(errTestFail, 2) {
		t.Fatal("down again after the probe succeeded, and no probe started: down for good")
	}
	if msg := h.invariant(); msg != "" {
		t.Fatal(msg)
	}
}

// simProbe is Resolver.probe with the upstream replaced by answer: it makes the same transitions.
func simProbe(h *health, answer func() error, stop <-chan struct{}) {
	for {
		select {
		case <-time.After(time.Duration(rand.IntN(200)) * time.Microsecond):
		case <-h.kick:
		case <-stop:
			h.retire()
			return
		}
		if !h.beginProbe() {
			return
		}
		again, _, _ := h.probed(answer())
		if !again {
			return
		}
	}
}

// TestHealthInvariantUnderInterleavings drives one health from many goroutines at once through
// random failures, successes, redials and probes whose answers are random, checking all along
// that a down member always has a probe alive, and at the end that the probes, once answered,
// bring it back. Bounded in operations and time.
func TestHealthInvariantUnderInterleavings(t *testing.T) {
	const (
		rounds   = 20
		drivers  = 8
		ops      = 400
		maxFails = 2
	)
	deadline := time.Now().Add(20 * time.Second)
	for round := range rounds {
		if time.Now().After(deadline) {
			t.Logf("stopped after %d rounds: out of time", round)
			break
		}
		h := newHealth()
		var probesUp atomic.Bool // the upstream answers probes
		answer := func() error {
			if probesUp.Load() || rand.IntN(2) == 0 {
				return nil
			}
			return errTestFail
		}
		stop := make(chan struct{})
		var probes, wg sync.WaitGroup
		var bad atomic.Value
		check := func() {
			if msg := h.invariant(); msg != "" {
				bad.CompareAndSwap(nil, msg)
			}
		}
		for range drivers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range ops {
					switch rand.IntN(6) {
					case 0, 1, 2:
						if h.fail(errTestFail, maxFails) {
							probes.Add(1)
							go func() { defer probes.Done(); simProbe(h, answer, stop) }()
						}
					case 3, 4:
						h.ok()
					case 5:
						h.redial()
					}
					check()
				}
			}()
		}
		wg.Wait()
		check()
		if v := bad.Load(); v != nil {
			t.Fatalf("round %d: %v", round, v)
		}
		probesUp.Store(true)
		for !h.up() {
			if time.Now().After(deadline.Add(10 * time.Second)) {
				t.Fatalf("round %d: still %v with the upstream answering: %s", round, h.state, h.invariant())
			}
			time.Sleep(time.Millisecond)
		}
		close(stop)
		probes.Wait()
	}
}

// flappingServer answers REFUSED while bad is set, else an A record; the probe's ". NS" gets the
// same, and any reply brings a down upstream back.
func flappingServer(t *testing.T) (*dotServer, *atomic.Bool) {
	var bad atomic.Bool
	srv := newDoTServer(t, func(w dns.ResponseWriter, q *dns.Msg) {
		if bad.Load() {
			r := new(dns.Msg)
			r.SetRcode(q, dns.RcodeRefused)
			_ = w.WriteMsg(r)
			return
		}
		reply(dns.RcodeSuccess, 0)(w, q)
	})
	return srv, &bad
}

// blockingHandler is a slog handler that holds the first record with message msg until release
// is closed, and tells held when it is holding it.
type blockingHandler struct {
	msg     string
	held    chan struct{}
	release chan struct{}
	once    *sync.Once
	count   *atomic.Int32
}

func (h blockingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h blockingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h blockingHandler) WithGroup(string) slog.Handler            { return h }
func (h blockingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message != h.msg {
		return nil
	}
	h.count.Add(1)
	h.once.Do(func() {
		close(h.held)
		<-h.release
	})
	return nil
}

// TestUpstreamNeverDownWithoutProbe is issue 20's first finding through the resolver: the probe
// of the only upstream gets its answer and, while it writes "upstream up" (held open here), two
// lookups are REFUSED and take the upstream down again. Before, the probe was still marked as
// running, no new one started, and the upstream stayed down for good (only a redial or a restart
// brought it back); now the next probe starts and brings it back.
func TestUpstreamNeverDownWithoutProbe(t *testing.T) {
	srv, bad := flappingServer(t)
	bh := blockingHandler{msg: "upstream up", held: make(chan struct{}), release: make(chan struct{}), once: new(sync.Once), count: new(atomic.Int32)}
	r := newResolver(t, Options{BackoffMin: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond, Logger: slog.New(bh)}, srv.upstream(t, "only"))
	released := false
	release := func() {
		if !released {
			released = true
			close(bh.release)
		}
	}
	defer release()
	bad.Store(true)
	for i := range 2 {
		if res, err := lookupA(t, r, "a"+strconv.Itoa(i)+".example."); err != nil || res.Rcode != dns.RcodeRefused {
			t.Fatalf("lookup %d: %+v %v, want REFUSED", i, res, err)
		}
	}
	select {
	case <-bh.held: // the probe got its reply (REFUSED is a reply) and is logging
	case <-time.After(10 * time.Second):
		t.Fatal("the probe did not bring the upstream back")
	}
	for i := range 2 {
		if res, err := lookupA(t, r, "b"+strconv.Itoa(i)+".example."); err != nil || res.Rcode != dns.RcodeRefused {
			t.Fatalf("lookup %d after the probe: %+v %v, want REFUSED", i, res, err)
		}
	}
	if ups, _ := r.Status(); ups[0].Healthy {
		t.Fatal("two REFUSED did not take the upstream down")
	}
	release()
	bad.Store(false)
	if !waitHealthy(r, 30*time.Second) { // a hang, not a speed
		ups, _ := r.Status()
		t.Fatalf("down for good: no probe brought the upstream back (%q)", ups[0].LastError)
	}
	if n := bh.count.Load(); n < 2 {
		t.Fatalf("%d \"upstream up\" records, want the second probe's too", n)
	}
	assertHealthInvariant(t, r)
}

// waitHealthy waits until every upstream of r is healthy, and says whether they were within d.
func waitHealthy(r *Resolver, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		ups, _ := r.Status()
		all := true
		for _, u := range ups {
			all = all && u.Healthy
		}
		if all {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func assertHealthInvariant(t *testing.T, r *Resolver) {
	t.Helper()
	for _, m := range r.set.Load().members {
		if msg := m.h.invariant(); msg != "" {
			t.Fatalf("%s: %s", m.u.Name(), msg)
		}
	}
}

// TestResolverHealthUnderRandomFlaps drives a resolver with two flapping upstreams from many
// goroutines: lookups by strategy and by name (the failures and successes), the servers turning
// REFUSED and back (the probes' answers), redials as on SIGUSR1 or a WAN event (ResetHealth and
// each upstream's Reset) and reloads (Configure with the same upstreams, in either order). All
// along every upstream that is down has a probe alive; at the end, with both servers answering,
// both come back without a redial. Bounded in count and time; run with -race.
func TestResolverHealthUnderRandomFlaps(t *testing.T) {
	sa, badA := flappingServer(t)
	sb, badB := flappingServer(t)
	ua, ub := sa.upstream(t, "a"), sb.upstream(t, "b")
	opts := Options{Timeout: time.Second, BackoffMin: 2 * time.Millisecond, BackoffMax: 10 * time.Millisecond}
	r := newResolver(t, opts, ua, ub)

	const (
		lookers = 8
		perLook = 150
	)
	stopAt := time.Now().Add(8 * time.Second)
	var wg sync.WaitGroup
	var done atomic.Bool
	var bad atomic.Value
	var n atomic.Int64
	for w := range lookers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perLook {
				if time.Now().After(stopAt) {
					return
				}
				via := ""
				switch rand.IntN(8) {
				case 0:
					via = "a"
				case 1:
					via = "b"
				}
				name := fmt.Sprintf("w%d-%d.example.", w, i)
				_, _ = r.Lookup(ctxT(t, time.Second), name, []uint16{dns.TypeA, dns.TypeAAAA}, via)
				n.Add(1)
			}
		}()
	}
	var side sync.WaitGroup
	side.Add(3)
	go func() { // the servers flap
		defer side.Done()
		for !done.Load() {
			badA.Store(rand.IntN(2) == 0)
			badB.Store(rand.IntN(3) == 0)
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		}
	}()
	go func() { // SIGUSR1 and reloads
		defer side.Done()
		for !done.Load() {
			switch rand.IntN(3) {
			case 0:
				for _, u := range []*upstream.Upstream{ua, ub} {
					u.Reset()
				}
				r.ResetHealth()
			case 1:
				r.Configure(opts, []*upstream.Upstream{ua, ub})
			case 2:
				r.Configure(opts, []*upstream.Upstream{ub, ua})
			}
			time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
		}
	}()
	go func() { // the invariant, all along
		defer side.Done()
		for !done.Load() {
			for _, m := range r.set.Load().members {
				if msg := m.h.invariant(); msg != "" {
					bad.CompareAndSwap(nil, m.u.Name()+": "+msg)
				}
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	wg.Wait()
	done.Store(true)
	side.Wait()
	if v := bad.Load(); v != nil {
		t.Fatal(v)
	}
	badA.Store(false)
	badB.Store(false)
	if !waitHealthy(r, 30*time.Second) { // a hang, not a speed
		ups, _ := r.Status()
		t.Fatalf("after %d lookups, with both servers answering: %+v", n.Load(), ups)
	}
	assertHealthInvariant(t, r)
	ups, _ := r.Status()
	t.Logf("%d lookups; failures counted: a %d, b %d", n.Load(), ups[0].Failures, ups[1].Failures)
}
