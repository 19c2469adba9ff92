package resolver

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

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
		late.Add(1)
		go func() {
			defer late.Done()
			time.Sleep(delay)
			_ = w.WriteMsg(r)
		}()
	})
	return s, late.Wait
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
