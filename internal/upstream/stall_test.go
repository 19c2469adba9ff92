package upstream

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestSlowNameIsNotAStall: a server that answers the stall probe ('. NS') and other names at
// once but never a slow name keeps its connection past StallInterval after a caller gave up on
// the slow name: nothing counts as a stall, and the next query is answered on the same
// connection.
func TestSlowNameIsNotAStall(t *testing.T) {
	srv := newFaultServer(t, certOpts{}, func(c *srvConn) {
		for {
			q, _, err := c.read()
			if err != nil {
				return
			}
			if strings.HasPrefix(q.Question[0].Name, "slow") {
				continue // its authority is dead: never answered
			}
			r := answer(q)
			if q.Question[0].Qtype != dns.TypeA {
				r.Answer = nil // the probe: an empty NOERROR does
			}
			if err := c.write(r); err != nil {
				return
			}
		}
	})
	u := srv.upstream(t, nil)
	if _, err := u.Exchange(ctxT(t, 300*time.Millisecond), query("slow.example.")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow name: %v, want a deadline error", err)
	}
	time.Sleep(StallInterval + time.Second)
	if st := u.Stats(); st.OpenConns != 1 || st.Stalls != 0 {
		t.Fatalf("after %v: %d open connections, %d stalls; want the connection kept, no stall", StallInterval+time.Second, st.OpenConns, st.Stalls)
	}
	if _, err := u.Exchange(ctxT(t, 2*time.Second), query("ok.example.")); err != nil {
		t.Fatal(err)
	}
	if st := u.Stats(); st.ConnsOpened != 1 || srv.accepted() != 1 {
		t.Fatalf("%d connections opened (%d accepted), want 1", st.ConnsOpened, srv.accepted())
	}
}

// TestNoAttemptWithoutTimeLeft: a caller whose deadline has passed gets its error at once, and
// no connection is dialled for it (nor counted as a failed dial).
func TestNoAttemptWithoutTimeLeft(t *testing.T) {
	srv := newFaultServer(t, certOpts{}, echoServe)
	u := srv.upstream(t, nil)
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
	defer cancel()
	_, err := u.Exchange(ctx, query("late.example."))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no time left") {
		t.Fatalf("err = %v, want a deadline error saying no time was left", err)
	}
	time.Sleep(100 * time.Millisecond) // a dial to loopback would have been accepted by now
	if st := u.Stats(); st.ConnsOpened != 0 || st.DialFails != 0 || srv.accepted() != 0 {
		t.Fatalf("opened %d, failed dials %d, accepted %d: want no dial at all", st.ConnsOpened, st.DialFails, srv.accepted())
	}
}

// TestKeepaliveShortensIdle: a server's edns-tcp-keepalive of 500 ms (RFC 7828) closes the idle
// connection after about that, not after the 20 s IdleTimeout it was armed with.
func TestKeepaliveShortensIdle(t *testing.T) {
	srv := newFaultServer(t, certOpts{}, func(c *srvConn) {
		for {
			q, _, err := c.read()
			if err != nil {
				return
			}
			r := answer(q)
			r.SetEdns0(1232, false)
			r.IsEdns0().Option = append(r.IsEdns0().Option, &dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE, Timeout: 5}) // 100 ms units
			if err := c.write(r); err != nil {
				return
			}
		}
	})
	u := srv.upstream(t, func(o *Options) { o.IdleTimeout = 20 * time.Second })
	if _, err := u.Exchange(ctxT(t, 2*time.Second), query("ka.example.")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return u.Stats().OpenConns == 0 }, "the keepalive of 500 ms to close the idle connection")
}
