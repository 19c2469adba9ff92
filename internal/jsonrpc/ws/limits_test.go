package ws

import (
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/testenv"
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
	closed := testenv.ClosedByPeer(t, conns, idle-DefaultMaxPending)
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
	testenv.ClosedByPeer(t, []net.Conn{silent, partial}, 2)
}
