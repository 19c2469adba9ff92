package resolver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/upstream"
)

// member is an upstream in a resolver, with its health.
type member struct {
	u        *upstream.Upstream
	failures atomic.Uint64 // failed attempts, all time
	faults   atomic.Uint64 // u.Faults() when last looked at (newFaults)

	mu        sync.Mutex
	fails     int // consecutive
	down      bool
	downSince time.Time
	lastErr   string
	probing   bool
	kick      chan struct{} // wakes the probe when the member is reset

	lastOK    atomic.Pointer[dns.Msg] // the last reply it answered NOERROR or NXDOMAIN (read-only)
	checking  bool                    // a SERVFAIL check is running (servfailed); mu
	checkedOK time.Time               // when a SERVFAIL check last passed; mu
}

func newMember(u *upstream.Upstream) *member {
	m := &member{u: u, kick: make(chan struct{}, 1)}
	m.faults.Store(u.Faults())
	return m
}

// newFaults reports whether the upstream recorded a fault (upstream.Upstream.Faults) since the
// last call, or since the last success.
func (m *member) newFaults() bool {
	n := m.u.Faults()
	return m.faults.Swap(n) != n
}

func (m *member) healthy() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.down
}

// fail records a failed attempt and reports whether the upstream just went down, in which case
// the caller starts the one probe for it.
func (m *member) fail(err error, maxFails int) bool {
	m.failures.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fails++
	m.lastErr = err.Error()
	if m.down || m.fails < maxFails {
		return false
	}
	m.down = true
	m.downSince = time.Now()
	if m.probing {
		return false
	}
	m.probing = true
	return true
}

func (m *member) succeeded() {
	m.faults.Store(m.u.Faults())
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fails = 0
	m.down = false
}

// reset forgets the failures and ends a probe that is waiting out its backoff.
func (m *member) reset() {
	m.succeeded()
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *member) lastError() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastErr
}

// state is a snapshot for status.
func (m *member) state() (healthy bool, downSince time.Time, lastErr string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.down, m.downSince, m.lastErr
}

// ServfailCheckEvery: after a SERVFAIL check passed, further unexplained SERVFAILs from the
// upstream are not checked for this long. The upstream has just shown it resolves; checking each
// one would add a query for every retry of a LAN client that keeps asking for a dead name.
const ServfailCheckEvery = 10 * time.Second

// servfailed handles a SERVFAIL from m that no Extended DNS Error explains. It says nothing about
// whose fault it is (unbound, for one, sends it bare for a name whose authorities are dead), so
// it counts against m only when m also fails a question it answered before, asked again in the
// background: the last name m answered (". NS" before it answered any). A check that gets
// NOERROR or NXDOMAIN clears m; SERVFAIL or REFUSED counts as m's own failure; an error is held
// against m as any attempt's (attemptFailed). One check runs at a time per upstream.
func (r *Resolver) servfailed(s *upstreamSet, m *member, name string) {
	m.mu.Lock()
	if m.checking || (!m.checkedOK.IsZero() && time.Since(m.checkedOK) < ServfailCheckEvery) {
		m.mu.Unlock()
		return
	}
	m.checking = true
	m.mu.Unlock()
	started := r.goWork(func() {
		q := new(dns.Msg)
		if ok := m.lastOK.Load(); ok != nil && len(ok.Question) == 1 {
			q.SetQuestion(ok.Question[0].Name, ok.Question[0].Qtype)
		} else {
			q.SetQuestion(".", dns.TypeNS)
		}
		ctx, cancel := context.WithTimeout(r.ctx, s.timeout)
		reply, err := m.u.Exchange(ctx, q)
		cancel()
		passed := err == nil && (reply.Rcode == dns.RcodeSuccess || reply.Rcode == dns.RcodeNameError)
		m.mu.Lock()
		m.checking = false
		if passed {
			m.checkedOK = time.Now()
		}
		m.mu.Unlock()
		switch {
		case passed:
			m.succeeded()
		case err != nil:
			if r.ctx.Err() == nil {
				r.attemptFailed(s, m, err)
			}
		default:
			r.failed(s, m, fmt.Errorf("upstream %s answered SERVFAIL for %s, and %s for %s, which it answered before",
				m.u.Name(), name, dns.RcodeToString[reply.Rcode], q.Question[0].Name))
		}
	})
	if !started {
		m.mu.Lock()
		m.checking = false
		m.mu.Unlock()
	}
}

// probe asks a down upstream a cheap question, with a doubling backoff, until it answers (any
// reply will do: it shows the server is reachable over TLS), it is reset, or the resolver closes.
func (r *Resolver) probe(s *upstreamSet, m *member) {
	defer func() {
		m.mu.Lock()
		m.probing = false
		m.mu.Unlock()
	}()
	backoff := s.opts.BackoffMin
	t := time.NewTimer(backoff)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-m.kick:
		case <-r.ctx.Done():
			return
		}
		if m.healthy() {
			return
		}
		ctx, cancel := context.WithTimeout(r.ctx, s.timeout)
		q := new(dns.Msg)
		q.SetQuestion(".", dns.TypeNS)
		_, err := m.u.Exchange(ctx, q)
		cancel()
		if err == nil {
			m.mu.Lock()
			down := time.Since(m.downSince)
			m.mu.Unlock()
			m.succeeded()
			r.log.Info("upstream up", "upstream", m.u.Name(), "down_for", down.Round(time.Millisecond).String())
			return
		}
		if errors.Is(err, upstream.ErrClosed) || r.ctx.Err() != nil {
			return
		}
		m.mu.Lock()
		m.lastErr = err.Error()
		m.mu.Unlock()
		backoff = min(backoff*2, s.opts.BackoffMax)
		t.Reset(backoff)
	}
}

func sortBySRTT(ms []*member) {
	rtt := make(map[*member]time.Duration, len(ms))
	for _, m := range ms {
		rtt[m] = m.u.SRTT()
	}
	// An upstream never measured sorts first, so it gets measured.
	slices.SortStableFunc(ms, func(a, b *member) int {
		return cmp.Compare(rtt[a], rtt[b])
	})
}
