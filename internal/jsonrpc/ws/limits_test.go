package ws

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"testing"
	"time"
)

// TestPendingBounded (issue 20, finding 5): 600 connections that never send a request hold at
// most MaxPending of the server's connections and goroutines, each newer one closing the
// oldest, and a WebSocket client that connects after them is served.
func TestPendingBounded(t *testing.T) {
	t.Cleanup(goroutines(t)) // registered first, so it runs after the server's cleanup
	// The request timeout is long, so that only the limit closes connections here.
	ts := startWS(t, Options{RequestTimeout: time.Minute})
	before := runtime.NumGoroutine()
	const idle = 600
	conns := make([]net.Conn, 0, idle)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range idle {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// Readiness: the server has accepted all 600 once it has closed all but MaxPending; count
	// the closes the clients see. They are the oldest.
	closed := waitClosed(t, conns, idle-DefaultMaxPending)
	for i, c := range closed {
		if c != (i < idle-DefaultMaxPending) {
			t.Fatalf("connection %d of %d closed: %v; want the oldest %d closed", i, idle, c, idle-DefaultMaxPending)
		}
	}
	ts.srv.mu.Lock()
	pending, plain := ts.srv.pending, len(ts.srv.plain)
	ts.srv.mu.Unlock()
	if pending > DefaultMaxPending {
		t.Fatalf("%d connections pending, limit %d", pending, DefaultMaxPending)
	}
	// Those closed leave; what remains is one goroutine per pending connection.
	deadline := time.Now().Add(30 * time.Second) // a hang, not a speed
	for runtime.NumGoroutine() > before+DefaultMaxPending {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines with %d idle connections (%d tracked), %d before them", runtime.NumGoroutine(), idle, plain, before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c := dial(t, ts.url, nil)
	defer c.Close()
	match(t, call(t, c, `{"jsonrpc":"2.0","id":1,"method":"echo","params":{"x":1}}`), `{"jsonrpc":"2.0","id":1,"result":{"x":1}}`)
}

// waitClosed reads from each connection until at least n of them have been closed by the
// server, and says which were.
func waitClosed(t *testing.T, conns []net.Conn, n int) []bool {
	t.Helper()
	closed := make([]bool, len(conns))
	count := 0
	deadline := time.Now().Add(60 * time.Second)
	buf := make([]byte, 1)
	for count < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d connections closed by the server in 60 s, want %d", count, len(conns), n)
		}
		for i, c := range conns {
			if closed[i] {
				continue
			}
			c.SetReadDeadline(time.Now().Add(time.Millisecond))
			_, err := c.Read(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			if err != io.EOF && !errors.Is(err, net.ErrClosed) && err != nil {
				var oe *net.OpError
				if !errors.As(err, &oe) {
					t.Fatalf("connection %d: %v", i, err)
				}
			}
			closed[i] = true
			count++
		}
	}
	return closed
}

// TestRequestTimeout: a connection that sends nothing, or only part of its request, is closed
// once RequestTimeout has passed since it connected.
func TestRequestTimeout(t *testing.T) {
	t.Cleanup(goroutines(t))
	ts := startWS(t, Options{RequestTimeout: 200 * time.Millisecond})
	silent, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	partial, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer partial.Close()
	if _, err := partial.Write([]byte("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, []net.Conn{silent, partial}, 2)
}
