package jsonrpc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/json"
)

// fake is the handler of the tests: the transport is what is under test, not the methods.
type fake struct {
	mu      sync.Mutex
	gates   map[string]chan struct{}
	running atomic.Int32
	maxRun  atomic.Int32
	calls   atomic.Int32
	notes   chan string // methods of notifications seen by "note"
}

func newFake() *fake {
	return &fake{gates: map[string]chan struct{}{}, notes: make(chan string, 100)}
}

func (f *fake) gate(name string) chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.gates[name]
	if !ok {
		g = make(chan struct{})
		f.gates[name] = g
	}
	return g
}

func (f *fake) open(name string) { close(f.gate(name)) }

func (f *fake) handle(ctx context.Context, method string, params json.RawMessage, from string) (any, error) {
	f.calls.Add(1)
	switch method {
	case "echo":
		if params == nil {
			return nil, nil
		}
		return params, nil
	case "from":
		return from, nil
	case "lookup":
		var p struct {
			Name string `json:"name"`
			Type string `json:"type"`
		}
		if err := DecodeParams(params, &p); err != nil {
			return nil, err
		}
		if p.Name == "" {
			return nil, api.NewError(api.CodeBadRequest, `lookup needs "name"`)
		}
		return map[string]string{"name": p.Name, "type": p.Type}, nil
	case "fail":
		var p struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		if err := DecodeParams(params, &p); err != nil {
			return nil, err
		}
		return nil, api.NewError(api.Code(p.Code), p.Message)
	case "oops":
		return nil, errors.New("the disk is on fire")
	case "panic":
		panic("boom")
	case "unencodable":
		return func() {}, nil
	case "note":
		f.notes <- string(params)
		return nil, nil
	case "block": // waits for the gate named by params.gate, or for ctx
		var p struct {
			Gate string `json:"gate"`
		}
		if err := DecodeParams(params, &p); err != nil {
			return nil, err
		}
		name := p.Gate
		n := f.running.Add(1)
		for {
			m := f.maxRun.Load()
			if n <= m || f.maxRun.CompareAndSwap(m, n) {
				break
			}
		}
		defer f.running.Add(-1)
		select {
		case <-f.gate(name):
			return name, nil
		case <-ctx.Done():
			return nil, api.NewError(api.CodeTimeout, "canceled")
		}
	}
	return nil, api.NewError(api.CodeMethodNotFound, "there is no method "+method)
}

type testServer struct {
	path  string
	srv   *Server
	fake  *fake
	serve chan error
}

func startServer(t *testing.T, o Options) *testServer {
	t.Helper()
	ts := &testServer{path: filepath.Join(t.TempDir(), "run", "delve.sock"), fake: newFake(), serve: make(chan error, 1)}
	if o.Handler == nil {
		o.Handler = ts.fake.handle
	}
	l, err := ListenUnix(ts.path)
	if err != nil {
		t.Fatal(err)
	}
	ts.srv = NewServer(o)
	go func() { ts.serve <- ts.srv.Serve(l) }()
	t.Cleanup(func() {
		ts.srv.Close()
		if err := <-ts.serve; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ts
}

// raw is a client that speaks lines, to send what the Client never would.
type raw struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, path string) *raw {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &raw{t: t, c: c, br: bufio.NewReaderSize(c, 1<<20)}
}

func (r *raw) send(s string) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.c.Write([]byte(s)); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// recv reads one response line.
func (r *raw) recv() string {
	r.t.Helper()
	s, err := r.recvErr(5 * time.Second)
	if err != nil {
		r.t.Fatalf("reading a response: %v", err)
	}
	return s
}

func (r *raw) recvErr(d time.Duration) (string, error) {
	r.c.SetReadDeadline(time.Now().Add(d))
	s, err := r.br.ReadString('\n')
	if err != nil {
		return s, err
	}
	return strings.TrimSuffix(s, "\n"), nil
}

// quiet checks that the server sends nothing for what was sent before: it sends a sentinel
// request and expects its response to be the only line.
func (r *raw) quiet() {
	r.t.Helper()
	r.send(`{"jsonrpc":"2.0","id":"sentinel","method":"echo"}` + "\n")
	got := r.recv()
	if !strings.Contains(got, `"sentinel"`) {
		r.t.Fatalf("got %s, want no response before the sentinel's", got)
	}
	if s, err := r.recvErr(100 * time.Millisecond); err == nil {
		r.t.Fatalf("got %s after the sentinel, want nothing", s)
	}
}

// matchJSON compares JSON semantically; an expected "message" matches any message containing it.
func matchJSON(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("response %q is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad test: %q: %v", want, err)
	}
	relaxMessages(g, w)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func relaxMessages(g, w any) {
	switch w := w.(type) {
	case map[string]any:
		g, ok := g.(map[string]any)
		if !ok {
			return
		}
		if wm, ok := w["message"].(string); ok {
			if gm, ok := g["message"].(string); ok && strings.Contains(gm, wm) {
				g["message"] = wm
			}
		}
		for k, v := range w {
			relaxMessages(g[k], v)
		}
	case []any:
		g, ok := g.([]any)
		if !ok {
			return
		}
		for i := range min(len(g), len(w)) {
			relaxMessages(g[i], w[i])
		}
	}
}

// goroutines returns a function that fails t if goroutines started since are still running.
func goroutines(t *testing.T) func() {
	before := runtime.NumGoroutine()
	return func() {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				var b bytes.Buffer
				pprof.Lookup("goroutine").WriteTo(&b, 1)
				t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), b.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
