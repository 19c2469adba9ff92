package dnsserver

import (
	"context"
	"crypto/tls"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/resolver"
	"github.com/delvedns/delve/internal/testenv"
	"github.com/delvedns/delve/internal/upstream"
)

// checkGoroutines fails the test if, after the test's cleanups, more goroutines run than before
// it started. It waits a bounded time for goroutines that are on their way out.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		var n int
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if n = runtime.NumGoroutine(); n <= before {
				return
			}
		}
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	})
}

// listen starts a server with o on 127.0.0.1:0 (unless o.Addrs is set) and closes it when the
// test ends.
func listen(t testing.TB, o Options) *Server {
	t.Helper()
	if len(o.Addrs) == 0 {
		o.Addrs = []string{"127.0.0.1:0"}
	}
	s, err := Listen(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func udpAddr(s *Server) string { return s.Addrs()[0].String() }
func tcpAddr(s *Server) string { return s.Addrs()[1].String() }

func port(s *Server) int { return s.Addrs()[0].(*net.UDPAddr).Port }

// realResolver is delve's resolver with one upstream, the test unbound over DoT.
func realResolver(t testing.TB, ub *testenv.Unbound) *resolver.Resolver {
	t.Helper()
	u, err := upstream.New(upstream.Options{Name: "unbound", Address: "127.0.0.1", Port: ub.Port, TLSName: ub.TLSName, RootCAs: ub.CertPool()})
	if err != nil {
		t.Fatal(err)
	}
	r := resolver.New(resolver.Options{CacheSize: 1000}, []*upstream.Upstream{u})
	t.Cleanup(func() {
		r.Close()
		_ = u.Close()
	})
	return r
}

// fakeResolver answers with fn.
type fakeResolver func(ctx context.Context, q *dns.Msg) (*dns.Msg, resolver.Info, error)

func (f fakeResolver) Exchange(ctx context.Context, q *dns.Msg, via string) (*dns.Msg, resolver.Info, error) {
	return f(ctx, q)
}

// answerA answers every question with one A record 192.0.2.7, TTL 60.
func answerA(_ context.Context, q *dns.Msg) (*dns.Msg, resolver.Info, error) {
	r := new(dns.Msg)
	r.SetReply(q)
	rr, _ := dns.NewRR(q.Question[0].Name + " 60 IN A 192.0.2.7")
	r.Answer = append(r.Answer, rr)
	return r, resolver.Info{Upstream: "fake"}, nil
}

// exchange sends m to addr over network ("udp" or "tcp") with miekg's client.
func exchange(t *testing.T, network, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 3 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s query %v to %s: %v", network, m.Question, addr, err)
	}
	return r
}

// noReply sends raw bytes over UDP and reports whether nothing came back within wait.
func noReply(t *testing.T, addr string, pkt []byte, wait time.Duration) bool {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(pkt); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 2048)
	_, err = c.Read(buf)
	return err != nil
}

func question(name string, t uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), t)
	return m
}

func edns(m *dns.Msg, size uint16, do bool, opts ...dns.EDNS0) *dns.Msg {
	m.SetEdns0(size, do)
	m.IsEdns0().Option = append(m.IsEdns0().Option, opts...)
	return m
}

func edeOf(m *dns.Msg) *dns.EDNS0_EDE {
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_EDE); ok {
				return e
			}
		}
	}
	return nil
}

// recorder is an in-process DoT server (its own mux) that records the queries it receives and
// answers each with an A record.
type recorder struct {
	port int
	ca   *testenv.CA
	mu   sync.Mutex
	got  []*dns.Msg
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	ca, err := testenv.NewCA("dnsserver test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(testenv.IssueOptions{DNSNames: []string{testenv.TLSName}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{leaf.Certificate}})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{ca: ca, port: ln.Addr().(*net.TCPAddr).Port}
	mux := dns.NewServeMux()
	mux.HandleFunc(".", func(w dns.ResponseWriter, q *dns.Msg) {
		rec.mu.Lock()
		rec.got = append(rec.got, q.Copy())
		rec.mu.Unlock()
		r, _, _ := answerA(context.Background(), q)
		if opt := q.IsEdns0(); opt != nil {
			ro := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
			ro.SetUDPSize(1232)
			ro.SetDo(opt.Do())
			if strings.HasPrefix(q.Question[0].Name, "ede") {
				ro.Option = append(ro.Option, &dns.EDNS0_EDE{InfoCode: 3, ExtraText: "stale"})
			}
			ro.Option = append(ro.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708a1a2a3a4a5a6a7a8"})
			r.Extra = append(r.Extra, ro)
		}
		_ = w.WriteMsg(r)
	})
	started := make(chan struct{})
	srv := &dns.Server{Listener: ln, Net: "tcp-tls", Handler: mux, NotifyStartedFunc: func() { close(started) }}
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return rec
}

func (rec *recorder) last() *dns.Msg {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.got) == 0 {
		return nil
	}
	return rec.got[len(rec.got)-1]
}

func (rec *recorder) resolver(t *testing.T) *resolver.Resolver {
	t.Helper()
	u, err := upstream.New(upstream.Options{Name: "recorder", Address: "127.0.0.1", Port: rec.port, TLSName: testenv.TLSName, RootCAs: rec.ca.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	r := resolver.New(resolver.Options{CacheSize: 100}, []*upstream.Upstream{u})
	t.Cleanup(func() {
		r.Close()
		_ = u.Close()
	})
	return r
}
