package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/json"
	"github.com/delvedns/delve/internal/testenv"
)

// TestMain removes the binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveBinaries()
	os.Exit(code)
}

type proc struct {
	cmd  *exec.Cmd
	log  *testenv.SyncBuffer
	done chan error
}

func startBinary(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(testenv.DelveBinary(t, ""), args...), log: &testenv.SyncBuffer{}, done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		p.done <- nil
	})
	return p
}

func (p *proc) wait(t *testing.T) (exitCode int) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(15 * time.Second):
		t.Fatalf("delve did not exit; log:\n%s", p.log.String())
	}
	return -1
}

func wsDial(t *testing.T, addr string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	return c
}

type rpcMsg struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Result json.RawMessage `json:"result"`
	Params json.RawMessage `json:"params"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// TestServeBinary runs the real `delve serve` against the loopback unbound: lookups over the
// socket and the WebSocket, a subscriber seeing them, SIGHUP reloads, SIGTERM exits 0 and removes
// the socket.
func TestServeBinary(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	c := newConf(t, ub)
	port, err := testenv.FreePort("tcp")
	if err != nil {
		t.Fatal(err)
	}
	c.websocket = "127.0.0.1:" + strconv.Itoa(port)
	path := c.write(t)
	p := startBinary(t, "serve", "--config", path)
	cl := dial(t, c.socket)
	if fi, err := os.Stat(c.socket); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v %v, want 0660", fi.Mode(), err)
	}

	sub := wsDial(t, c.websocket)
	if err := sub.WriteJSON(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "subscribe"}); err != nil {
		t.Fatal(err)
	}
	var m rpcMsg
	if err := sub.ReadJSON(&m); err != nil || m.Error != nil {
		t.Fatalf("subscribe: %+v %v", m, err)
	}

	var l api.Lookup
	if err := call(t, cl, "lookup", map[string]any{"name": "txt.delve.test", "type": "TXT"}, &l); err != nil || l.Answers[0].Data != `"hello world"` {
		t.Fatalf("socket lookup: %+v %v", l, err)
	}
	ws := wsDial(t, c.websocket)
	if err := ws.WriteJSON(map[string]any{"jsonrpc": "2.0", "id": 7, "method": "lookup", "params": map[string]string{"name": "a.delve.test", "type": "AAAA"}}); err != nil {
		t.Fatal(err)
	}
	if err := ws.ReadJSON(&m); err != nil || m.Error != nil || !strings.Contains(string(m.Result), "2001:db8::1") || string(m.ID) != "7" {
		t.Fatalf("websocket lookup: %+v %v", m, err)
	}
	// The subscriber saw both, with their transports.
	seen := map[string]string{}
	for len(seen) < 2 {
		if err := sub.ReadJSON(&m); err != nil {
			t.Fatal(err)
		}
		var ev struct {
			Name string `json:"name"`
			From string `json:"from"`
		}
		if m.Method != "lookup" || json.Unmarshal(m.Params, &ev) != nil {
			t.Fatalf("notification %+v", m)
		}
		seen[ev.Name] = ev.From
	}
	if seen["txt.delve.test."] != "socket" || seen["a.delve.test."] != "websocket" {
		t.Fatalf("events %v", seen)
	}

	// SIGHUP with a bad file keeps serving; with a good one reloads.
	good, _ := os.ReadFile(path)
	_ = os.WriteFile(path, []byte("config delve 'main'\n\toption timeout 'soon'\n"), 0o600)
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, p.log, `delve.main.timeout: \"soon\"`)
	if err := call(t, cl, "lookup", map[string]any{"name": "a.delve.test", "type": "A"}, &l); err != nil {
		t.Fatalf("after a refused SIGHUP reload: %v", err)
	}
	_ = os.WriteFile(path, good, 0o600)
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, p.log, "configuration reloaded")

	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM; log:\n%s", code, p.log.String())
	}
	if _, err := os.Stat(c.socket); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}

func TestDisabledExitsZero(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "delve")
	_ = os.WriteFile(path, []byte("config delve 'main'\n\toption enabled '0'\n"), 0o600)
	p := startBinary(t, "serve", "--config", path)
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if out := strings.TrimSpace(p.log.String()); strings.Count(out, "\n") != 0 || !strings.Contains(out, "disabled") {
		t.Fatalf("want one line saying it is disabled, got %q", out)
	}
}

// TestServeCommandLine: delve serve --help prints its usage and exits 0; -c FILE is --config
// FILE (what most daemons take); a missing file name or an unknown argument exits 2 saying so.
func TestServeCommandLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "delve")
	_ = os.WriteFile(path, []byte("config delve 'main'\n\toption enabled '0'\n"), 0o600)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"serve", "--help"}, 0, "usage: delve serve [-c FILE | --config FILE]"},
		{[]string{"serve", "-h"}, 0, "-c, --config FILE"},
		{[]string{"serve", "-c", path}, 0, "disabled"},
		{[]string{"serve", "--config=" + path}, 0, "disabled"},
		{[]string{"serve", "-c"}, 2, "delve serve: -c needs a file name"},
		{[]string{"serve", "--bogus"}, 2, `delve serve: unexpected argument "--bogus"`},
	} {
		p := startBinary(t, tc.args...)
		if code := p.wait(t); code != tc.code || !strings.Contains(p.log.String(), tc.want) {
			t.Errorf("delve %s: exit %d, output %q; want exit %d and %q", strings.Join(tc.args, " "), code, p.log.String(), tc.code, tc.want)
		}
	}
}

func TestBadConfigExitsTwo(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "delve")
	_ = os.WriteFile(path, []byte("config delve 'main'\n\toption strategy 'random'\n"), 0o600)
	p := startBinary(t, "serve", "--config", path)
	if code := p.wait(t); code != 2 || !strings.Contains(p.log.String(), `delve.main.strategy: "random"`) {
		t.Fatalf("exit %d, log %q", code, p.log.String())
	}
}

// TestStaleSocketAndSecondDaemon: a socket file left by a crash is replaced; a second daemon on a
// socket that answers refuses to start.
func TestStaleSocketAndSecondDaemon(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	c := newConf(t, ub)
	path := c.write(t)
	if err := os.MkdirAll(filepath.Dir(c.socket), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: c.socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	_ = l.Close() // the file stays, nobody answers: a crash's leftover
	start(t, path)
	cl := dial(t, c.socket)
	if err := call(t, cl, "status", nil, nil); err != nil {
		t.Fatal(err)
	}
	p := startBinary(t, "serve", "--config", path)
	if code := p.wait(t); code == 0 || !strings.Contains(p.log.String(), "already serving") {
		t.Fatalf("second daemon: exit %d, log %q", code, p.log.String())
	}
	if err := call(t, cl, "status", nil, nil); err != nil {
		t.Fatalf("the first daemon stopped serving: %v", err)
	}
}

// TestShutdownWithLookupsInFlight: lookups that are waiting on a slow upstream when SIGTERM comes
// still get their answers; then the daemon exits and removes its socket.
func TestShutdownWithLookupsInFlight(t *testing.T) {
	ln, caFile := loopbackTLS(t, "slow.delve.test")
	mux := dns.NewServeMux()
	mux.HandleFunc(".", func(w dns.ResponseWriter, q *dns.Msg) {
		time.Sleep(400 * time.Millisecond)
		r := new(dns.Msg)
		r.SetReply(q)
		rr, _ := dns.NewRR(q.Question[0].Name + " 60 IN A 192.0.2.8")
		r.Answer = append(r.Answer, rr)
		_ = w.WriteMsg(r)
	})
	srv := &dns.Server{Listener: ln, Net: "tcp-tls", Handler: mux}
	go func() { _ = srv.ActivateAndServe() }()
	defer func() { _ = srv.Shutdown() }()

	dir := t.TempDir()
	socket := filepath.Join(dir, "delve.sock")
	path := filepath.Join(dir, "delve")
	_ = os.WriteFile(path, []byte(fmt.Sprintf("config delve 'main'\n\toption socket '%s'\n\toption ca_file '%s'\n\nconfig upstream 'slow'\n\toption address '127.0.0.1'\n\toption port '%d'\n\toption tls_name 'slow.delve.test'\n",
		socket, caFile, ln.Addr().(*net.TCPAddr).Port)), 0o600)
	r := start(t, path)
	cl := dial(t, socket)

	const n = 5
	errs := make(chan error, n)
	for i := range n {
		go func() {
			var l api.Lookup
			err := call(t, cl, "lookup", map[string]any{"name": "s" + strconv.Itoa(i) + ".example", "type": "A"}, &l)
			if err == nil && (len(l.Addresses) != 1 || l.Addresses[0] != "192.0.2.8") {
				err = fmt.Errorf("answer %+v", l)
			}
			errs <- err
		}()
	}
	waitAsked(t, cl, "slow", n) // the lookups are waiting on the upstream
	r.cancel()
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("lookup in flight at shutdown: %v", err)
		}
	}
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
	r.done <- nil
	if _, err := os.Stat(socket); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
	// And nothing listens any more.
	if c, err := net.Dial("unix", socket); err == nil {
		c.Close()
		t.Fatal("still accepting after shutdown")
	}
}
