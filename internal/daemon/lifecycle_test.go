package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
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

	"github.com/gorilla/websocket"
	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/jsonrpc"
	"github.com/delvedns/delve/internal/testenv"
)

// socketLoad looks names up on the socket until stop is called, each lookup with its own deadline
// (the configured lookup timeout), and reports every failure and the slowest lookup.
type socketLoad struct {
	stop    func()
	calls   atomic.Int64
	mu      sync.Mutex
	errs    []string
	slowest time.Duration
}

func startSocketLoad(t *testing.T, socket string, workers int, within time.Duration) *socketLoad {
	t.Helper()
	l := &socketLoad{}
	cl := dial(t, socket)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Bounded in count as well as by stop.
			for i := 0; i < 20000; i++ {
				select {
				case <-done:
					return
				default:
				}
				name := testenv.WildName("l" + strconv.Itoa(w) + "-" + strconv.Itoa(i%50))
				ctx, cancel := context.WithTimeout(context.Background(), within)
				began := time.Now()
				var res api.Lookup
				err := cl.Call(ctx, "lookup", map[string]any{"name": name, "type": "A"}, &res)
				took := time.Since(began)
				cancel()
				l.calls.Add(1)
				l.mu.Lock()
				l.slowest = max(l.slowest, took)
				if err == nil && len(res.Addresses) != 1 {
					err = fmt.Errorf("answer %+v", res)
				}
				if err != nil {
					l.errs = append(l.errs, fmt.Sprintf("%s after %v: %v", name, took.Round(time.Millisecond), err))
				}
				l.mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	var once sync.Once
	l.stop = func() { once.Do(func() { close(done); wg.Wait() }) }
	t.Cleanup(l.stop)
	return l
}

// waitCalls waits until the load has made n more calls than now: work done, however slow the
// machine is.
func (l *socketLoad) waitCalls(t *testing.T, n int64) {
	t.Helper()
	target := l.calls.Load() + n
	deadline := time.Now().Add(60 * time.Second) // a hang, not a speed
	for l.calls.Load() < target {
		if time.Now().After(deadline) {
			t.Fatalf("the socket load made %d calls in 60 s, waiting for %d", l.calls.Load(), target)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// check stops the load once it has made 20 calls at least, and fails if any failed.
func (l *socketLoad) check(t *testing.T) {
	t.Helper()
	if l.calls.Load() < 20 {
		l.waitCalls(t, 20-l.calls.Load())
	}
	l.stop()
	if len(l.errs) > 0 {
		t.Fatalf("%d of %d socket lookups failed: %q", len(l.errs), l.calls.Load(), l.errs[:min(len(l.errs), 5)])
	}
	t.Logf("%d socket lookups, the slowest %v", l.calls.Load(), l.slowest.Round(time.Millisecond))
}

func wsDialToken(addr, token string) (*websocket.Conn, *http.Response, error) {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	return websocket.DefaultDialer.Dial("ws://"+addr+"/", h)
}

// TestReloadRetiringItsOwnTransport: a reload that changes websocket_token (so the WebSocket
// server on that address is replaced) while a WebSocket call is in flight, sent over that very
// WebSocket, over the socket and by SIGHUP. The WebSocket client gets the replies of its calls,
// the reload's included, then a clean close (1001); the new token works and the old one does not;
// socket lookups keep answering within their timeout throughout. Before, the reload over the
// WebSocket waited, holding the daemon's lock, for its own connection to close: no reply, and
// every socket call blocked from then on.
func TestReloadRetiringItsOwnTransport(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	c := newConf(t, ub)
	wsPort, _ := testenv.FreePort("tcp")
	c.websocket = "127.0.0.1:" + strconv.Itoa(wsPort)
	silent := silentTCP(t)
	token := "tok0"
	write := func() {
		c.extra = "\toption websocket_token '" + token + "'\n"
		path := c.write(t)
		// An upstream that never finishes the handshake, asked for by name only: a WebSocket
		// lookup through it stays in flight for the lookup timeout (2 s).
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "\nconfig upstream 'silent'\n\toption address '127.0.0.1'\n\toption port '%d'\n\toption tls_name 'dot.delve.test'\n", silent)
		f.Close()
	}
	write()
	r := start(t, filepath.Join(c.dir, "delve"))
	cl := dial(t, c.socket)
	load := startSocketLoad(t, c.socket, 3, 2*time.Second)

	for _, how := range []string{"websocket", "socket", "SIGHUP"} {
		t.Run(how, func(t *testing.T) {
			ws, _, err := wsDialToken(c.websocket, token)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			if err := ws.WriteJSON(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "lookup", "params": map[string]any{"name": "slow.example", "type": "A", "upstream": "silent"}}); err != nil {
				t.Fatal(err)
			}
			// A status call on the same WebSocket, answered: the server has read the lookup sent
			// before it, which is now in flight on the silent upstream.
			got := map[string]rpcMsg{}
			if err := ws.WriteJSON(map[string]any{"jsonrpc": "2.0", "id": 3, "method": "status"}); err != nil {
				t.Fatal(err)
			}
			for {
				var m rpcMsg
				if err := ws.ReadJSON(&m); err != nil {
					t.Fatalf("waiting for the status reply: %v", err)
				}
				if string(m.ID) == "3" {
					break
				}
				got[string(m.ID)] = m
			}
			old := token
			token = "tok-" + how
			write()
			want := map[string]bool{"1": true}
			switch how {
			case "websocket":
				if err := ws.WriteJSON(map[string]any{"jsonrpc": "2.0", "id": 2, "method": "reload"}); err != nil {
					t.Fatal(err)
				}
				want["2"] = true
			case "socket":
				if err := call(t, cl, "reload", nil, nil); err != nil {
					t.Fatalf("reload over the socket: %v", err)
				}
			case "SIGHUP":
				r.sig <- syscall.SIGHUP
			}
			var closeErr error
			for closeErr == nil {
				var m rpcMsg
				if err := ws.ReadJSON(&m); err != nil {
					closeErr = err
					break
				}
				got[string(m.ID)] = m
			}
			if !websocket.IsCloseError(closeErr, websocket.CloseGoingAway) {
				t.Fatalf("the old WebSocket ended with %v, not a clean close (1001); replies %v", closeErr, got)
			}
			for id := range want {
				if _, ok := got[id]; !ok {
					t.Fatalf("no reply to call %s before the close: %v", id, got)
				}
			}
			if m := got["2"]; how == "websocket" && (m.Error != nil || !strings.Contains(string(m.Result), `"reloaded":true`)) {
				t.Fatalf("the reload's reply: %+v", m)
			}
			// The silent upstream cannot answer: the lookup's reply is an error (its own timeout, or
			// the dial timeout of a handshake an earlier lookup started).
			if m, ok := got["1"]; ok && m.Error == nil {
				t.Fatalf("the lookup in flight: %+v %+v", m, m.Error)
			}
			if _, resp, err := wsDialToken(c.websocket, old); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("the old token still opens a WebSocket: %v", err)
			}
			nws, _, err := wsDialToken(c.websocket, token)
			if err != nil {
				t.Fatalf("the new token: %v", err)
			}
			defer nws.Close()
			_ = nws.SetReadDeadline(time.Now().Add(5 * time.Second))
			var st rpcMsg
			if err := nws.WriteJSON(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "status"}); err != nil || nws.ReadJSON(&st) != nil || st.Error != nil {
				t.Fatalf("status over the new WebSocket: %+v %v", st, err)
			}
		})
	}
	load.check(t)
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// TestFortyReloadsSwapUpstreams: 40 reloads that swap between three upstream sets under
// continuous lookups: no lookup fails, and afterwards the goroutines, file descriptors and the
// engine's retired upstreams are back where they were.
func TestFortyReloadsSwapUpstreams(t *testing.T) {
	ub1 := testenv.UnboundT(t, testenv.UnboundOptions{})
	ub2 := testenv.UnboundT(t, testenv.UnboundOptions{})
	sets := []conf{newConf(t, ub1, ub2), newConf(t, ub2), newConf(t, ub1)}
	var texts [][]byte
	for i := range sets {
		sets[i].socket = sets[0].socket // each its own dir, for its own CA bundle
		b, err := os.ReadFile(sets[i].write(t))
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, b)
	}
	path := filepath.Join(sets[0].dir, "delve")
	if err := os.WriteFile(path, texts[0], 0o600); err != nil {
		t.Fatal(err)
	}
	r := start(t, path)
	cl := dial(t, sets[0].socket)
	for _, via := range []string{"u0", "u1"} {
		if err := call(t, cl, "lookup", map[string]any{"name": "a.delve.test", "type": "A", "upstream": via}, nil); err != nil {
			t.Fatal(err)
		}
	}
	load := startSocketLoad(t, sets[0].socket, 4, 2*time.Second)
	// The baseline is taken with the load running: every worker has made calls, so the daemon's
	// connection goroutines are all there.
	load.waitCalls(t, 8)
	baseG, baseFD := runtime.NumGoroutine(), openFDs(t)

	for i := range 40 {
		if err := os.WriteFile(path, texts[(i+1)%3], 0o600); err != nil {
			t.Fatal(err)
		}
		if err := call(t, cl, "reload", nil, nil); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		load.waitCalls(t, 2) // each reload under lookups
	}
	// 40 reloads end on texts[1]; one more puts the first set back.
	if err := os.WriteFile(path, texts[0], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := call(t, cl, "reload", nil, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	retiredAfter := r.d.eng.Retired()
	for _, via := range []string{"u0", "u1"} {
		if err := call(t, cl, "lookup", map[string]any{"name": "a.delve.test", "type": "A", "upstream": via}, nil); err != nil {
			t.Fatal(err)
		}
	}
	var g, fd, ret int
	flat := func() bool {
		g, fd, ret = runtime.NumGoroutine(), openFDs(t), r.d.eng.Retired()
		return ret == 0 && g <= baseG && fd <= baseFD
	}
	deadline := time.Now().Add(30 * time.Second) // retiring takes up to ShutdownGrace; this bounds a hang
	for !flat() {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("30 s after 41 reloads: %d goroutines (before %d), %d fds (before %d), %d upstreams retired\n%s",
				g, baseG, fd, baseFD, ret, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
	load.check(t)
	t.Logf("%d upstreams retired right after the reloads, 0 later; goroutines %d→%d, fds %d→%d", retiredAfter, baseG, g, baseFD, fd)
}

// waitAsked waits until status shows that the daemon sent the upstream named name n queries:
// lookups it has taken and sent on, rather than a sleep that hopes they have been.
func waitAsked(t *testing.T, cl *jsonrpc.Client, name string, n uint64) {
	t.Helper()
	var asked uint64
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var st Status
		if err := call(t, cl, "status", nil, &st); err != nil {
			t.Fatal(err)
		}
		for _, u := range st.Upstreams {
			if u.Name == name {
				asked = u.Queries
			}
		}
		if asked >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("upstream %s was asked %d of %d queries in 30 s", name, asked, n)
		}
	}
}

// termTimeout is how long procd waits after SIGTERM before SIGKILL, as files/delve.init sets it.
var termTimeout = func() time.Duration {
	b, err := os.ReadFile("../../files/delve.init")
	if err != nil {
		panic(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "procd_set_param term_timeout "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				panic("delve.init: term_timeout " + v)
			}
			return time.Duration(n) * time.Second
		}
	}
	panic("delve.init sets no term_timeout")
}()

// bindable tells whether addr can be bound again (for UDP and TCP when it is a DNS address).
func bindable(network, addr string) error {
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp", addr)
		if err == nil {
			c.Close()
		}
		return err
	default:
		l, err := net.Listen("tcp", addr)
		if err == nil {
			l.Close()
		}
		return err
	}
}

// TestReloadAndShutdownTogether: a reload that moves every transport (socket path, WebSocket and
// DNS addresses) and a shutdown arriving together, in both orders and with the reload at several
// points of the shutdown: Run returns nil well within procd's term timeout, neither socket file
// is left, and no address of either configuration is still bound.
func TestReloadAndShutdownTogether(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	for _, order := range []string{"reload first", "shutdown first"} {
		for i, delay := range []time.Duration{0, time.Millisecond, 5 * time.Millisecond} {
			t.Run(fmt.Sprintf("%s/%d", order, i), func(t *testing.T) {
				a, b := newConf(t, ub), newConf(t, ub)
				b.dir = a.dir
				b.socket = filepath.Join(a.dir, "run", "moved.sock")
				var addrs [2][2]string // per configuration: WebSocket, DNS
				for j, c := range []*conf{&a, &b} {
					wp, _ := testenv.FreePort("tcp")
					dp, _ := testenv.FreePort("tcp+udp")
					addrs[j] = [2]string{"127.0.0.1:" + strconv.Itoa(wp), "127.0.0.1:" + strconv.Itoa(dp)}
					c.websocket = addrs[j][0]
					c.extra = "\tlist listen '" + addrs[j][1] + "'\n"
				}
				bText, _ := os.ReadFile(b.write(t))
				path := a.write(t)
				r := start(t, path)
				cl := dial(t, a.socket)
				if err := os.WriteFile(path, bText, 0o600); err != nil {
					t.Fatal(err)
				}
				reloaded := make(chan error, 1)
				reload := func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					reloaded <- cl.Call(ctx, "reload", nil, nil)
				}
				began := time.Now()
				if order == "reload first" {
					go reload()
					time.Sleep(delay)
					r.cancel()
				} else {
					r.cancel()
					time.Sleep(delay)
					go reload()
				}
				var runErr error
				select {
				case runErr = <-r.done:
					r.done <- nil
				case <-time.After(termTimeout):
					t.Fatalf("Run did not return within %v", termTimeout)
				}
				took := time.Since(began)
				if runErr != nil {
					t.Fatalf("Run: %v", runErr)
				}
				// The reload got a reply (done, or refused as shutting down) or its connection
				// closed as the daemon went; it never hangs.
				select {
				case err := <-reloaded:
					var ae *api.Error
					if errors.As(err, &ae) && !strings.Contains(ae.Message, ErrStopping.Error()) {
						t.Errorf("reload refused, but not for the shutdown: %v", err)
					}
					t.Logf("reload: %v", err)
				case <-time.After(5 * time.Second):
					t.Fatal("the reload call never ended")
				}
				for _, s := range []string{a.socket, b.socket} {
					if _, err := os.Stat(s); !os.IsNotExist(err) {
						t.Errorf("socket %s left behind: %v", s, err)
					}
				}
				for _, pair := range addrs {
					if err := bindable("tcp", pair[0]); err != nil {
						t.Errorf("WebSocket address still bound: %v", err)
					}
					for _, n := range []string{"udp", "tcp"} {
						if err := bindable(n, pair[1]); err != nil {
							t.Errorf("DNS address still bound (%s): %v", n, err)
						}
					}
				}
				t.Logf("stopped in %v", took.Round(time.Millisecond))
			})
		}
	}
}

// stallingDoT is a DoT server that completes the handshake and reads queries but never answers
// one: an upstream that accepted the query and went quiet.
func stallingDoT(t *testing.T) (port int, caFile string) {
	t.Helper()
	ln, caFile := loopbackTLS(t, "stall.delve.test")
	return testenv.DiscardConns(t, ln), caFile
}

// TestREADMEStatesTheDrain: the README's signals paragraph says how long SIGTERM lets lookups
// finish and how long procd waits, as ShutdownGrace and delve.init have them.
func TestREADMEStatesTheDrain(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := strings.Join(strings.Fields(string(b)), " ")
	for _, want := range []string{
		fmt.Sprintf("let lookups in flight finish for at most %d s", ShutdownGrace/time.Second),
		fmt.Sprintf("well inside the %d s procd waits before SIGKILL", termTimeout/time.Second),
	} {
		if !strings.Contains(readme, want) {
			t.Errorf("the README does not say %q", want)
		}
	}
}

// TestStopWithinTermTimeout: the real binary, SIGTERM with lookups in flight on an upstream that
// took them and never answers (the lookup timeout is 20 s) and socket and DNS lookups under way:
// it exits 0 within ShutdownGrace and a moment, well inside the term_timeout delve.init gives
// procd, every lookup in flight gets an error reply, and the socket is removed and the DNS
// address let go. Before, the drain took procd's whole 5 s default and procd sent SIGKILL.
func TestStopWithinTermTimeout(t *testing.T) {
	if ShutdownGrace+2*jsonrpc.CancelGrace+time.Second >= termTimeout/2 {
		t.Fatalf("ShutdownGrace %v is not well within delve.init's term_timeout %v", ShutdownGrace, termTimeout)
	}
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	stallPort, stallCA := stallingDoT(t)
	c := newConf(t, ub)
	dnsPort, _ := testenv.FreePort("tcp+udp")
	dnsAddr := "127.0.0.1:" + strconv.Itoa(dnsPort)
	c.extra = "\tlist listen '" + dnsAddr + "'\n"
	path := c.write(t)
	bundle, _ := os.ReadFile(c.caBundle(t))
	stallPEM, _ := os.ReadFile(stallCA)
	text, _ := os.ReadFile(path)
	text = []byte(strings.Replace(string(text), "option timeout '2000'", "option timeout '20000'", 1))
	text = fmt.Appendf(text, "\nconfig upstream 'stall'\n\toption address '127.0.0.1'\n\toption port '%d'\n\toption tls_name 'stall.delve.test'\n", stallPort)
	if err := os.WriteFile(filepath.Join(c.dir, "ca-1.pem"), append(bundle, stallPEM...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, text, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startBinary(t, "serve", "--config", path)
	cl := dial(t, c.socket)
	load := startSocketLoad(t, c.socket, 2, 2*time.Second)

	const n = 4
	errs := make(chan error, n)
	for i := range n {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			errs <- cl.Call(ctx, "lookup", map[string]any{"name": "q" + strconv.Itoa(i) + ".example", "type": "A", "upstream": "stall"}, nil)
		}()
	}
	waitAsked(t, cl, "stall", n) // the lookups are in flight on the stalling upstream
	digDone := make(chan struct{})
	go func() { // DNS queries under way too, each bounded by its own timeout
		defer close(digDone)
		dc := &dns.Client{Timeout: time.Second}
		for i := range 20 {
			_, _, _ = dc.Exchange(new(dns.Msg).SetQuestion(testenv.WildName("d"+strconv.Itoa(i)), dns.TypeA), dnsAddr)
		}
	}()
	began := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := p.wait(t)
	took := time.Since(began)
	if code != 0 {
		t.Fatalf("exit %d; log:\n%s", code, p.log.String())
	}
	// The bound that matters is procd's: at term_timeout it sends SIGKILL. ShutdownGrace is well
	// inside it (checked above), which leaves a busy machine room to schedule the exit.
	if took >= termTimeout {
		t.Fatalf("stopped %v after SIGTERM: procd would have sent SIGKILL at term_timeout %v (ShutdownGrace %v)", took, termTimeout, ShutdownGrace)
	}
	for range n {
		var ae *api.Error
		if err := <-errs; !errors.As(err, &ae) {
			t.Errorf("a lookup in flight got no error reply: %v", err)
		}
	}
	<-digDone
	load.stop()
	if _, err := os.Stat(c.socket); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
	for _, nw := range []string{"udp", "tcp"} {
		if err := bindable(nw, dnsAddr); err != nil {
			t.Errorf("DNS address still bound: %v", err)
		}
	}
	t.Logf("exit 0 %v after SIGTERM (ShutdownGrace %v, term_timeout %v), %d socket lookups under way", took.Round(time.Millisecond), ShutdownGrace, termTimeout, load.calls.Load())
}
