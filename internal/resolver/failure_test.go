package resolver

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/testenv"
	"github.com/delvedns/delve/internal/upstream"
)

// lateServer is an in-process DoT server that answers names starting with "dead" only after
// delay, out of order, while it answers every other name (the stall probe included) at once: a
// recursive resolver whose answers for dead domains take seconds. The late replies are written
// from their own goroutines; the test defers the returned wait, so that they are all written before
// either end closes the connection.
func lateServer(t *testing.T, delay time.Duration) (*dotServer, func()) {
	t.Helper()
	var late sync.WaitGroup
	// mu orders every Add before the Wait for the race detector: a reply read over a socket is
	// no happens-before edge, so an Add from 0 could otherwise race with a Wait that must block.
	var mu sync.Mutex
	s := newDoTServer(t, func(w dns.ResponseWriter, q *dns.Msg) {
		r := new(dns.Msg)
		r.SetReply(q)
		if q.Question[0].Qtype == dns.TypeA {
			rr, _ := dns.NewRR(q.Question[0].Name + " 60 IN A 192.0.2.7")
			r.Answer = append(r.Answer, rr)
		}
		if !strings.HasPrefix(q.Question[0].Name, "dead") {
			_ = w.WriteMsg(r)
			return
		}
		mu.Lock()
		late.Add(1)
		mu.Unlock()
		go func() {
			defer late.Done()
			time.Sleep(delay)
			_ = w.WriteMsg(r)
		}()
	})
	return s, func() {
		mu.Lock()
		defer mu.Unlock()
		late.Wait()
	}
}

// TestSlowNamesDoNotTakeTheUpstreamDown: issue 12's first reproduction. Lookups of names the only
// upstream answers after 4 s time out, as they must; the upstream stays healthy, the next name is
// answered at once, and the connection survives the late answers (it is never taken for stalled,
// though nothing but probes and other names is read on it for longer than StallInterval).
func TestSlowNamesDoNotTakeTheUpstreamDown(t *testing.T) {
	srv, wait := lateServer(t, upstream.StallInterval+time.Second)
	defer wait()
	u := srv.upstream(t, "f1")
	r := newResolver(t, Options{Timeout: 400 * time.Millisecond}, u)
	start := time.Now()
	for _, name := range []string{"dead1.example.", "dead2.example.", "dead3.example."} {
		_, err := r.Lookup(context.Background(), name, []uint16{dns.TypeA}, "")
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("%s: err = %v, want ErrTimeout", name, err)
		}
	}
	res, err := r.Lookup(context.Background(), "alive.example.", []uint16{dns.TypeA}, "")
	if err != nil || len(res.Answers) != 1 {
		t.Fatalf("a live name after slow ones: %+v %v", res, err)
	}
	// Past StallInterval of the first slow query, and past its late answer.
	time.Sleep(time.Until(start.Add(upstream.StallInterval + 1500*time.Millisecond)))
	res, err = r.Lookup(context.Background(), "alive2.example.", []uint16{dns.TypeA}, "")
	if err != nil || len(res.Answers) != 1 {
		t.Fatalf("a live name after the late answers: %+v %v", res, err)
	}
	ups, _ := r.Status()
	st := u.Stats()
	if !ups[0].Healthy || st.ConnsOpened != 1 || st.Stalls != 0 {
		t.Fatalf("healthy %v, stats %+v: want healthy, one connection, no stall", ups[0].Healthy, st)
	}
}

// TestSlowNamesCostNoConnections: issue 12's second reproduction. With two upstreams, six lookups
// of slow names open one connection to each, not one per timeout.
func TestSlowNamesCostNoConnections(t *testing.T) {
	a, waitA := lateServer(t, 2*time.Second)
	defer waitA()
	b, waitB := lateServer(t, 2*time.Second)
	defer waitB()
	ua, ub := a.upstream(t, "a"), b.upstream(t, "b")
	r := newResolver(t, Options{Timeout: 300 * time.Millisecond}, ua, ub)
	for i := range 6 {
		_, err := r.Lookup(context.Background(), "dead"+string(rune('a'+i))+".example.", []uint16{dns.TypeA}, "")
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("lookup %d: err = %v, want ErrTimeout", i, err)
		}
	}
	if _, err := r.Lookup(context.Background(), "alive.example.", []uint16{dns.TypeA}, ""); err != nil {
		t.Fatal(err)
	}
	opened := ua.Stats().ConnsOpened + ub.Stats().ConnsOpened
	ups, _ := r.Status()
	if opened != 2 || !ups[0].Healthy || !ups[1].Healthy {
		t.Fatalf("%d connections opened, health %v %v: want 2, both healthy", opened, ups[0].Healthy, ups[1].Healthy)
	}
}

// TestJoinerKeepsItsOwnDeadline: a caller that joins a flight waits with its own deadline, not
// the first caller's. The first gives up after 300 ms; the second, joining at 150 ms with 2 s,
// gets the answer that comes at 600 ms, from the one upstream query.
func TestJoinerKeepsItsOwnDeadline(t *testing.T) {
	srv := newDoTServer(t, reply(dns.RcodeSuccess, 600*time.Millisecond))
	r := newResolver(t, Options{}, srv.upstream(t, "s"))
	first := make(chan error, 1)
	go func() {
		_, err := r.Lookup(ctxT(t, 300*time.Millisecond), "join.example.", []uint16{dns.TypeA}, "")
		first <- err
	}()
	time.Sleep(150 * time.Millisecond)
	res, err := r.Lookup(ctxT(t, 2*time.Second), "join.example.", []uint16{dns.TypeA}, "")
	if err != nil || len(res.Answers) != 1 {
		t.Fatalf("joiner: %+v %v", res, err)
	}
	if err := <-first; !errors.Is(err, ErrTimeout) {
		t.Fatalf("first caller: err = %v, want ErrTimeout", err)
	}
	if n := srv.queries.Load(); n != 1 {
		t.Fatalf("%d upstream queries, want 1", n)
	}
}

// TestJoinerWithTimeLeftGetsItsOwnAttempt: when the flight a caller joined ends in a timeout
// (here the configured 300 ms) while the caller has time left, the caller gets an attempt of its
// own instead of the flight's timeout: the dnsmasq retransmit 2.5 s into a 3 s flight.
func TestJoinerWithTimeLeftGetsItsOwnAttempt(t *testing.T) {
	srv := newDoTServer(t, reply(dns.RcodeSuccess, 450*time.Millisecond))
	r := newResolver(t, Options{Timeout: 300 * time.Millisecond}, srv.upstream(t, "s"))
	first := make(chan error, 1)
	go func() {
		_, err := r.Lookup(ctxT(t, 300*time.Millisecond), "retry.example.", []uint16{dns.TypeA}, "")
		first <- err
	}()
	time.Sleep(200 * time.Millisecond)
	res, err := r.Lookup(ctxT(t, 3*time.Second), "retry.example.", []uint16{dns.TypeA}, "")
	if err != nil || len(res.Answers) != 1 {
		t.Fatalf("joiner with time left: %+v %v", res, err)
	}
	if err := <-first; !errors.Is(err, ErrTimeout) {
		t.Fatalf("first caller: err = %v, want ErrTimeout", err)
	}
	if n := srv.queries.Load(); n != 2 {
		t.Fatalf("%d upstream queries, want 2 (the flight's and the joiner's own)", n)
	}
}

// TestRefusedCountsServfailWithEDEDoesNot: a REFUSED from the upstream holds against it; a
// SERVFAIL whose extended error blames the name's authorities does not.
func TestRefusedCountsServfailWithEDEDoesNot(t *testing.T) {
	refused := newDoTServer(t, reply(dns.RcodeRefused, 0))
	noAuth := newDoTServer(t, func(w dns.ResponseWriter, q *dns.Msg) {
		r := new(dns.Msg)
		r.SetRcode(q, dns.RcodeServerFailure)
		r.SetEdns0(1232, false)
		opt := r.IsEdns0()
		opt.Option = append(opt.Option, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeNoReachableAuthority})
		_ = w.WriteMsg(r)
	})
	r := newResolver(t, Options{BackoffMin: time.Hour}, refused.upstream(t, "refused"), noAuth.upstream(t, "noauth"))
	for i := range 3 {
		res, err := r.Lookup(ctxT(t, 2*time.Second), "x"+string(rune('a'+i))+".example.", []uint16{dns.TypeA}, "")
		if err != nil || res.Rcode == dns.RcodeSuccess {
			t.Fatalf("lookup %d: %+v %v", i, res, err)
		}
	}
	ups, _ := r.Status()
	if ups[0].Healthy || !ups[1].Healthy {
		t.Fatalf("health refused=%v noauth=%v: want down, up", ups[0].Healthy, ups[1].Healthy)
	}
}

// servfailServer answers names beginning with "dead" SERVFAIL, bare (as unbound does when a
// name's authorities are dead), everything else NOERROR; with all set it answers SERVFAIL to
// everything, as a resolver that lost its own way out does. It counts the questions for good.
func servfailServer(t *testing.T, all bool) (*dotServer, *atomic.Int64) {
	var good atomic.Int64
	srv := newDoTServer(t, func(w dns.ResponseWriter, q *dns.Msg) {
		name := q.Question[0].Name
		if all || strings.HasPrefix(name, "dead") {
			r := new(dns.Msg)
			r.SetRcode(q, dns.RcodeServerFailure)
			_ = w.WriteMsg(r)
			return
		}
		if name == "good.example." {
			good.Add(1)
		}
		reply(dns.RcodeSuccess, 0)(w, q)
	})
	return srv, &good
}

// waitChecks waits until no SERVFAIL check runs on any upstream of r.
func waitChecks(t *testing.T, r *Resolver) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		busy := false
		for _, m := range r.set.Load().members {
			m.h.mu.Lock()
			busy = busy || m.h.checking
			m.h.mu.Unlock()
		}
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a SERVFAIL check did not finish")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBareServfailIsTheName: a LAN client that keeps asking for a dead name gets SERVFAIL each
// time, and the only upstream stays up: the bare SERVFAIL is checked by asking again for the
// last name the upstream answered, which it answers, so nothing counts. An upstream that answers
// SERVFAIL to that name too is down after two lookups, as MaxFails says.
func TestBareServfailIsTheName(t *testing.T) {
	t.Run("one dead name", func(t *testing.T) {
		srv, good := servfailServer(t, false)
		r := newResolver(t, Options{BackoffMin: time.Hour}, srv.upstream(t, "only"))
		if _, err := lookupA(t, r, "good.example."); err != nil {
			t.Fatal(err)
		}
		for i := range 6 {
			res, err := r.Lookup(ctxT(t, 2*time.Second), "dead.example.", []uint16{dns.TypeA, dns.TypeAAAA}, "")
			if err != nil || res.Rcode != dns.RcodeServerFailure {
				t.Fatalf("dead lookup %d: %+v %v, want SERVFAIL", i, res, err)
			}
			waitChecks(t, r)
		}
		ups, _ := r.Status()
		if !ups[0].Healthy || ups[0].Failures != 0 {
			t.Fatalf("after 6 SERVFAILs for one dead name: healthy %v, failures %d; want up, none counted", ups[0].Healthy, ups[0].Failures)
		}
		if n := good.Load(); n < 2 {
			t.Fatalf("good.example. asked %d times: the SERVFAIL was not checked", n)
		}
		if res, err := lookupA(t, r, "other.example."); err != nil || res.Rcode != dns.RcodeSuccess {
			t.Fatalf("an ordinary name after the dead ones: %+v %v", res, err)
		}
	})
	t.Run("everything SERVFAIL", func(t *testing.T) {
		srv, _ := servfailServer(t, true)
		r := newResolver(t, Options{BackoffMin: time.Hour}, srv.upstream(t, "broken"))
		for i := range 2 {
			res, err := lookupA(t, r, "n"+strconv.Itoa(i)+".example.")
			if err != nil || res.Rcode != dns.RcodeServerFailure {
				t.Fatalf("lookup %d: %+v %v, want SERVFAIL", i, res, err)
			}
			waitChecks(t, r)
		}
		ups, _ := r.Status()
		if ups[0].Healthy || !strings.Contains(ups[0].LastError, "SERVFAIL") {
			t.Fatalf("an upstream that SERVFAILs everything: healthy %v, last error %q; want down", ups[0].Healthy, ups[0].LastError)
		}
	})
}

// TestDeadAuthorityThroughUnbound is the same against the real unbound, with a zone whose only
// server is lame (a loopback server that refuses every question, as a server that no longer
// serves the zone does): unbound answers its names SERVFAIL, with no Extended DNS Error, and the
// upstream stays up for every other name.
func TestDeadAuthorityThroughUnbound(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lame := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		r := new(dns.Msg)
		r.SetRcode(q, dns.RcodeRefused)
		_ = w.WriteMsg(r)
	})}
	go func() { _ = lame.ActivateAndServe() }()
	t.Cleanup(func() { _ = lame.Shutdown() })
	ub := testenv.UnboundT(t, testenv.UnboundOptions{ExtraConfig: []string{
		"do-not-query-localhost: no",
		`local-zone: "dead.example." transparent`,
		"stub-zone:",
		`	name: "dead.example."`,
		"	stub-addr: " + strings.Replace(pc.LocalAddr().String(), ":", "@", 1),
	}})
	r := newResolver(t, Options{BackoffMin: time.Hour}, unboundUpstream(t, ub, "unbound"))
	if _, err := lookupA(t, r, testenv.NameA); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		t0 := time.Now()
		res, err := r.Lookup(ctxT(t, 3*time.Second), "www"+strconv.Itoa(i%2)+".dead.example.", []uint16{dns.TypeA, dns.TypeAAAA}, "")
		if err != nil || res.Rcode != dns.RcodeServerFailure {
			t.Fatalf("dead lookup %d: %+v %v, want SERVFAIL from unbound", i, res, err)
		}
		t.Logf("dead lookup %d took %v", i, time.Since(t0))
		waitChecks(t, r)
	}
	ups, _ := r.Status()
	if !ups[0].Healthy || ups[0].Failures != 0 {
		t.Fatalf("after SERVFAILs for a dead zone: healthy %v, failures %d, last error %q; want up", ups[0].Healthy, ups[0].Failures, ups[0].LastError)
	}
	if res, err := lookupA(t, r, testenv.NameTXT); err != nil || res.Rcode != dns.RcodeSuccess {
		t.Fatalf("an ordinary name after the dead ones: %+v %v", res, err)
	}
}
