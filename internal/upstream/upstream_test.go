package upstream

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/testenv"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func realUpstream(t *testing.T, ub *testenv.Unbound, tune func(*Options)) *Upstream {
	t.Helper()
	o := Options{Name: "unbound", Address: "127.0.0.1", Port: ub.Port, TLSName: ub.TLSName, RootCAs: ub.CertPool()}
	if tune != nil {
		tune(&o)
	}
	u, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = u.Close() })
	return u
}

// TestUnboundAnswersMatchKdig asks the real unbound the same questions as kdig does and compares
// rcode and records.
func TestUnboundAnswersMatchKdig(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	u := realUpstream(t, ub, nil)
	cases := []struct{ name, typ string }{
		{"a.delve.test", "A"},
		{"a.delve.test", "AAAA"},
		{"delve.test", "MX"},
		{"txt.delve.test", "TXT"},
		{"www.delve.test", "CNAME"},
		{"multi.delve.test", "A"},
		{"missing.delve.test", "A"},
		{"a.delve.test", "MX"},
		{"big.delve.test", "A"},
	}
	for _, c := range cases {
		t.Run(c.name+"/"+c.typ, func(t *testing.T) {
			want := testenv.KdigT(t, ub, c.name, c.typ)
			q := new(dns.Msg)
			q.SetQuestion(dns.Fqdn(c.name), dns.StringToType[c.typ])
			got, err := u.Exchange(ctxT(t, 5*time.Second), q)
			if err != nil {
				t.Fatal(err)
			}
			if rc := dns.RcodeToString[got.Rcode]; rc != want.Rcode {
				t.Fatalf("rcode %s, kdig says %s", rc, want.Rcode)
			}
			if len(got.Answer) != len(want.Answer) {
				t.Fatalf("%d answers, kdig has %d", len(got.Answer), len(want.Answer))
			}
			for i, rr := range got.Answer {
				data := rr.String()[len(rr.Header().String()):]
				if data != want.Answer[i].Data || dns.TypeToString[rr.Header().Rrtype] != want.Answer[i].Type {
					t.Errorf("answer %d: %s %q, kdig: %s %q", i, dns.TypeToString[rr.Header().Rrtype], data, want.Answer[i].Type, want.Answer[i].Data)
				}
			}
		})
	}
}

// TestPipelinedOneConnection runs many goroutines on one upstream: every answer is right, and
// they all shared one TLS connection.
func TestPipelinedOneConnection(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	u := realUpstream(t, ub, nil)
	const workers, each = 32, 50
	var wg sync.WaitGroup
	var bad atomic.Int64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				name := testenv.WildName("w" + itoa(w) + "-" + itoa(i))
				r, err := u.Exchange(ctxT(t, 10*time.Second), query(name))
				if err != nil || len(r.Answer) != 1 || r.Answer[0].Header().Name != name {
					bad.Add(1)
					t.Errorf("%s: %v %v", name, err, r)
					return
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() > 0 {
		t.Fatalf("%d bad answers", bad.Load())
	}
	st := u.Stats()
	if st.ConnsOpened != 1 {
		t.Errorf("opened %d connections for %d queries, want 1", st.ConnsOpened, workers*each)
	}
	if st.Queries != workers*each || st.Errors != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestOutOfOrderReplies: the server answers each burst in reverse order; every caller gets its
// own answer.
func TestOutOfOrderReplies(t *testing.T) {
	const n = 8
	srv := newFaultServer(t, certOpts{}, func(c *srvConn) {
		for {
			var qs []*dns.Msg
			for range n {
				q, _, err := c.read()
				if err != nil {
					return
				}
				qs = append(qs, q)
			}
			for i := len(qs) - 1; i >= 0; i-- {
				if err := c.write(answer(qs[i])); err != nil {
					return
				}
			}
		}
	})
	u := srv.upstream(t, nil)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "q" + itoa(i) + ".example."
			r, err := u.Exchange(ctxT(t, 5*time.Second), query(name))
			if err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			if r.Answer[0].Header().Name != name {
				t.Errorf("asked %s, got the answer for %s", name, r.Answer[0].Header().Name)
			}
		}()
	}
	wg.Wait()
}

// TestSpoofedRepliesDropped: a reply with a wrong ID and one with the right ID but another
// question come first; both are dropped and counted, and the real reply is delivered.
func TestSpoofedRepliesDropped(t *testing.T) {
	srv := newFaultServer(t, certOpts{}, func(c *srvConn) {
		for {
			q, _, err := c.read()
			if err != nil {
				return
			}
			wrongID := answer(q)
			wrongID.Id = q.Id + 1
			wrongQ := answer(q)
			wrongQ.Question[0].Name = "evil.example."
			wrongQ.Answer[0].Header().Name = "evil.example."
			notReply := answer(q)
			notReply.Response = false
			for _, m := range []*dns.Msg{wrongID, wrongQ, notReply, answer(q)} {
				if err := c.write(m); err != nil {
					return
				}
			}
		}
	})
	u := srv.upstream(t, nil)
	r, err := u.Exchange(ctxT(t, 5*time.Second), query("good.example."))
	if err != nil {
		t.Fatal(err)
	}
	if r.Answer[0].Header().Name != "good.example." {
		t.Fatalf("got %v", r)
	}
	if n := u.Stats().Unmatched; n != 3 {
		t.Fatalf("unmatched = %d, want 3", n)
	}
}

// TestQuestionMatchIgnoresCase: a server may echo the name in another case (0x20).
func TestQuestionMatchIgnoresCase(t *testing.T) {
	srv := newFaultServer(t, certOpts{}, func(c *srvConn) {
		for {
			q, _, err := c.read()
			if err != nil {
				return
			}
			r := answer(q)
			r.Question[0].Name = "MiXeD.ExAmPlE."
			if err := c.write(r); err != nil {
				return
			}
		}
	})
	u := srv.upstream(t, nil)
	if _, err := u.Exchange(ctxT(t, 5*time.Second), query("mixed.example.")); err != nil {
		t.Fatal(err)
	}
}

// TestServerClosesAfterEachQuery: the server answers one query per connection and closes. Every
// query succeeds; closed pooled connections are retries, not errors.
func TestServerClosesAfterEachQuery(t *testing.T) {
	srv := newFaultServer(t, certOpts{}, func(c *srvConn) {
		q, _, err := c.read()
		if err != nil {
			return
		}
		_ = c.write(answer(q))
	})
	u := srv.upstream(t, nil)
	for i := range 20 {
		if _, err := u.Exchange(ctxT(t, 5*time.Second), query("n"+itoa(i)+".example.")); err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
	}
	st := u.Stats()
	if st.Errors != 0 {
		t.Fatalf("errors = %d, want 0 (%+v)", st.Errors, st)
	}
	if srv.accepted() < 2 {
		t.Fatalf("only %d connections: the server should have forced new ones", srv.accepted())
	}
}

// TestKillConnectionUnderInflight closes the server side of the pooled connection while many
// queries are in flight on it: none is lost, all are answered on a fresh connection.
func TestKillConnectionUnderInflight(t *testing.T) {
	var held sync.WaitGroup
	release := make(chan struct{})
	var first atomic.Bool
	first.Store(true)
	srv := newFaultServer(t, certOpts{}, func(c *srvConn) {
		if first.Swap(false) {
			// The first connection reads queries and never answers: they stay in flight.
			held.Add(1)
			defer held.Done()
			go func() { <-release; _ = c.Close() }()
			for {
				if _, _, err := c.read(); err != nil {
					return
				}
			}
		}
		echoServe(c)
	})
	u := srv.upstream(t, nil)
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "k" + itoa(i) + ".example."
			r, err := u.Exchange(ctxT(t, 10*time.Second), query(name))
			if err == nil && r.Answer[0].Header().Name != name {
				err = errors.New("wrong answer for " + name)
			}
			errs <- err
		}()
	}
	// Wait until all are in flight on the first connection, then kill it.
	deadline := time.Now().Add(30 * time.Second)
	for u.Stats().InFlight < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := u.Stats().InFlight; got != n {
		t.Fatalf("in flight %d, want %d", got, n)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	st := u.Stats()
	if st.Errors != 0 || st.Retries < n {
		t.Fatalf("stats %+v: want no errors and at least %d retries", st, n)
	}
}

// TestStalledServer: a server that reads and never answers. The exchange ends at its deadline,
// and the stalled connection is torn down so the next query reconnects.
func TestStalledServer(t *testing.T) {
	srv := newFaultServer(t, certOpts{}, func(c *srvConn) {
		for {
			if _, _, err := c.read(); err != nil {
				return
			}
		}
	})
	u := srv.upstream(t, nil)
	start := time.Now()
	_, err := u.Exchange(ctxT(t, 300*time.Millisecond), query("stall.example."))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	// The bound tells the caller's own deadline from the stall detection's.
	if d := time.Since(start); d >= StallInterval {
		t.Fatalf("took %v with a 300 ms deadline: it waited for the stall detection (%v)", d, StallInterval)
	}
	waitFor(t, func() bool { return u.Stats().OpenConns == 0 }, "the stalled connection to close")
	if st := u.Stats(); st.Stalls != 1 {
		t.Fatalf("%d stalls counted, want 1", st.Stalls)
	}
}

// TestStallMidReply: the server sends half a reply and stops.
func TestStallMidReply(t *testing.T) {
	srv := newFaultServer(t, certOpts{}, func(c *srvConn) {
		q, _, err := c.read()
		if err != nil {
			return
		}
		raw, _ := answer(q).Pack()
		b := []byte{byte(len(raw) >> 8), byte(len(raw))}
		_, _ = c.Write(append(b, raw[:len(raw)/2]...))
		_, _, _ = c.read() // hold the connection open
	})
	u := srv.upstream(t, nil)
	_, err := u.Exchange(ctxT(t, 300*time.Millisecond), query("half.example."))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	waitFor(t, func() bool { return u.Stats().OpenConns == 0 }, "the stalled connection to close")
}

// TestGarbageServer: the server answers with random bytes; the exchange fails within its
// deadline and the connection is closed.
func TestGarbageServer(t *testing.T) {
	srv := newFaultServer(t, certOpts{}, func(c *srvConn) {
		if _, _, err := c.read(); err != nil {
			return
		}
		_, _ = c.Write([]byte("\x00\x20this is not a DNS message at all!"))
		_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
		_, _, _ = c.read()
	})
	u := srv.upstream(t, nil)
	_, err := u.Exchange(ctxT(t, 500*time.Millisecond), query("garbage.example."))
	if err == nil {
		t.Fatal("garbage accepted as a reply")
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // a hang, not a speed
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCancelWhileBlocked: cancelling the context returns at once although the read is blocked.
func TestCancelWhileBlocked(t *testing.T) {
	srv := newFaultServer(t, certOpts{}, func(c *srvConn) {
		for {
			if _, _, err := c.read(); err != nil {
				return
			}
		}
	})
	u := srv.upstream(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := u.Exchange(ctx, query("cancel.example."))
		done <- err
	}()
	waitFor(t, func() bool { return u.Stats().InFlight == 1 }, "the query to be in flight")
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Exchange did not return after cancel")
	}
}

func TestTLSFailures(t *testing.T) {
	now := time.Now()
	wrongPin := base64.StdEncoding.EncodeToString(make([]byte, 32))
	cases := []struct {
		name string
		cert certOpts
		tune func(*Options)
		want TLSKind
	}{
		{"name mismatch", certOpts{names: []string{"other.delve.test"}}, nil, TLSNameMismatch},
		{"expired", certOpts{notBefore: now.Add(-48 * time.Hour), notAfter: now.Add(-24 * time.Hour)}, nil, TLSExpired},
		{"not yet valid", certOpts{notBefore: now.Add(24 * time.Hour), notAfter: now.Add(48 * time.Hour)}, nil, TLSNotYetValid},
		{"unknown authority", certOpts{}, func(o *Options) { o.RootCAs = mustCA(t).Pool() }, TLSUnknownAuthority},
		{"pin mismatch with name", certOpts{}, func(o *Options) { o.Pins = [][32]byte{mustPin(t, wrongPin)} }, TLSPinMismatch},
		{"pin mismatch pin only", certOpts{}, func(o *Options) { o.TLSName = ""; o.Pins = [][32]byte{mustPin(t, wrongPin)} }, TLSPinMismatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := newFaultServer(t, c.cert, echoServe)
			u := srv.upstream(t, c.tune)
			_, err := u.Exchange(ctxT(t, 5*time.Second), query("tls.example."))
			var te *TLSError
			if !errors.As(err, &te) {
				t.Fatalf("err = %v, want a *TLSError", err)
			}
			if te.Kind != c.want {
				t.Fatalf("kind %d (%v), want %d", te.Kind, err, c.want)
			}
			if u.Stats().ConnsOpened != 0 {
				t.Fatal("a connection was counted as open after a TLS failure")
			}
		})
	}
}

func TestPins(t *testing.T) {
	srv := newFaultServer(t, certOpts{}, echoServe)
	good := mustPin(t, srv.leaf.Pin)
	other := mustPin(t, base64.StdEncoding.EncodeToString(make([]byte, 32)))
	caPin := SPKIPin(srv.ca.Cert)
	cases := []struct {
		name string
		tune func(*Options)
		ok   bool
	}{
		{"pin only, leaf key", func(o *Options) { o.TLSName = ""; o.RootCAs = nil; o.Pins = [][32]byte{other, good} }, true},
		{"pin only, CA key is not enough", func(o *Options) { o.TLSName = ""; o.RootCAs = nil; o.Pins = [][32]byte{caPin} }, false},
		{"name and pin", func(o *Options) { o.Pins = [][32]byte{good} }, true},
		{"name and CA pin", func(o *Options) { o.Pins = [][32]byte{caPin} }, true},
		{"pin right, name wrong", func(o *Options) { o.TLSName = "other.delve.test"; o.Pins = [][32]byte{good} }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := srv.upstream(t, c.tune)
			_, err := u.Exchange(ctxT(t, 5*time.Second), query("pin.example."))
			if (err == nil) != c.ok {
				t.Fatalf("err = %v, want ok=%v", err, c.ok)
			}
		})
	}
}

// TestClockUnsynced: with the tolerance on and the clock known to be wrong, a certificate whose
// only fault is "not yet valid" is accepted and reported; an expired one still is not.
func TestClockUnsynced(t *testing.T) {
	now := time.Now()
	future := newFaultServer(t, certOpts{notBefore: now.Add(24 * time.Hour), notAfter: now.Add(48 * time.Hour)}, echoServe)
	var told atomic.Int32
	tune := func(o *Options) {
		o.ClockUnsynced = func(time.Time) bool { return true }
		o.OnClockTolerance = func(string, time.Time, time.Time) { told.Add(1) }
	}
	u := future.upstream(t, tune)
	if _, err := u.Exchange(ctxT(t, 5*time.Second), query("clock.example.")); err != nil {
		t.Fatalf("not-yet-valid certificate refused with the tolerance on: %v", err)
	}
	if told.Load() == 0 {
		t.Fatal("the tolerance was used silently")
	}
	// The tolerance only applies while the clock is known to be wrong.
	u2 := future.upstream(t, func(o *Options) { o.ClockUnsynced = func(time.Time) bool { return false } })
	if _, err := u2.Exchange(ctxT(t, 5*time.Second), query("clock.example.")); err == nil {
		t.Fatal("not-yet-valid certificate accepted with a synced clock")
	}
	// An expired certificate is never accepted.
	expired := newFaultServer(t, certOpts{notBefore: now.Add(-48 * time.Hour), notAfter: now.Add(-24 * time.Hour)}, echoServe)
	u3 := expired.upstream(t, tune)
	if _, err := u3.Exchange(ctxT(t, 5*time.Second), query("clock.example.")); err == nil {
		t.Fatal("expired certificate accepted under the clock tolerance")
	}
	// A certificate for another name is never accepted either.
	wrong := newFaultServer(t, certOpts{names: []string{"other.delve.test"}, notBefore: now.Add(24 * time.Hour), notAfter: now.Add(48 * time.Hour)}, echoServe)
	u4 := wrong.upstream(t, tune)
	if _, err := u4.Exchange(ctxT(t, 5*time.Second), query("clock.example.")); err == nil {
		t.Fatal("wrong-name certificate accepted under the clock tolerance")
	}
}

// TestPaddingAndKeepalive: queries are padded to 128-octet blocks and carry an empty
// edns-tcp-keepalive option; the client's DO bit survives; a server keepalive of 0 makes the
// client close the connection after the reply.
func TestPaddingAndKeepalive(t *testing.T) {
	type seen struct {
		size      int
		padding   bool
		keepalive bool
		do        bool
	}
	got := make(chan seen, 10)
	srv := newFaultServer(t, certOpts{}, func(c *srvConn) {
		for {
			q, raw, err := c.read()
			if err != nil {
				return
			}
			s := seen{size: len(raw)}
			if opt := q.IsEdns0(); opt != nil {
				s.do = opt.Do()
				for _, o := range opt.Option {
					switch o.(type) {
					case *dns.EDNS0_PADDING:
						s.padding = true
					case *dns.EDNS0_TCP_KEEPALIVE:
						s.keepalive = true
					}
				}
			}
			got <- s
			r := answer(q)
			r.SetEdns0(1232, false)
			r.IsEdns0().Option = append(r.IsEdns0().Option, &dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE, Timeout: 0})
			if err := c.write(r); err != nil {
				return
			}
		}
	})
	u := srv.upstream(t, nil)
	for _, name := range []string{"a.example.", "a-much-longer-name.with.several.labels.example."} {
		q := query(name)
		q.SetEdns0(4096, true)
		r, err := u.Exchange(ctxT(t, 5*time.Second), q)
		if err != nil {
			t.Fatal(err)
		}
		s := <-got
		if s.size%128 != 0 || !s.padding || !s.keepalive || !s.do {
			t.Fatalf("%s: query %+v: want a multiple of 128 octets, padding, keepalive and DO", name, s)
		}
		if opt := r.IsEdns0(); opt != nil {
			for _, o := range opt.Option {
				if o.Option() == dns.EDNS0TCPKEEPALIVE || o.Option() == dns.EDNS0PADDING {
					t.Fatal("transport option left in the reply")
				}
			}
		}
		waitFor(t, func() bool { return u.Stats().OpenConns == 0 }, "keepalive 0 to close the connection")
	}
	if n := srv.accepted(); n != 2 {
		t.Fatalf("%d connections, want 2 (keepalive 0 closes each)", n)
	}
}

func TestIdleTimeoutAndResumption(t *testing.T) {
	srv := newFaultServer(t, certOpts{}, echoServe)
	u := srv.upstream(t, func(o *Options) { o.IdleTimeout = 100 * time.Millisecond })
	if _, err := u.Exchange(ctxT(t, 5*time.Second), query("idle.example.")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return u.Stats().OpenConns == 0 }, "the idle connection to close")
	if _, err := u.Exchange(ctxT(t, 5*time.Second), query("idle2.example.")); err != nil {
		t.Fatal(err)
	}
	st := u.Stats()
	if st.ConnsOpened != 2 || st.Resumed != 1 {
		t.Fatalf("opened %d, resumed %d: want 2 and 1 (TLS session resumption)", st.ConnsOpened, st.Resumed)
	}
}

// TestResetReconnects: Reset (a WAN change) breaks every connection; the next query reconnects.
func TestResetReconnects(t *testing.T) {
	srv := newFaultServer(t, certOpts{}, echoServe)
	u := srv.upstream(t, nil)
	for i := range 3 {
		if _, err := u.Exchange(ctxT(t, 5*time.Second), query("reset.example.")); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		u.Reset()
	}
	if n := srv.accepted(); n != 3 {
		t.Fatalf("%d connections, want 3", n)
	}
}

func TestMaxInFlight(t *testing.T) {
	var mu sync.Mutex
	max, cur := 0, 0
	srv := newFaultServer(t, certOpts{}, func(c *srvConn) {
		for {
			q, _, err := c.read()
			if err != nil {
				return
			}
			mu.Lock()
			cur++
			max = cmax(max, cur)
			mu.Unlock()
			go func() {
				time.Sleep(20 * time.Millisecond)
				mu.Lock()
				cur--
				mu.Unlock()
				_ = c.write(answer(q))
			}()
		}
	})
	u := srv.upstream(t, func(o *Options) { o.MaxInFlight = 4 })
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := u.Exchange(ctxT(t, 10*time.Second), query("m"+itoa(i)+".example.")); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// Under mu: the server's handler may still be reading (a stall probe, say).
	mu.Lock()
	most := max
	mu.Unlock()
	if most > 4 {
		t.Fatalf("%d queries in flight at once, limit 4", most)
	}
	if srv.accepted() != 1 {
		t.Fatalf("%d connections, want 1 (MaxConns default)", srv.accepted())
	}
}

func cmax(a, b int) int {
	if a > b {
		return a
	}
	return b
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	srv := newFaultServer(t, certOpts{}, echoServe)
	before := runtime.NumGoroutine()
	u := srv.upstream(t, nil)
	for i := range 10 {
		if _, err := u.Exchange(ctxT(t, 5*time.Second), query("g"+itoa(i)+".example.")); err != nil {
			t.Fatal(err)
		}
	}
	_ = u.Close()
	srv.closeConns()
	if _, err := u.Exchange(ctxT(t, time.Second), query("closed.example.")); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before }, "goroutines to end")
}

func TestNewChecksOptions(t *testing.T) {
	cases := []struct {
		name string
		o    Options
	}{
		{"hostname address", Options{Address: "dns.google", TLSName: "dns.google"}},
		{"port 53", Options{Address: "1.1.1.1", Port: 53, TLSName: "x"}},
		{"port too big", Options{Address: "1.1.1.1", Port: 70000, TLSName: "x"}},
		{"no name no pins", Options{Address: "1.1.1.1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := New(c.o); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func mustCA(t *testing.T) *testenv.CA {
	ca, err := testenv.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func mustPin(t *testing.T, b64 string) [32]byte {
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) != 32 {
		t.Fatalf("bad pin %q", b64)
	}
	var p [32]byte
	copy(p[:], b)
	return p
}

// TestALPN: delve offers "dot" (RFC 7858); a server that knows it agrees, and a server that
// refuses it (TLS alert no_application_protocol) is asked again without ALPN, once and for all.
func TestALPN(t *testing.T) {
	var proto atomic.Value
	dot := newFaultServer(t, certOpts{alpn: []string{"dot"}}, func(c *srvConn) {
		proto.Store(c.Conn.(interface{ ConnectionState() tls.ConnectionState }).ConnectionState().NegotiatedProtocol)
		echoServe(c)
	})
	if _, err := dot.upstream(t, nil).Exchange(ctxT(t, 5*time.Second), query("alpn.example.")); err != nil {
		t.Fatal(err)
	}
	if p, _ := proto.Load().(string); p != "dot" {
		t.Fatalf("negotiated %q, want dot", p)
	}

	h2 := newFaultServer(t, certOpts{alpn: []string{"h2"}}, echoServe)
	u := h2.upstream(t, nil)
	for i := range 2 {
		if _, err := u.Exchange(ctxT(t, 5*time.Second), query("alpn"+itoa(i)+".example.")); err != nil {
			t.Fatalf("exchange %d: %v", i, err)
		}
		u.Reset()
	}
	// Two connections for the two exchanges, and one refused handshake before the first.
	if n := h2.accepted(); n != 3 {
		t.Fatalf("%d connections accepted, want 3 (one refused ALPN, then two without)", n)
	}
}

// TestALPNRefusalThenWrongCertificate: a middlebox that refuses "dot" and, asked without ALPN,
// shows a certificate for other names is reported as the name mismatch it is.
func TestALPNRefusalThenWrongCertificate(t *testing.T) {
	srv := newFaultServer(t, certOpts{alpn: []string{"h2"}, names: []string{"proxy.example"}}, echoServe)
	_, err := srv.upstream(t, nil).Exchange(ctxT(t, 5*time.Second), query("mitm.example."))
	var te *TLSError
	if !errors.As(err, &te) || te.Kind != TLSNameMismatch {
		t.Fatalf("err = %v, want a name mismatch", err)
	}
}
