package faults

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/daemon"
	"github.com/delvedns/delve/internal/jsonrpc"
	"github.com/delvedns/delve/internal/testenv"
)

// shortDir is a temporary directory with a short path: a unix socket path has at most 107 bytes,
// and t.TempDir() under a long subtest name can exceed that.
func shortDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "dlv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// upstreamConf is one `config upstream` section.
type upstreamConf struct {
	name    string
	port    int
	tlsName string
	ca      []byte // PEM of the CA that issued its certificate
}

// conf writes the UCI file of a daemon.
type conf struct {
	dir    string
	socket string
	main   []string // more main options, whole lines such as "option timeout '1000'"
	ups    []upstreamConf
	extra  string // appended verbatim
	listen string // the DNS listener's address; empty: off
}

func newConf(t testing.TB) *conf {
	dir := shortDir(t)
	return &conf{dir: dir, socket: filepath.Join(dir, "run", "delve.sock")}
}

func (c *conf) addUnbound(name string, ub *testenv.Unbound) {
	c.ups = append(c.ups, upstreamConf{name: name, port: ub.Port, tlsName: ub.TLSName, ca: ub.CA.CertPEM})
}

// text is the file: main with a socket, the plain DNS listener off (parallel daemons would
// fight over its default port), the CA bundle of every upstream, then the upstreams.
func (c *conf) text(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	listen := c.listen
	if listen == "" {
		listen = "none"
	}
	fmt.Fprintf(&b, "config delve 'main'\n\tlist type 'A'\n\toption timeout '2000'\n\toption socket '%s'\n\tlist listen '%s'\n", c.socket, listen)
	var pem []byte
	for _, u := range c.ups {
		pem = append(pem, u.ca...)
	}
	if len(pem) > 0 {
		path := filepath.Join(c.dir, "ca.pem")
		if err := os.WriteFile(path, pem, 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "\toption ca_file '%s'\n", path)
	}
	for _, l := range c.main {
		b.WriteString("\t" + l + "\n")
	}
	for _, u := range c.ups {
		fmt.Fprintf(&b, "\nconfig upstream '%s'\n\toption address '127.0.0.1'\n\toption port '%d'\n\toption tls_name '%s'\n", u.name, u.port, u.tlsName)
	}
	b.WriteString(c.extra)
	return b.String()
}

func (c *conf) path() string { return filepath.Join(c.dir, "delve") }

func (c *conf) write(t testing.TB) string {
	t.Helper()
	if err := os.WriteFile(c.path(), []byte(c.text(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	return c.path()
}

// proc is a running daemon process: the real binary or a tuned one (see runChild).
type proc struct {
	cmd    *exec.Cmd
	log    *testenv.SyncBuffer
	socket string
	done   chan struct{}
	err    error // of Wait, once done is closed
}

// serveOptions says how to start a daemon.
type serveOptions struct {
	bin   string   // the binary; empty: the real one without a build time
	tune  string   // non-empty: a tuned daemon (this test binary) with these durations
	wrap  []string // a command to run the daemon under, such as sh -c '...'; the daemon's argv follows
	attrs *syscall.SysProcAttr
	// env sets variables of the daemon's environment, NAME=VALUE, in place of this process's;
	// NAME= leaves NAME out.
	env []string
}

// serve starts a daemon on the configuration c (written first) and waits until its socket
// answers.
func serve(t testing.TB, c *conf, o serveOptions) *proc {
	t.Helper()
	path := c.write(t)
	p := startProc(t, path, o)
	p.socket = c.socket
	p.waitSocket(t)
	return p
}

func startProc(t testing.TB, path string, o serveOptions) *proc {
	t.Helper()
	var argv []string
	env := os.Environ()
	for _, kv := range o.env {
		name, value, _ := strings.Cut(kv, "=")
		env = slices.DeleteFunc(env, func(e string) bool { return strings.HasPrefix(e, name+"=") })
		if value != "" {
			env = append(env, kv)
		}
	}
	if o.tune != "" {
		argv = []string{os.Args[0], "-test.run=^$"}
		env = append(env, childEnv+"="+path, tuneEnv+"="+o.tune)
	} else {
		bin := o.bin
		if bin == "" {
			bin = delveBinary(t, "")
		}
		argv = []string{bin, "serve", "--config", path}
	}
	argv = append(append([]string{}, o.wrap...), argv...)
	p := &proc{cmd: exec.Command(argv[0], argv[1:]...), log: &testenv.SyncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = o.attrs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", tail(p.log.String(), 4000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the process to exit and returns its exit status.
func (p *proc) wait(t testing.TB, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("the daemon did not exit within %v; log:\n%s", within, p.log.String())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

// waitSocket waits until the daemon answers a status call on its socket. A connect alone is not
// readiness: the socket is bound before the DNS listener and the WebSocket, and the daemon starts
// answering calls only once every transport is bound.
func (p *proc) waitSocket(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if p.exited() {
			t.Fatalf("the daemon exited at start: %v\n%s", p.err, p.log.String())
		}
		err := p.ping()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no daemon answering on %s after 30 s: %v\n%s", p.socket, err, p.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ping makes one status call on a new connection.
func (p *proc) ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := jsonrpc.Dial(ctx, p.socket)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Call(ctx, "status", nil, nil)
}

func (p *proc) signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// stop sends SIGTERM and returns the exit status.
func (p *proc) stop(t testing.TB) int {
	t.Helper()
	p.signal(t, syscall.SIGTERM)
	return p.wait(t, 15*time.Second)
}

// waitLog waits until the log holds s.
func (p *proc) waitLog(t testing.TB, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // a hang, not a speed
	for !strings.Contains(p.log.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("the log never said %q:\n%s", s, p.log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// client is a JSON-RPC client on the daemon's socket, closed with the test.
func (p *proc) client(t testing.TB) *jsonrpc.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := jsonrpc.Dial(ctx, p.socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// call makes one call with a 15 s bound.
func call(c *jsonrpc.Client, method string, params, result any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return c.Call(ctx, method, params, result)
}

// lookup asks name (and typ, when set) and says how long it took.
func lookup(c *jsonrpc.Client, name, typ string) (*api.Lookup, time.Duration, error) {
	params := map[string]string{"name": name}
	if typ != "" {
		params["type"] = typ
	}
	var l api.Lookup
	start := time.Now()
	err := call(c, "lookup", params, &l)
	return &l, time.Since(start), err
}

type daemonStatus = daemon.Status

func status(t testing.TB, c *jsonrpc.Client) daemon.Status {
	t.Helper()
	var st daemon.Status
	if err := call(c, "status", nil, &st); err != nil {
		t.Fatalf("status: %v", err)
	}
	return st
}

// codeOf is the api code of an error from the client, or "" for none.
func codeOf(err error) api.Code {
	if err == nil {
		return ""
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return "not-an-api-error"
}

// eventually polls cond every 50 ms until it holds or within has passed; it returns how long
// it took and whether it held.
func eventually(within time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Since(start) > within {
			return time.Since(start), false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// count is how often s appears in the daemon's log.
func (p *proc) count(s string) int { return strings.Count(p.log.String(), s) }

// waitCount waits until s appears at least n times in the log.
func (p *proc) waitCount(t testing.TB, s string, n int) {
	t.Helper()
	if _, ok := eventually(30*time.Second, func() bool { return p.count(s) >= n }); !ok {
		t.Fatalf("the log said %q %d times, want %d:\n%s", s, p.count(s), n, p.log.String())
	}
}

// dumpGoroutines makes the daemon print every goroutine's stack and exit (SIGQUIT), for a
// failure message; the dump lands in the log the cleanup prints.
func (p *proc) dumpGoroutines(t testing.TB) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
	t.Logf("goroutines of the daemon:\n%s", tail(p.log.String(), 30000))
}

// hitTries is how many names hitInLastTenth tries before it gives up on the machine.
const hitTries = 3

// hitInLastTenth asks a fresh name, hits it at once, and hits it again in the last tenth of the
// answer's ttl, where a hit starts a prefetch. The cache holds the answer from a moment between
// the first ask's send (t0) and its reply (t1), so the last hit is sent at t1 + 0.91 ttl and
// counts only when its reply came before t0 + ttl. A busy machine can make it late; then it
// starts over with the next try's name, up to hitTries, rather than judge. ask(try, when) asks
// try's name; beforeWait runs after the first hit. It returns the try that counted and its t0.
func hitInLastTenth(t testing.TB, ttl time.Duration, ask func(try int, when string), beforeWait func()) (int, time.Time) {
	t.Helper()
	for try := range hitTries {
		t0 := time.Now()
		ask(try, "the miss")
		t1 := time.Now()
		ask(try, "the first hit")
		if beforeWait != nil {
			beforeWait()
		}
		time.Sleep(time.Until(t1.Add(ttl * 91 / 100)))
		ask(try, "the hit in the last tenth")
		late := time.Since(t0)
		if late < ttl {
			return try, t0
		}
		t.Logf("try %d: the last hit came %v after the miss, past the answer's %v: again with another name", try, late, ttl)
	}
	t.Fatalf("in %d tries the hit never came within the answer's %v: the machine is too busy for this test", hitTries, ttl)
	return 0, time.Time{}
}

// listenAddr is a loopback address for the daemon's DNS listener (UDP and TCP), which its UCI
// file must name before it binds.
func listenAddr(t *testing.T) string {
	t.Helper()
	port, err := testenv.FreePort("tcp+udp")
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(port)
}
