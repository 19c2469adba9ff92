package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/testenv"
)

// TestResetAbandonsDial: a TLS handshake that went out over a link that is gone (the server took
// the TCP connection and never answers) is abandoned by Reset, as after a WAN change: the next
// exchange connects afresh at once instead of waiting out DialTimeout behind it.
func TestResetAbandonsDial(t *testing.T) {
	ca, err := testenv.NewCA("reset CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(testenv.IssueOptions{DNSNames: []string{"dot.delve.test"}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var dead atomic.Bool // while set, connections are swallowed
	dead.Store(true)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			swallow := dead.Load()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				if swallow {
					_, _ = io.Copy(io.Discard, c)
					return
				}
				tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{leaf.Certificate}})
				if tc.Handshake() != nil {
					return
				}
				echoServe(&srvConn{Conn: tc, r: bufio.NewReader(tc)})
			}()
		}
	}()
	u, err := New(Options{Name: "reset", Address: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, TLSName: "dot.delve.test",
		RootCAs: ca.Pool(), DialTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = u.Close() })

	if _, err := u.Exchange(ctxT(t, 200*time.Millisecond), query("during.example.")); err == nil {
		t.Fatal("an exchange succeeded over a dead link")
	}
	dead.Store(false)
	u.Reset()
	// A deadline shorter than the 10 s DialTimeout: an exchange that waited for the dial over the
	// dead link fails with it.
	if _, err := u.Exchange(ctxT(t, 8*time.Second), query("after.example.")); err != nil {
		t.Fatalf("after Reset: %v", err)
	}
	if st := u.Stats(); st.OpenConns != 1 || st.ConnsOpened != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestServerClosesAfterEachQueryConcurrent: a server that answers one query per connection and
// closes it, with many queries pipelined at once: every query is answered, each of those
// queued behind an answered one being sent again on the next connection.
func TestServerClosesAfterEachQueryConcurrent(t *testing.T) {
	srv := newFaultServer(t, certOpts{}, func(c *srvConn) {
		q, _, err := c.read()
		if err != nil {
			return
		}
		_ = c.write(answer(q))
		// Close as a server that answers one query per connection does: say so (close_notify
		// and FIN) and read what the client had already sent until it hangs up. Closing with
		// those queries unread would reset the connection, and a reset may overtake the answer,
		// which is a different fault (a server dropping its answers).
		if tc, ok := c.Conn.(*tls.Conn); ok {
			_ = tc.CloseWrite()
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.Copy(io.Discard, c.r)
	})
	u := srv.upstream(t, nil)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := u.Exchange(ctxT(t, 5*time.Second), query("c"+itoa(i)+".example."))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if st := u.Stats(); st.Errors != 0 || st.ConnsOpened < n {
		t.Fatalf("stats %+v", st)
	}
}

// TestHandshakeTimeoutSaysSo: a server that takes the TCP connection and never answers the
// ClientHello (plain DNS on the DoT port waits for the rest of what it took for a query) makes
// the exchange fail at its deadline with an error that says connecting did not finish.
func TestHandshakeTimeoutSaysSo(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := testenv.DiscardConns(t, ln)
	u, err := New(Options{Name: "silent", Address: "127.0.0.1", Port: port, TLSName: "dot.delve.test", DialTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = u.Close() })
	_, err = u.Exchange(ctxT(t, 100*time.Millisecond), query("silent.example."))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "connecting did not finish within 100ms (TCP and TLS handshake)") {
		t.Fatalf("err = %v", err)
	}
}
