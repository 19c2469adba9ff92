package faults

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/dnsserver"
	"github.com/delvedns/delve/internal/jsonrpc/ws"
	"github.com/delvedns/delve/internal/testenv"
)

// TestIdleWebSocketConnections (issue 20, finding 5): 600 TCP connections to the daemon's
// WebSocket port that never send a request hold at most ws.DefaultMaxPending (16) of its
// descriptors and goroutines, not 600 (at the descriptor limit its upstream dials would fail),
// and a WebSocket client that comes after them is served. The daemon is tuned to wait a minute
// for a request instead of 5 s, so that the limit alone closes connections here.
func TestIdleWebSocketConnections(t *testing.T) {
	t.Parallel()
	srv := newDotServer(t, dotOptions{}, healthy)
	wsPort, err := testenv.FreePort("tcp")
	if err != nil {
		t.Fatal(err)
	}
	wsAddr := "127.0.0.1:" + strconv.Itoa(wsPort)
	c := newConf(t)
	c.ups = []upstreamConf{srv.upstream("up")}
	c.main = []string{"option websocket '" + wsAddr + "'"}
	p := serve(t, c, serveOptions{tune: "wsrequest=1m"})
	// Counted on a connection of their own: a connection keeps idle workers for its next calls.
	count := func() daemonStatus {
		sc := p.client(t)
		defer sc.Close()
		return status(t, sc)
	}
	warm := p.client(t)
	if _, _, err := lookup(warm, "warm.example", "A"); err != nil {
		t.Fatal(err)
	}
	warm.Close()
	base := count()

	const idle = 600
	conns := make([]net.Conn, 0, idle)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range idle {
		nc, err := net.Dial("tcp", wsAddr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, nc)
	}
	// Readiness: the daemon has accepted them all once all but 16 are closed (the newest close
	// the oldest).
	closed := testenv.ClosedByPeer(t, conns, idle-ws.DefaultMaxPending)
	for i, c := range closed {
		if c != (i < idle-ws.DefaultMaxPending) {
			t.Fatalf("connection %d of %d closed: %v; want the oldest %d closed, the newest %d open", i, idle, c, idle-ws.DefaultMaxPending, ws.DefaultMaxPending)
		}
	}
	var held daemonStatus
	settled, ok := eventually(30*time.Second, func() bool {
		held = count()
		return held.Process.OpenFDs <= base.Process.OpenFDs+ws.DefaultMaxPending &&
			held.Process.Goroutines <= base.Process.Goroutines+ws.DefaultMaxPending
	})
	if !ok {
		p.dumpGoroutines(t)
		t.Fatalf("with %d idle connections (%d closed by the daemon): %d fds (%d before), %d goroutines (%d before); want at most %d more of each",
			idle, idle-ws.DefaultMaxPending, held.Process.OpenFDs, base.Process.OpenFDs, held.Process.Goroutines, base.Process.Goroutines, ws.DefaultMaxPending)
	}
	t.Logf("%d idle connections, %d closed by the daemon: fds %d -> %d, goroutines %d -> %d (settled in %v)",
		idle, idle-ws.DefaultMaxPending, base.Process.OpenFDs, held.Process.OpenFDs, base.Process.Goroutines, held.Process.Goroutines, settled.Round(time.Millisecond))

	// A WebSocket client is served while the idle connections are still open on our side.
	conn, resp, err := websocket.DefaultDialer.Dial("ws://"+wsAddr+"/", nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("a WebSocket client after the idle connections: %v (HTTP %d)", err, status)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"jsonrpc":"2.0","id":1,"method":"lookup","params":{"name":"ws.example","type":"A"}}`)); err != nil {
		t.Fatal(err)
	}
	_, reply, err := conn.ReadMessage()
	if err != nil || !contains(string(reply), faultAddr) {
		t.Fatalf("lookup over the WebSocket: %s %v", reply, err)
	}
}

// TestDNSTCPPerClient (issue 20, finding 8): one address opening 100 TCP connections to the DNS
// listener and keeping them gets 16 (dnsserver.DefaultMaxTCPPerClient) served, the rest closed
// at accept, and another client's TCP query (as dnsmasq retrying a truncated answer) is answered.
func TestDNSTCPPerClient(t *testing.T) {
	t.Parallel()
	srv := newDotServer(t, dotOptions{}, healthy)
	dnsAddr := listenAddr(t)
	c := newConf(t)
	c.ups = []upstreamConf{srv.upstream("up")}
	c.listen = dnsAddr
	p := serve(t, c, serveOptions{})
	cl := p.client(t)

	held, refused := testenv.HoldTCP(t, "127.0.0.2", dnsAddr, 100)
	// The daemon closes a connection idle for 10 s; one that did so on a slow machine while the
	// 100 were opened freed a slot for a later one. Those still held are what the cap counts.
	live := 0
	for i, nc := range held {
		if testenv.AskTCP(t, nc, fmt.Sprintf("again%d.example.", i)) {
			live++
		}
	}
	const limit = dnsserver.DefaultMaxTCPPerClient
	if live > limit || len(held) < limit || refused != 100-len(held) {
		t.Fatalf("one address: %d of 100 connections served, %d of them still open, %d closed at accept; want %d served", len(held), live, refused, limit)
	}
	// Another client over TCP, while the first holds its connections.
	q := new(dns.Msg)
	q.SetQuestion("other.example.", dns.TypeA)
	other := &dns.Client{Net: "tcp", Timeout: 5 * time.Second, Dialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}, Timeout: 5 * time.Second}}
	r, _, err := other.Exchange(q, dnsAddr)
	if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("another client's TCP query: %v %v", r, err)
	}
	st := status(t, cl)
	if st.DNS == nil || st.DNS.TCPRefused != uint64(refused) || st.DNS.TCPConns > limit+1 {
		t.Fatalf("status dns: %+v; want tcp_refused %d and at most %d connections", st.DNS, refused, limit+1)
	}
	t.Logf("one address: %d served, %d closed at accept (status tcp_refused %d, tcp_connections %d); another client answered %v",
		len(held), refused, st.DNS.TCPRefused, st.DNS.TCPConns, r.Answer[0])
}
