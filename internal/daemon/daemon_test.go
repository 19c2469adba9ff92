package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/jsonrpc"
	"github.com/delvedns/delve/internal/testenv"
)

// conf writes a UCI file for a daemon in dir whose upstreams are the given unbounds.
type conf struct {
	dir       string
	socket    string
	websocket string
	extra     string // more main options, one per line
	ubs       []*testenv.Unbound
}

func (c conf) write(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "config delve 'main'\n\tlist type 'A'\n\tlist type 'AAAA'\n\toption timeout '2000'\n\toption socket '%s'\n", c.socket)
	if c.websocket != "" {
		fmt.Fprintf(&b, "\toption websocket '%s'\n", c.websocket)
	}
	if len(c.ubs) > 0 {
		fmt.Fprintf(&b, "\toption ca_file '%s'\n", c.caBundle(t))
	}
	b.WriteString(c.extra)
	for i, ub := range c.ubs {
		fmt.Fprintf(&b, "\nconfig upstream 'u%d'\n\toption address '127.0.0.1'\n\toption port '%d'\n\toption tls_name '%s'\n", i, ub.Port, ub.TLSName)
	}
	path := filepath.Join(c.dir, "delve")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// caBundle concatenates the CAs of every unbound (each test unbound has its own).
func (c conf) caBundle(t *testing.T) string {
	var pem []byte
	for _, ub := range c.ubs {
		pem = append(pem, ub.CA.CertPEM...)
	}
	path := filepath.Join(c.dir, "ca-"+strconv.Itoa(len(c.ubs))+".pem")
	if err := os.WriteFile(path, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func newConf(t *testing.T, ubs ...*testenv.Unbound) conf {
	dir := t.TempDir()
	return conf{dir: dir, socket: filepath.Join(dir, "run", "delve.sock"), ubs: ubs}
}

// loopbackTLS listens on 127.0.0.1 with a certificate for name from a CA of its own, which it
// writes to caFile (for ca_file); the listener closes at cleanup.
func loopbackTLS(t *testing.T, name string) (ln net.Listener, caFile string) {
	t.Helper()
	ca, err := testenv.NewCA(name + " CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(testenv.IssueOptions{DNSNames: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err = tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{leaf.Certificate}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := ca.WriteFile(caFile); err != nil {
		t.Fatal(err)
	}
	return ln, caFile
}

// running is an in-process daemon.
type running struct {
	d      *Daemon
	log    *testenv.SyncBuffer
	sig    chan os.Signal
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, path string) *running {
	t.Helper()
	return startWith(t, Options{Config: path})
}

// startWith runs a daemon with opts; its log and signals are the test's.
func startWith(t *testing.T, opts Options) *running {
	t.Helper()
	r := &running{log: &testenv.SyncBuffer{}, sig: make(chan os.Signal, 1), done: make(chan error, 1)}
	opts.Stdout, opts.Stderr, opts.Signals = r.log, r.log, r.sig
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	r.d = d
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- d.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	r.waitReady(t)
	return r
}

// waitReady waits until Run logged that it serves: by then every transport is bound. The socket
// accepts connections earlier, before the DNS listener and the WebSocket are bound, so a test that
// dials the socket and then the listener could find nothing there on a busy machine.
func (r *running) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(r.log.String(), `msg="delve serving"`) {
		select {
		case err := <-r.done:
			r.done <- err // for stop
			t.Fatalf("the daemon stopped at start: %v\n%s", err, r.log.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not log that it serves within 30 s:\n%s", r.log.String())
		}
	}
}

func (r *running) stop(t *testing.T) {
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		r.done <- nil // a second stop returns at once
	case <-time.After(10 * time.Second):
		t.Fatal("the daemon did not stop")
	}
}

// dial connects to the daemon on socket once it answers a status call there. A connect alone is
// not readiness: the daemon binds its socket before the WebSocket and the DNS listener, and
// answers calls only once all are bound (TestServeBinary's WebSocket was refused on a busy
// machine).
func dial(t *testing.T, socket string) *jsonrpc.Client {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := jsonrpc.Dial(ctx, socket)
		if err == nil {
			if err = c.Call(ctx, "status", nil, nil); err != nil {
				_ = c.Close()
			}
		}
		cancel()
		if err == nil {
			t.Cleanup(func() { _ = c.Close() })
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("no daemon answering on %s after 30 s: %v", socket, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func call(t *testing.T, c *jsonrpc.Client, method string, params, result any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Call(ctx, method, params, result)
}

func TestLookupMethod(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	c := newConf(t, ub)
	start(t, c.write(t))
	cl := dial(t, c.socket)

	var l api.Lookup
	if err := call(t, cl, "lookup", map[string]any{"name": "a.delve.test", "ubus_rpc_session": "abc"}, &l); err != nil {
		t.Fatal(err)
	}
	if l.Name != "a.delve.test." || strings.Join(l.Addresses, ",") != "192.0.2.1,2001:db8::1" || l.Rcode != "NOERROR" || l.Upstream != "u0" {
		t.Fatalf("%+v", l)
	}
	if err := call(t, cl, "lookup", map[string]any{"name": "delve.test", "type": "mx"}, &l); err != nil {
		t.Fatal(err)
	}
	want := testenv.KdigT(t, ub, "delve.test", "MX")
	if len(l.Answers) != 1 || l.Answers[0].Data != want.Answer[0].Data || len(l.Addresses) != 0 {
		t.Fatalf("MX: %+v, kdig %v", l, want.Answer)
	}
	if err := call(t, cl, "lookup", map[string]any{"name": "missing.delve.test"}, &l); err != nil || l.Rcode != "NXDOMAIN" || len(l.Answers) != 0 {
		t.Fatalf("NXDOMAIN is not an error: %+v %v", l, err)
	}
	if err := call(t, cl, "lookup", map[string]any{"name": "192.0.2.1"}, &l); err != nil || len(l.Answers) != 1 || l.Answers[0].Data != "a.delve.test." {
		t.Fatalf("PTR: %+v %v", l, err)
	}
	// big.delve.test has 300 A records: the reply is capped and says so.
	if err := call(t, cl, "lookup", map[string]any{"name": "big.delve.test", "type": "A"}, &l); err != nil {
		t.Fatal(err)
	}
	if !l.Capped || l.AnswersTotal != 300 || len(l.Answers) != MaxAnswers || len(l.Addresses) != MaxAnswers {
		t.Fatalf("capped %v total %d answers %d addresses %d", l.Capped, l.AnswersTotal, len(l.Answers), len(l.Addresses))
	}
}

func TestLookupErrors(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	c := newConf(t, ub)
	start(t, c.write(t))
	cl := dial(t, c.socket)
	cases := []struct {
		name   string
		params any
		code   api.Code
		msg    string
	}{
		{"no name", map[string]any{}, api.CodeBadRequest, `"name" is required`},
		{"empty name", map[string]any{"name": ""}, api.CodeBadRequest, "the name is empty"},
		{"name not a string", map[string]any{"name": 42}, api.CodeBadRequest, "name"},
		{"long label", map[string]any{"name": strings.Repeat("x", 64) + ".test"}, api.CodeBadRequest, "more than the 63 allowed"},
		{"bad type", map[string]any{"name": "a.delve.test", "type": "NOPE"}, api.CodeBadRequest, `unknown record type "NOPE"`},
		{"type out of range", map[string]any{"name": "a.delve.test", "type": "TYPE99999"}, api.CodeBadRequest, "out of range"},
		{"unknown upstream", map[string]any{"name": "a.delve.test", "upstream": "nope"}, api.CodeBadRequest, `no such upstream named "nope"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := call(t, cl, "lookup", tc.params, nil)
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code != tc.code || !strings.Contains(ae.Message, tc.msg) {
				t.Fatalf("err = %v, want %s %q", err, tc.code, tc.msg)
			}
		})
	}
	err := call(t, cl, "nosuch", nil, nil)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeMethodNotFound {
		t.Fatalf("unknown method: %v", err)
	}
}

func TestNoUpstream(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	c := newConf(t, ub)
	start(t, c.write(t))
	cl := dial(t, c.socket)
	if err := ub.Stop(); err != nil {
		t.Fatal(err)
	}
	err := call(t, cl, "lookup", map[string]any{"name": "a.delve.test", "type": "A"}, nil)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeNoUpstream || !strings.Contains(ae.Message, "connection refused") {
		t.Fatalf("err = %v, want no_upstream naming the cause", err)
	}
}

func TestStatusFlushReload(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	c := newConf(t, ub)
	path := c.write(t)
	r := start(t, path)
	cl := dial(t, c.socket)
	for range 2 {
		if err := call(t, cl, "lookup", map[string]any{"name": "a.delve.test", "type": "A"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	var st Status
	if err := call(t, cl, "status", nil, &st); err != nil {
		t.Fatal(err)
	}
	if st.Lookups != 2 || st.Cache.Hits != 1 || st.Cache.Entries != 1 || len(st.Upstreams) != 1 || !st.Upstreams[0].Healthy ||
		st.Upstreams[0].Queries != 1 || st.Upstreams[0].Port != ub.Port || st.Config.File != path || st.Version == "" {
		t.Fatalf("%+v", st)
	}
	if st.Cache.Bytes <= 0 || st.Cache.Memory != 4<<20 || st.Config.CacheKiB != 4096 {
		t.Fatalf("cache %+v, config cache_memory_kib %d: want bytes held and the default budget of 4 MiB", st.Cache, st.Config.CacheKiB)
	}
	var fl map[string]int
	if err := call(t, cl, "flush", nil, &fl); err != nil || fl["flushed"] != 1 {
		t.Fatalf("flush: %v %v", fl, err)
	}

	// A bad file: the reload is refused, the error returned and logged, the old config serves.
	good, _ := os.ReadFile(path)
	if err := os.WriteFile(path, append(append([]byte{}, good...), "\toption port '99999'\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	err := call(t, cl, "reload", nil, nil)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeConfig || !strings.Contains(ae.Message, `delve.u0.port: "99999" is not a port`) {
		t.Fatalf("reload of a bad file: %v", err)
	}
	var l api.Lookup
	if err := call(t, cl, "lookup", map[string]any{"name": "a.delve.test"}, &l); err != nil || len(l.Addresses) != 2 {
		t.Fatalf("after a refused reload: %+v %v", l, err)
	}
	// A bad cache_memory (as a `uci commit` would write it): refused the same way, the running budget stays.
	if err := os.WriteFile(path, bytes.Replace(good, []byte("\toption timeout '2000'\n"), []byte("\toption timeout '2000'\n\toption cache_memory '4T'\n"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := call(t, cl, "reload", nil, nil); !errors.As(err, &ae) || ae.Code != api.CodeConfig ||
		!strings.Contains(ae.Message, `delve.main.cache_memory: "4T" is not a memory size`) {
		t.Fatalf("reload with a bad cache_memory: %v", err)
	}
	if err := call(t, cl, "status", nil, &st); err != nil || st.Cache.Memory != 4<<20 {
		t.Fatalf("after a refused reload the cache budget is %d (%v), want 4 MiB", st.Cache.Memory, err)
	}
	// SIGHUP with the same bad file: logged, still serving.
	r.sig <- syscall.SIGHUP
	waitLog(t, r.log, "reload refused")

	// A good change by SIGHUP: the types list becomes AAAA only, the cache budget 1 MiB.
	if err := os.WriteFile(path, bytes.Replace(bytes.Replace(good, []byte("\tlist type 'A'\n"), nil, 1),
		[]byte("\toption timeout '2000'\n"), []byte("\toption timeout '2000'\n\toption cache_memory '1M'\n"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	r.sig <- syscall.SIGHUP
	waitLog(t, r.log, "configuration reloaded")
	if err := call(t, cl, "lookup", map[string]any{"name": "a.delve.test"}, &l); err != nil || strings.Join(l.Types, ",") != "AAAA" {
		t.Fatalf("after reload: %+v %v", l, err)
	}
	if err := call(t, cl, "status", nil, &st); err != nil || st.Cache.Memory != 1<<20 || st.Config.CacheKiB != 1024 {
		t.Fatalf("after a reload to cache_memory 1M: cache %+v, config %+v (%v)", st.Cache, st.Config, err)
	}
	if err := call(t, cl, "status", nil, &st); err != nil || st.Upstreams[0].ConnsOpened != 1 {
		t.Fatalf("the unchanged upstream did not keep its connection: %+v %v", st.Upstreams, err)
	}
}

func waitLog(t *testing.T, log *testenv.SyncBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // a hang, not a speed
	for !strings.Contains(log.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q:\n%s", s, log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReloadUnderLoad: ten valid reloads, alternating between one and two upstreams, while
// clients look names up: no call fails. Each reload waits until the clients completed a few more
// calls, so that every reload happens under lookups however slow the machine is: the test counts
// work, it asks for no rate.
func TestReloadUnderLoad(t *testing.T) {
	ub1 := testenv.UnboundT(t, testenv.UnboundOptions{})
	ub2 := testenv.UnboundT(t, testenv.UnboundOptions{})
	one, two := newConf(t, ub1), newConf(t, ub1, ub2)
	two.dir, two.socket = one.dir, one.socket
	path := one.write(t)
	confs := [][]byte{}
	for _, c := range []conf{two, one} {
		c.write(t)
		b, _ := os.ReadFile(path)
		confs = append(confs, b)
	}
	start(t, path)
	cl := dial(t, one.socket)

	const workers, reloads, callsPerReload = 8, 10, 16
	var calls, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Bounded in count; stop ends it sooner.
			for i := 0; i < 2000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var l api.Lookup
				name := testenv.WildName("w" + strconv.Itoa(w) + "-" + strconv.Itoa(i))
				err := call(t, cl, "lookup", map[string]any{"name": name, "type": "A"}, &l)
				calls.Add(1)
				if err != nil || len(l.Addresses) != 1 {
					failed.Add(1)
					t.Errorf("%s: %v %+v", name, err, l)
				}
			}
		}()
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	for i := range reloads {
		if err := os.WriteFile(path, confs[i%2], 0o600); err != nil {
			t.Fatal(err)
		}
		if err := call(t, cl, "reload", nil, nil); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		// Wait for work, not for time: a few more calls completed since this reload.
		target := calls.Load() + callsPerReload
		for calls.Load() < target {
			select {
			case <-allDone:
				t.Fatalf("the clients ran out of names after %d calls, before reload %d of %d", calls.Load(), i+1, reloads)
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	close(stop)
	<-allDone
	if n, f := calls.Load(), failed.Load(); f != 0 {
		t.Fatalf("%d of %d calls failed during %d reloads", f, n, reloads)
	} else {
		t.Logf("%d calls, none failed, during %d reloads", n, reloads)
	}
}

// TestThreadsLeftToServe: a daemon in a test's process (Options.Threads unset) leaves the
// process's GOMAXPROCS as it is, at the start and at a reload, whatever main.threads says, and
// status reports the number in use; delve serve applies it (internal/faults TestThreads).
func TestThreadsLeftToServe(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	other := before%64 + 1 // a valid main.threads that differs from it
	dir := t.TempDir()
	path := filepath.Join(dir, "delve")
	write := func(threads int) {
		t.Helper()
		text := fmt.Sprintf("config delve 'main'\n\toption socket '%s'\n\tlist listen 'none'\n\toption threads '%d'\n"+
			"config upstream 'u'\n\toption address '127.0.0.1'\n\toption port '853'\n\toption tls_name 'dot.delve.test'\n",
			filepath.Join(dir, "delve.sock"), threads)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(other)
	r := start(t, path)
	if n := runtime.GOMAXPROCS(0); n != before {
		t.Fatalf("an in-process daemon with threads '%d' set GOMAXPROCS %d → %d", other, before, n)
	}
	write(0)
	if err := r.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if n, st := runtime.GOMAXPROCS(0), r.d.status(); n != before || st.Process.Threads != before {
		t.Fatalf("after a reload to threads '0': GOMAXPROCS %d → %d, status says %d", before, n, st.Process.Threads)
	}
}
