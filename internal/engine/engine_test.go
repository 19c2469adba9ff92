package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/testenv"
	"github.com/delvedns/delve/internal/upstream"
	"github.com/delvedns/delve/uci"
)

// futureServer is a DoT server whose certificate becomes valid tomorrow: what every server looks
// like to a router that booted in 1970.
func futureServer(t *testing.T) (port int, caFile string) {
	t.Helper()
	ca, err := testenv.NewCA("future CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(testenv.IssueOptions{DNSNames: []string{"dot.delve.test"}, NotBefore: time.Now().Add(24 * time.Hour), NotAfter: time.Now().Add(72 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{leaf.Certificate}})
	if err != nil {
		t.Fatal(err)
	}
	mux := dns.NewServeMux()
	mux.HandleFunc(".", func(w dns.ResponseWriter, q *dns.Msg) {
		r := new(dns.Msg)
		r.SetReply(q)
		rr, _ := dns.NewRR(q.Question[0].Name + " 60 IN A 192.0.2.5")
		r.Answer = append(r.Answer, rr)
		_ = w.WriteMsg(r)
	})
	srv := &dns.Server{Listener: ln, Net: "tcp-tls", Handler: mux}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := ca.WriteFile(caFile); err != nil {
		t.Fatal(err)
	}
	return ln.Addr().(*net.TCPAddr).Port, caFile
}

func config(port int, caFile string, tolerate bool) *uci.Config {
	cfg := uci.Default()
	cfg.CAFile = caFile
	cfg.TolerateUnsetClock = tolerate
	cfg.Upstreams = []uci.Upstream{{Name: "future", Address: "127.0.0.1", Port: port, TLSName: "dot.delve.test", Enabled: true}}
	return cfg
}

// TestTolerateUnsetClock: with tolerate_unset_clock on and the clock known to be wrong, a
// certificate that is not valid yet is accepted and the log says so; with the option off, or with
// a clock that is right, it is refused as not yet valid.
func TestTolerateUnsetClock(t *testing.T) {
	port, caFile := futureServer(t)
	cases := []struct {
		name     string
		tolerate bool
		unsynced bool
		ok       bool
	}{
		{"option on, clock before the build", true, true, true},
		{"option off", false, true, false},
		{"option on, clock right", true, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var log testenv.SyncBuffer
			e, err := New(config(port, caFile, c.tolerate), Options{
				Logger:        slog.New(slog.NewTextHandler(&log, nil)),
				ClockUnsynced: func(time.Time) bool { return c.unsynced },
			})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			res, err := e.Resolver().Lookup(ctx, "clock.example.", []uint16{dns.TypeA}, "")
			if c.ok {
				if err != nil || len(res.Answers) != 1 {
					t.Fatalf("refused: %v", err)
				}
				if !strings.Contains(log.String(), "not valid yet") || !strings.Contains(log.String(), "level=WARN") {
					t.Fatalf("the tolerance was used without a warning; log:\n%s", log.String())
				}
				return
			}
			var te *upstream.TLSError
			if !errors.As(err, &te) || te.Kind != upstream.TLSNotYetValid {
				t.Fatalf("err = %v, want a not-yet-valid TLS error", err)
			}
		})
	}
}

// TestApplyKeepsUnchangedUpstreams: a reload that leaves an upstream as it was keeps that very
// upstream (and so its connections); a changed one is replaced and closed after the grace period.
func TestApplyKeepsUnchangedUpstreams(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	cfg := uci.Default()
	cfg.CAFile = ub.CAFile
	cfg.Upstreams = []uci.Upstream{
		{Name: "a", Address: "127.0.0.1", Port: ub.Port, TLSName: ub.TLSName, Enabled: true},
		{Name: "b", Address: "127.0.0.1", Port: ub.Port, TLSName: ub.TLSName, Enabled: true},
	}
	e, err := New(cfg, Options{Grace: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, via := range []string{"a", "b"} {
		if _, err := e.Resolver().Lookup(ctx, "a.delve.test.", []uint16{dns.TypeA}, via); err != nil {
			t.Fatal(err)
		}
	}
	before := map[string]*upstream.Upstream{}
	for _, u := range e.snapshot() {
		before[u.Name()] = u
	}
	next := *cfg
	next.Upstreams = []uci.Upstream{cfg.Upstreams[0], {Name: "b", Address: "127.0.0.1", Port: ub.Port, TLSName: ub.TLSName, Pins: []string{ub.Leaf.Pin}, Enabled: true}}
	if err := e.Apply(&next); err != nil {
		t.Fatal(err)
	}
	after := map[string]*upstream.Upstream{}
	for _, u := range e.snapshot() {
		after[u.Name()] = u
	}
	if after["a"] != before["a"] {
		t.Fatal("the unchanged upstream was replaced")
	}
	if after["b"] == before["b"] {
		t.Fatal("the changed upstream was kept")
	}
	if st := after["a"].Stats(); st.ConnsOpened != 1 || st.OpenConns != 1 {
		t.Fatalf("unchanged upstream lost its connection: %+v", st)
	}
	deadline := time.Now().Add(30 * time.Second)
	for before["b"].Stats().OpenConns != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the replaced upstream was not closed after the grace period")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A bad CA file is refused and changes nothing.
	bad := next
	bad.CAFile = filepath.Join(t.TempDir(), "missing.pem")
	if err := e.Apply(&bad); err == nil || !strings.Contains(err.Error(), "cannot read the CA file") {
		t.Fatalf("Apply with a missing CA file: %v", err)
	}
	if _, err := e.Resolver().Lookup(ctx, "a.delve.test.", []uint16{dns.TypeA}, "a"); err != nil {
		t.Fatalf("after a refused Apply: %v", err)
	}
}

// TestRetiredUpstreamsPruned: each reload that removes upstreams retires them; each is closed
// when the lookup timeout of the configuration it served runs out (not the new, longer one), and
// then forgotten with its timer, so that the retired set does not grow with reloads.
func TestRetiredUpstreamsPruned(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	withUpstream := func(name string, timeout time.Duration) *uci.Config {
		cfg := uci.Default()
		cfg.CAFile, cfg.Timeout = ub.CAFile, timeout
		cfg.Upstreams = []uci.Upstream{{Name: name, Address: "127.0.0.1", Port: ub.Port, TLSName: ub.TLSName, Enabled: true}}
		return cfg
	}
	const short, long = 200 * time.Millisecond, time.Minute
	e, err := New(withUpstream("u0", short), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.Resolver().Lookup(ctx, "a.delve.test.", []uint16{dns.TypeA}, ""); err != nil {
		t.Fatal(err)
	}
	first := e.snapshot()[0]
	// The first reload retires u0, configured with the short timeout, for one with the long one.
	began := time.Now()
	if err := e.Apply(withUpstream("u1", long)); err != nil {
		t.Fatal(err)
	}
	if n := e.Retired(); n != 1 {
		t.Fatalf("%d retired upstreams after one reload, want 1", n)
	}
	for e.Retired() != 0 {
		if time.Since(began) > long/2 {
			t.Fatalf("u0 is still retired after %v: its grace is the new timeout (%v), not its own (%v)", time.Since(began), long, short)
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(began)
	if took < short {
		t.Fatalf("u0 was closed after %v, before its %v grace", took, short)
	}
	if _, err := first.Exchange(ctx, new(dns.Msg).SetQuestion("a.delve.test.", dns.TypeA)); !errors.Is(err, upstream.ErrClosed) {
		t.Fatalf("the retired upstream still answers: %v", err)
	}
	// Twenty reloads at the short timeout: the first retires u1, which served the long timeout
	// and stays for its minute; the other nineteen are closed and forgotten.
	for i := range 20 {
		if err := e.Apply(withUpstream(fmt.Sprintf("r%d", i), short)); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.Retired(); n < 2 || n > 20 {
		t.Fatalf("%d retired upstreams right after 20 reloads", n)
	}
	deadline := time.Now().Add(30 * time.Second)
	for e.Retired() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d upstreams still retired, want only u1", e.Retired())
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.mu.Lock()
	timers := len(e.retired)
	e.mu.Unlock()
	if timers != 1 {
		t.Fatalf("%d timers kept, want u1's", timers)
	}
	t.Logf("u0 closed %v after its reload", took.Round(time.Millisecond))
}
