package faults

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/daemon"
	"github.com/delvedns/delve/internal/jsonrpc"
	"github.com/delvedns/delve/internal/testenv"
)

// recoveryBound is the generous bound on an upstream coming back: the probe backoff tops out at
// 30 s.
const recoveryBound = 35 * time.Second

// TestPrimaryKilledUnderLoad: the primary unbound dies (SIGKILL, or SIGTERM) in the middle of a
// load with a secondary configured. Not one lookup fails: those in flight on the dying connection
// are retried and then answered by the secondary. The primary is marked down, probed, and
// answers again once it is back.
func TestPrimaryKilledUnderLoad(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"SIGKILL", "SIGTERM"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			primary := testenv.UnboundT(t, testenv.UnboundOptions{})
			secondary := testenv.UnboundT(t, testenv.UnboundOptions{})
			c := newConf(t)
			c.addUnbound("primary", primary)
			c.addUnbound("secondary", secondary)
			p := serve(t, c, serveOptions{})
			watch := p.client(t)
			ld := startLoad(t, []*jsonrpc.Client{p.client(t), p.client(t)}, 8, 50000, 60*time.Second, "kill"+how)

			if _, ok := eventually(30*time.Second, func() bool {
				st := status(t, watch)
				return st.Upstreams[0].Queries > 0 && st.Upstreams[0].OpenConns == 1
			}); !ok {
				t.Fatalf("the primary is not carrying the load: %+v", status(t, watch).Upstreams[0])
			}
			var err error
			if how == "SIGKILL" {
				err = primary.Kill()
			} else {
				err = primary.Stop()
			}
			if err != nil {
				t.Fatal(err)
			}
			detect, down := eventually(30*time.Second, func() bool { return !status(t, watch).Upstreams[0].Healthy })
			if !down {
				t.Fatal("the dead primary was never marked down")
			}
			time.Sleep(2 * time.Second) // the secondary alone carries the load
			stDown := status(t, watch)
			if err := primary.Start(); err != nil {
				t.Fatal(err)
			}
			ld.watch("primary")
			healthyIn, healthy := eventually(recoveryBound, func() bool { return status(t, watch).Upstreams[0].Healthy })
			_, used := eventually(recoveryBound, func() bool { _, ok := ld.answeredBy(); return ok })
			at, _ := ld.answeredBy()
			time.Sleep(300 * time.Millisecond)
			ld.finish()
			st := status(t, watch)
			t.Logf("%s: marked down %v after the kill; down %v; healthy again %v after the restart, first answer from it %v after; primary retries %d, failures %d; %s",
				how, detect.Round(time.Millisecond), stDown.Upstreams[0].DownSince, healthyIn.Round(time.Millisecond),
				at.Sub(ld.watchFrom).Round(time.Millisecond), st.Upstreams[0].Retries, st.Upstreams[0].Failures, ld)
			if !healthy || !used {
				t.Fatalf("the primary did not come back within %v (healthy %v, used %v)", recoveryBound, healthy, used)
			}
			if ld.calls.Load() < 500 {
				t.Fatalf("only %d lookups ran", ld.calls.Load())
			}
			if st.Failures != 0 {
				t.Fatalf("status counts %d failed lookups", st.Failures)
			}
		})
	}
}

// TestAllUpstreamsDown: with every upstream frozen (SIGSTOP: connections open, nothing answers)
// or stopped, the first lookups find out, and from then on each lookup fails at once with
// no_upstream instead of waiting out its timeout; when one upstream returns, lookups work again.
func TestAllUpstreamsDown(t *testing.T) {
	t.Parallel()
	signalUnbound := func(sig syscall.Signal) func(*testenv.Unbound) error {
		return func(u *testenv.Unbound) error { return syscall.Kill(u.PID(), sig) }
	}
	cases := []struct {
		name     string
		down, up func(*testenv.Unbound) error
	}{
		{"frozen", signalUnbound(syscall.SIGSTOP), signalUnbound(syscall.SIGCONT)},
		{"stopped", (*testenv.Unbound).Stop, (*testenv.Unbound).Start},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const timeout = 2 * time.Second
			ub1 := testenv.UnboundT(t, testenv.UnboundOptions{})
			ub2 := testenv.UnboundT(t, testenv.UnboundOptions{})
			for _, ub := range []*testenv.Unbound{ub1, ub2} {
				t.Cleanup(func() {
					if ub.Running() {
						_ = syscall.Kill(ub.PID(), syscall.SIGCONT)
					}
				})
			}
			c := newConf(t)
			c.addUnbound("primary", ub1)
			c.addUnbound("secondary", ub2)
			p := serve(t, c, serveOptions{})
			cl := p.client(t)
			n := 0
			miss := func() (*api.Lookup, time.Duration, error) {
				n++
				return lookup(cl, testenv.WildName(fmt.Sprintf("down-%s-%d", tc.name, n)), "A")
			}
			if _, _, err := miss(); err != nil {
				t.Fatal(err)
			}
			for _, ub := range []*testenv.Unbound{ub1, ub2} {
				if err := tc.down(ub); err != nil {
					t.Fatal(err)
				}
			}
			// Finding out: each upstream must fail twice. A handshake into a frozen server that
			// outlives its lookup counts when it ends, at the dial timeout, and joins the lookups
			// that come meanwhile (one event, one fault): how many lookups that takes depends on
			// when they land, so it is bounded in count (15 lookups, 30 s: a hang), not held to 6.
			var learning []string
			known := false
			for range 15 {
				_, d, err := miss()
				if err == nil {
					t.Fatal("a lookup succeeded with every upstream down")
				}
				learning = append(learning, fmt.Sprintf("%s in %v", codeOf(err), d.Round(time.Millisecond)))
				if d > timeout+time.Second {
					t.Fatalf("a lookup took %v, more than its %v timeout", d, timeout)
				}
				st := status(t, cl)
				if !st.Upstreams[0].Healthy && !st.Upstreams[1].Healthy {
					known = true
					break
				}
			}
			if !known {
				t.Fatalf("the upstreams were not marked down after %v", learning)
			}
			// Known down: every lookup fails at once.
			var slowest time.Duration
			for range 10 {
				_, d, err := miss()
				wantCode(t, err, api.CodeNoUpstream, "primary is down (")
				if !strings.Contains(err.Error(), "secondary is down (") {
					t.Fatalf("the error does not name every upstream: %v", err)
				}
				slowest = max(slowest, d)
			}
			if slowest > timeout/2 {
				t.Fatalf("with every upstream known down a lookup took %v (timeout %v): not failing fast", slowest, timeout)
			}
			// One comes back.
			if err := tc.up(ub2); err != nil {
				t.Fatal(err)
			}
			var last error
			took, ok := eventually(recoveryBound, func() bool {
				l, _, err := miss()
				last = err
				return err == nil && l.Upstream == "secondary"
			})
			if !ok {
				t.Fatalf("no recovery within %v: %v", recoveryBound, last)
			}
			t.Logf("%s: finding out: %v; then %d lookups failed fast, the slowest in %v; recovered %v after the secondary returned",
				tc.name, learning, 10, slowest.Round(time.Microsecond), took.Round(time.Millisecond))
		})
	}
}

// TestFaultyUpstreams: an upstream that misbehaves in one way at a time, behind a daemon with short
// idle timeouts. A lookup it spoils ends within the lookup deadline; one it can serve (closing
// after each query, answering out of order, spoofing) still gets the true answer. Afterwards the
// upstream is probed back, its connections are torn down on both ends, and the daemon has the
// goroutines and file descriptors it had before.
func TestFaultyUpstreams(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		b     behaviour
		fails bool
		check func(t *testing.T, st daemon.Status, asked int)
	}{
		{"accepts TCP but never finishes the TLS handshake", noHandshake, true, nil},
		{"stalls in the middle of a reply", stallMidReply, true, nil},
		{"sends garbage", garbage, true, nil},
		{"sends a malformed reply with the query's ID", malformed, true, nil},
		{"closes after every query", closeAfterEach, false, func(t *testing.T, st daemon.Status, asked int) {
			if st.Upstreams[0].ConnsOpened < uint64(asked) {
				t.Errorf("%d connections for %d queries: the server should have forced one each", st.Upstreams[0].ConnsOpened, asked)
			}
		}},
		{"answers out of order", outOfOrder, false, nil},
		{"spoofs replies before the true one", spoofing, false, func(t *testing.T, st daemon.Status, asked int) {
			if st.Upstreams[0].Unmatched < uint64(2*asked) {
				t.Errorf("%d unmatched replies dropped, want at least %d", st.Upstreams[0].Unmatched, 2*asked)
			}
		}},
	}
	const (
		timeout = time.Second
		rounds  = 3
		batch   = 6
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newDotServer(t, dotOptions{}, healthy)
			c := newConf(t)
			c.main = []string{"option timeout '1000'"}
			c.ups = []upstreamConf{srv.upstream("fault")}
			p := serve(t, c, serveOptions{tune: "idle=500ms,dial=1s"})
			// Each status call goes on a connection of its own, and the lookups on another, closed
			// before the count: a connection keeps up to four idle workers for its next requests,
			// and how many it has depends on how its calls interleaved (a call that comes while the
			// last one's worker is still on its way to idle starts another), so a long-lived one
			// would move the count.
			stat := func() daemon.Status {
				c := p.client(t)
				defer c.Close()
				return status(t, c)
			}
			work := p.client(t)
			n := 0
			name := func() string { n++; return testenv.WildName(fmt.Sprintf("f%d", n)) }

			// The baseline: after one good lookup, once its connection has idled out.
			if _, _, err := lookup(work, name(), "A"); err != nil {
				t.Fatal(err)
			}
			settled := func() bool {
				st := stat()
				return st.Upstreams[0].OpenConns == 0 && srv.liveConns() == 0
			}
			work.Close()
			if _, ok := eventually(30*time.Second, settled); !ok {
				t.Fatalf("the first connection did not idle out: %+v", stat().Upstreams[0])
			}
			// The baseline is the least of a few counts: a status connection just closed may not
			// have ended its goroutines yet.
			base := stat()
			for range 4 {
				time.Sleep(50 * time.Millisecond)
				if st := stat(); st.Process.Goroutines < base.Process.Goroutines || st.Process.OpenFDs < base.Process.OpenFDs {
					base.Process.Goroutines = min(base.Process.Goroutines, st.Process.Goroutines)
					base.Process.OpenFDs = min(base.Process.OpenFDs, st.Process.OpenFDs)
				}
			}
			work = p.client(t)

			srv.set(tc.b)
			var slowest time.Duration
			var codes []api.Code
			for r := range rounds {
				var wg sync.WaitGroup
				var mu sync.Mutex
				for range batch {
					asked := name()
					wg.Add(1)
					go func() {
						defer wg.Done()
						l, d, err := lookup(work, asked, "A")
						mu.Lock()
						defer mu.Unlock()
						slowest = max(slowest, d)
						if tc.fails {
							if err == nil {
								t.Errorf("%s: answered %+v", asked, l)
							} else if code := codeOf(err); code != api.CodeTimeout && code != api.CodeNoUpstream && code != api.CodeBadAnswer {
								t.Errorf("%s: %v (%s)", asked, err, code)
							} else {
								codes = append(codes, code)
							}
							return
						}
						if err != nil || len(l.Addresses) != 1 || l.Addresses[0] != faultAddr || l.Answers[0].Name != dns.Fqdn(asked) {
							t.Errorf("%s: %+v %v", asked, l, err)
						}
					}()
				}
				wg.Wait()
				// Forget the failures (as after a WAN change) so that the next round meets the fault
				// again rather than the upstream's down state.
				p.signal(t, syscall.SIGUSR1)
				p.waitCount(t, "reconnecting every upstream", r+1)
			}
			if slowest > timeout+time.Second {
				t.Errorf("a lookup took %v with a %v deadline", slowest, timeout)
			}
			faulted := stat()
			if tc.check != nil {
				tc.check(t, faulted, rounds*batch)
			}

			srv.set(healthy)
			recovery, ok := eventually(recoveryBound, func() bool {
				_, _, err := lookup(work, name(), "A")
				return err == nil
			})
			if !ok {
				t.Fatalf("no lookup worked within %v of the upstream behaving: %+v", recoveryBound, stat().Upstreams[0])
			}
			work.Close()
			var after daemon.Status
			leakFree := func() bool {
				after = stat()
				return after.Upstreams[0].Healthy && after.Upstreams[0].OpenConns == 0 && srv.liveConns() == 0 &&
					after.Process.Goroutines <= base.Process.Goroutines && after.Process.OpenFDs <= base.Process.OpenFDs
			}
			settle, ok := eventually(30*time.Second, leakFree)
			if !ok {
				p.dumpGoroutines(t)
				t.Fatalf("after the faults: %d goroutines (before %d), %d fds (before %d), %d connections open (server side %d), healthy %v",
					after.Process.Goroutines, base.Process.Goroutines, after.Process.OpenFDs, base.Process.OpenFDs,
					after.Upstreams[0].OpenConns, srv.liveConns(), after.Upstreams[0].Healthy)
			}
			t.Logf("%s: %d lookups, slowest %v, codes %v; %d connections, %d unmatched replies; recovered in %v, settled %v later; goroutines %d→%d, fds %d→%d",
				tc.name, rounds*batch, slowest.Round(time.Millisecond), summarize(codes), faulted.Upstreams[0].ConnsOpened-base.Upstreams[0].ConnsOpened,
				faulted.Upstreams[0].Unmatched, recovery.Round(time.Millisecond), settle.Round(time.Millisecond),
				base.Process.Goroutines, after.Process.Goroutines, base.Process.OpenFDs, after.Process.OpenFDs)
		})
	}
}

func summarize(codes []api.Code) map[api.Code]int {
	m := map[api.Code]int{}
	for _, c := range codes {
		m[c]++
	}
	return m
}

// TestWANFlap: the WAN goes down and up in the ways a router sees it; the daemon reconnects for
// the next lookup without a restart.
func TestWANFlap(t *testing.T) {
	t.Parallel()
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	px := newProxy(t, ub.Addr())
	c := newConf(t)
	c.ups = []upstreamConf{{name: "wan", port: px.port(), tlsName: ub.TLSName, ca: ub.CA.CertPEM}}
	p := serve(t, c, serveOptions{})
	cl := p.client(t)
	n := 0
	miss := func() (*api.Lookup, time.Duration, error) {
		n++
		return lookup(cl, testenv.WildName(fmt.Sprintf("wan%d", n)), "A")
	}
	must := func(what string) time.Duration {
		t.Helper()
		l, d, err := miss()
		if err != nil || len(l.Addresses) != 1 {
			t.Fatalf("%s: %+v %v", what, l, err)
		}
		return d
	}
	opened := func() uint64 { return status(t, cl).Upstreams[0].ConnsOpened }
	must("first lookup")

	// The interface event: SIGUSR1 drops every connection.
	p.signal(t, syscall.SIGUSR1)
	p.waitCount(t, "reconnecting every upstream", 1)
	if _, ok := eventually(30*time.Second, func() bool { return status(t, cl).Upstreams[0].OpenConns == 0 }); !ok {
		t.Fatal("SIGUSR1 left a connection open")
	}
	dUSR1 := must("after SIGUSR1")
	if got := opened(); got != 2 {
		t.Fatalf("%d connections opened, want 2", got)
	}

	// The far end resets every connection.
	px.cut()
	dCut := must("after the connections were reset")
	if got := opened(); got != 3 {
		t.Fatalf("%d connections opened, want 3", got)
	}

	// An outage: the link goes silent under the open connection, then comes back with a new
	// address (the old connection stays dead), and the interface event sends SIGUSR1.
	px.blackhole(true)
	_, dOut, errOut := miss()
	if errOut == nil {
		t.Fatal("a lookup succeeded over a dead link")
	}
	px.blackhole(false)
	p.signal(t, syscall.SIGUSR1)
	p.waitCount(t, "reconnecting every upstream", 2)
	dBack := must("after the outage and SIGUSR1")
	if dBack > time.Second {
		t.Errorf("the first lookup after the WAN came back took %v", dBack)
	}

	// An outage that begins with no connection open (the interface went down, its event sent
	// SIGUSR1): the next lookup's TLS handshake goes into the dead link. When the link is back
	// and SIGUSR1 comes again, the first lookup must not wait for that handshake.
	px.blackhole(true)
	p.signal(t, syscall.SIGUSR1)
	p.waitCount(t, "reconnecting every upstream", 3)
	if _, _, err := miss(); err == nil {
		t.Fatal("a lookup succeeded over a dead link")
	}
	px.blackhole(false)
	p.signal(t, syscall.SIGUSR1)
	p.waitCount(t, "reconnecting every upstream", 4)
	dDial := must("after an outage that caught a TLS handshake, and SIGUSR1")
	if dDial > time.Second {
		t.Errorf("the first lookup after the WAN came back took %v", dDial)
	}

	// The same outage without the signal: the dead connection costs at most one lookup.
	px.blackhole(true)
	_, _, _ = miss()
	px.blackhole(false)
	var errs []error
	for range 2 {
		if _, _, err := miss(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 1 {
		t.Errorf("without SIGUSR1, %d lookups failed after the link came back: %v", len(errs), errs)
	}

	if p.exited() || p.count("shutting down") != 0 || p.count("delve serving") != 1 {
		t.Fatalf("the daemon restarted or stopped:\n%s", p.log.String())
	}
	st := status(t, cl)
	t.Logf("lookup after SIGUSR1 %v, after RST %v; during the outage %v (%s); after the outage and SIGUSR1 %v; after an outage that caught a handshake %v; without the signal %d of 2 failed; %d connections opened, uptime %ds",
		dUSR1.Round(time.Millisecond), dCut.Round(time.Millisecond), dOut.Round(time.Millisecond), codeOf(errOut),
		dBack.Round(time.Millisecond), dDial.Round(time.Millisecond), len(errs), st.Upstreams[0].ConnsOpened, st.UptimeS)
}

// TestReloadsUnderLoad: ten valid SIGHUP reloads (alternating one and two upstreams, and the
// timeout) while a load runs, then an invalid file by the reload method and by SIGHUP: not one
// lookup fails, the error is returned, shown in status and logged, and the old configuration
// keeps serving. (TestReloadUnderLoad in internal/daemon does ten reloads by the method.)
func TestReloadsUnderLoad(t *testing.T) {
	t.Parallel()
	ub1 := testenv.UnboundT(t, testenv.UnboundOptions{})
	ub2 := testenv.UnboundT(t, testenv.UnboundOptions{})
	c := newConf(t)
	c.addUnbound("u0", ub1)
	c.addUnbound("u1", ub2)
	two := c.text(t)
	c.ups = c.ups[:1]
	c.main = []string{"option timeout '2500'"}
	one := c.text(t)
	p := serve(t, c, serveOptions{})
	cl := p.client(t)
	ld := startLoad(t, []*jsonrpc.Client{p.client(t), p.client(t)}, 8, 50000, 60*time.Second, "reload")

	for i := range 10 {
		text := two
		if i%2 == 1 {
			text = one
		}
		if err := os.WriteFile(c.path(), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		p.signal(t, syscall.SIGHUP)
		p.waitCount(t, "configuration reloaded", i+1)
		time.Sleep(50 * time.Millisecond)
	}
	if st := status(t, cl); len(st.Upstreams) != 1 || st.Config.TimeoutMS != 2500 {
		t.Fatalf("after ten reloads: %+v %+v", st.Config, st.Upstreams)
	}

	good, _ := os.ReadFile(c.path())
	bad := string(good) + "\toption port '99999'\n" // lands in upstream u0
	if err := os.WriteFile(c.path(), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	const place = `delve.u0.port: "99999" is not a port`
	err := call(cl, "reload", nil, nil)
	wantCode(t, err, api.CodeConfig, place)
	if !strings.Contains(err.Error(), "running configuration stays") {
		t.Fatalf("the error does not say the old configuration stays: %v", err)
	}
	if st := status(t, cl); !strings.Contains(st.Config.LastReload, place) || st.Config.TimeoutMS != 2500 {
		t.Fatalf("status after a refused reload: %+v", st.Config)
	}
	p.signal(t, syscall.SIGHUP)
	p.waitCount(t, "reload refused", 2) // the method's refusal, then SIGHUP's
	// slog's text handler escapes the quotes of the value.
	logged := strings.ReplaceAll(place, `"`, `\"`)
	if p.count(logged) < 1 {
		t.Fatalf("the log does not name the bad value:\n%s", p.log.String())
	}
	methodLogged := p.count(logged) >= 2 // SIGHUP's refusal and the method's
	time.Sleep(500 * time.Millisecond)   // the load runs on with the old configuration
	if err := os.WriteFile(c.path(), good, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := call(cl, "reload", nil, nil); err != nil {
		t.Fatal(err)
	}
	if st := status(t, cl); st.Config.LastReload != "" {
		t.Fatalf("a good reload left the error in status: %q", st.Config.LastReload)
	}
	ld.finish()
	t.Logf("11 good and 2 refused reloads under %s", ld)
	t.Run("the reload method's refusal is logged", func(t *testing.T) {
		if !methodLogged {
			t.Fatal("the reload method's refusal is returned and shown in status but not logged")
		}
	})
}
