package upstream

import (
	"crypto/tls"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// quickAckOf returns the quick-ACK wrapper under u's one connection.
func quickAckOf(t *testing.T, u *Upstream) *quickAckConn {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.conns) != 1 {
		t.Fatalf("%d connections, want 1", len(u.conns))
	}
	q, ok := u.conns[0].nc.(*tls.Conn).NetConn().(*quickAckConn)
	if !ok {
		t.Fatalf("the connection under TLS is a %T, not the quick-ACK wrapper", u.conns[0].nc.(*tls.Conn).NetConn())
	}
	return q
}

// TestQuickAckOnlyWhenRepliesOwed: a read while another reply is owed re-arms TCP_QUICKACK (the
// server may hold that reply behind Nagle until this one is acknowledged); a read of the only
// reply owed does not (the ACK rides on the next query).
func TestQuickAckOnlyWhenRepliesOwed(t *testing.T) {
	// The server answers each query alone, except that a query for a name under pair. waits for
	// a second one and answers both together.
	srv := newFaultServer(t, certOpts{}, func(c *srvConn) {
		for {
			q, _, err := c.read()
			if err != nil {
				return
			}
			qs := []*dns.Msg{q}
			if dns.IsSubDomain("pair.", q.Question[0].Name) {
				q2, _, err := c.read()
				if err != nil {
					return
				}
				qs = append(qs, q2)
			}
			for _, q := range qs {
				if err := c.write(answer(q)); err != nil {
					return
				}
			}
		}
	})
	u := srv.upstream(t, nil)
	// The first reply re-arms (the server's session tickets come before it): get past it.
	if _, err := u.Exchange(ctxT(t, 5*time.Second), query("first.example.")); err != nil {
		t.Fatal(err)
	}
	q := quickAckOf(t, u)

	before := q.rearms.Load()
	for i := range 5 {
		if _, err := u.Exchange(ctxT(t, 5*time.Second), query("lone"+itoa(i)+".example.")); err != nil {
			t.Fatal(err)
		}
	}
	if n := q.rearms.Load() - before; n != 0 {
		t.Errorf("5 queries one at a time re-armed quick-ACK %d times, want 0", n)
	}

	// Both queries are owed when the first reply is read: the server answers neither before it
	// has read both.
	before = q.rearms.Load()
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := u.Exchange(ctxT(t, 5*time.Second), query("q"+itoa(i)+".pair.")); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := q.rearms.Load() - before; n < 1 {
		t.Errorf("two pipelined replies re-armed quick-ACK %d times, want at least once", n)
	}
	if st := u.Stats(); st.ConnsOpened != 1 {
		t.Errorf("%d connections opened, want 1", st.ConnsOpened)
	}
}
