package testenv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// UnboundT starts a test unbound in t.TempDir() and stops it when the test ends. It fails the
// test when unbound is missing or does not start.
func UnboundT(t testing.TB, opts UnboundOptions) *Unbound {
	t.Helper()
	RequireTool(t, "unbound", "unbound")
	u, err := StartUnbound(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := u.Close(); err != nil {
			t.Error(err)
		}
	})
	return u
}

// KdigT runs Kdig against u and fails the test on error.
func KdigT(t testing.TB, u *Unbound, name, typ string) *KdigResult {
	t.Helper()
	RequireTool(t, "kdig", "knot-dnsutils")
	r, err := Kdig(t.Context(), u.KdigQuery(name, typ))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// DiscardConns accepts connections on ln and reads each until it closes, answering nothing: a
// server that took the connection (or the query) and went quiet. At cleanup the listener closes
// and every connection has ended. It returns ln's port.
func DiscardConns(t testing.TB, ln net.Listener) int {
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); defer c.Close(); _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// ClosedByPeer reads from each of conns in turn until at least n of them have been closed by
// their peer (a read ends in EOF or a reset, not a timeout), and says which were. It fails the
// test after a minute.
func ClosedByPeer(t testing.TB, conns []net.Conn, n int) []bool {
	t.Helper()
	closed := make([]bool, len(conns))
	count := 0
	deadline := time.Now().Add(time.Minute)
	buf := make([]byte, 1)
	for count < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d connections closed by their peer in a minute, want %d", count, len(conns), n)
		}
		for i, c := range conns {
			if closed[i] {
				continue
			}
			_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
			if _, err := c.Read(buf); errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			closed[i] = true
			count++
		}
	}
	return closed
}

// AskTCP sends a query for name (type A) on a DNS-over-TCP connection and reports whether it was
// answered: false when the server closed the connection instead. It fails the test when neither
// happens within 15 s.
func AskTCP(t testing.TB, nc net.Conn, name string) bool {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeA)
	pkt, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(15 * time.Second))
	defer nc.SetDeadline(time.Time{})
	if _, err := nc.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(pkt))), pkt...)); err != nil {
		return false // closed already, and reset by this write
	}
	var hdr [2]byte
	if _, err := io.ReadFull(nc, hdr[:]); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%s: neither an answer nor a close in 15 s", name)
		}
		return false
	}
	if _, err := io.ReadFull(nc, make([]byte, binary.BigEndian.Uint16(hdr[:]))); err != nil {
		t.Fatalf("%s: half an answer: %v", name, err)
	}
	return true
}

// HoldTCP opens n DNS-over-TCP connections to addr from the local address from (on loopback,
// 127.0.0.2 and so on are other clients), asks a query on each, and keeps those answered open
// until the test ends; it closes the others, which the server had closed. It returns the held
// connections and how many the server closed.
func HoldTCP(t testing.TB, from, addr string, n int) (held []net.Conn, refused int) {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	for i := range n {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d from %s: %v", i, from, err)
		}
		if AskTCP(t, c, fmt.Sprintf("hold%d.example.", i)) {
			t.Cleanup(func() { c.Close() })
			held = append(held, c)
		} else {
			refused++
			c.Close()
		}
	}
	return held, refused
}
