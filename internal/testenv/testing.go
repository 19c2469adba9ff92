package testenv

import (
	"io"
	"net"
	"sync"
	"testing"
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
