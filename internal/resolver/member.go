package resolver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/upstream"
)

// member is an upstream in a resolver, with its health.
type member struct {
	_        [0]func() // never compared: the binary then carries no equality function for it
	u        *upstream.Upstream
	h        *health
	failures atomic.Uint64 // failures counted against it, all time
	faults   atomic.Uint64 // u.Faults() when last looked at (newFaults)

	lastOK atomic.Pointer[dns.Msg] // the last reply it answered NOERROR or NXDOMAIN (read-only)
}

func newMember(u *upstream.Upstream) *member {
	m := &member{u: u, h: newHealth()}
	m.faults.Store(u.Faults())
	return m
}

// newFaults reports whether the upstream recorded a connection fault (upstream.Upstream.Faults)
// since the last call, or since the last success. Each such fault is one event, however many
// lookups waited on the connection: the first of them to look counts it, the rest find nothing
// new.
func (m *member) newFaults() bool {
	n := m.u.Faults()
	return m.faults.Swap(n) != n
}

func (m *member) healthy() bool { return m.h.up() }

func (m *member) succeeded() {
	m.faults.Store(m.u.Faults())
	m.h.ok()
}

// reset forgets the failures and ends a probe that is waiting out its backoff (a redial).
func (m *member) reset() {
	m.faults.Store(m.u.Faults())
	m.h.redial()
}

// ServfailCheckEvery: after a check passed (Resolver.check), further unexplained SERVFAILs or
// unparseable answers from the upstream are not checked for this long. The upstream has just
// shown it resolves; checking each one would add a query for every retry of a LAN client that
// keeps asking for a dead or broken name.
const ServfailCheckEvery = 10 * time.Second

// check handles a reply that says nothing about whose fault it is: a SERVFAIL that no Extended
// DNS Error explains (unbound, for one, sends it bare for a name whose authorities are dead), or
// an answer that does not parse (a zone's bad record, relayed). Either counts against m only when
// m also fails a question it answered before, asked again in the background: the last name m
// answered (". NS" before it answered any, to which REFUSED passes too). A check that gets NOERROR or NXDOMAIN clears m;
// SERVFAIL, REFUSED or another unparseable answer counts as m's own failure; an error is held
// against m as any attempt's (attemptFailed). One check runs at a time per upstream.
func (r *Resolver) check(s *upstreamSet, m *member, name, what string) {
	if !m.h.startCheck(ServfailCheckEvery) {
		return
	}
	started := r.goWork(func() {
		q := new(dns.Msg)
		ok := m.lastOK.Load()
		if ok != nil && len(ok.Question) == 1 {
			q.SetQuestion(ok.Question[0].Name, ok.Question[0].Qtype)
		} else {
			q.SetQuestion(".", dns.TypeNS)
		}
		ctx, cancel := context.WithTimeout(r.ctx, s.timeout)
		reply, err := m.u.Exchange(ctx, q)
		cancel()
		// ". NS" was never answered before: a server may refuse it by policy (one that serves
		// only some zones), and that is no failure.
		passed := err == nil && (reply.Rcode == dns.RcodeSuccess || reply.Rcode == dns.RcodeNameError ||
			(ok == nil && reply.Rcode == dns.RcodeRefused))
		m.h.endCheck(passed)
		switch {
		case passed:
			m.succeeded()
		case errors.Is(err, upstream.ErrMalformed):
			r.failed(s, m, fmt.Errorf("upstream %s %s for %s, and an answer that does not parse for %s, which it answered before",
				m.u.Name(), what, name, q.Question[0].Name))
		case err != nil:
			if r.ctx.Err() == nil {
				r.attemptFailed(s, m, err)
			}
		default:
			r.failed(s, m, fmt.Errorf("upstream %s %s for %s, and %s for %s, which it answered before",
				m.u.Name(), what, name, dns.RcodeToString[reply.Rcode], q.Question[0].Name))
		}
	})
	if !started {
		m.h.endCheck(false)
	}
}

// failed counts one failure against m and, when that takes it down, starts its probe.
func (r *Resolver) failed(s *upstreamSet, m *member, err error) {
	m.failures.Add(1)
	if !m.h.fail(err, s.opts.MaxFails) {
		return
	}
	r.log.Warn("upstream down", "upstream", m.u.Name(), "addr", m.u.Addr(), "err", err)
	if !r.goWork(func() { r.probe(s, m) }) {
		m.h.retire() // the resolver is closed
	}
}

// probe asks a down upstream a cheap question, with a doubling backoff, until it answers (any
// reply will do: it shows the server is reachable over TLS), something else brings it back, or
// the resolver or upstream closes. Every step is a transition of m.h (see health).
func (r *Resolver) probe(s *upstreamSet, m *member) {
	backoff := s.opts.BackoffMin
	t := time.NewTimer(backoff)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-m.h.kick:
		case <-r.ctx.Done():
			m.h.retire()
			return
		}
		if !m.h.beginProbe() {
			return
		}
		ctx, cancel := context.WithTimeout(r.ctx, s.timeout)
		q := new(dns.Msg)
		q.SetQuestion(".", dns.TypeNS)
		_, err := m.u.Exchange(ctx, q)
		cancel()
		if errors.Is(err, upstream.ErrClosed) || r.ctx.Err() != nil {
			m.h.retire()
			return
		}
		if err == nil {
			m.faults.Store(m.u.Faults())
		}
		again, recovered, downFor := m.h.probed(err)
		if recovered {
			r.log.Info("upstream up", "upstream", m.u.Name(), "down_for", downFor.Round(time.Millisecond).String())
		}
		if !again {
			return
		}
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
