package resolver

import (
	"sync"
	"time"
)

// health is one upstream's health: a small state machine owned by one lock, so that every
// decision about "down" and "is a probe running" is taken in one critical section.
//
// States:
//
//	healthy   no failure counted since the last success; picked for lookups
//	suspect   1 to MaxFails-1 failures in a row; still picked (one is noise on a flapping link)
//	down      MaxFails failures in a row; skipped; a probe is owed: its goroutine waits out the
//	          backoff (or a kick) before it asks
//	probing   down, and the probe is asking now
//
// Transitions (the method that makes each):
//
//	healthy, suspect --fail--> suspect, or down at MaxFails: fail returns start=true and the
//	                           caller starts the probe, unless one is still alive (it goes on)
//	down, probing    --fail--> unchanged (the probe is what brings it back)
//	any              --ok----> healthy (a lookup, SERVFAIL check or redial showed it works); a
//	                           probe still alive sees it at its next step and ends
//	down             --beginProbe--> probing; from any other state the probe ends instead
//	probing          --probed(ok)--> healthy, and the probe ends
//	probing          --probed(error)--> down: the probe waits a longer backoff
//	healthy, suspect --probed(...)--> unchanged; the probe ends (a success came meanwhile)
//	down             --probed(...)--> unchanged; the probe waits and asks again (a success and
//	                           then MaxFails failures came while it asked: its answer is older)
//	down, probing    --retire--> unchanged, and the probe ends: only when the resolver or the
//	                           upstream is closed, after which nobody picks it again
//
// The invariant: down or probing implies a probe is alive (scheduled or asking), or the member
// is retired. A probe's goroutine ends only through a transition that finds the member not down
// (beginProbe, probed) or retires it, in the same critical section that clears alive, so a
// failure that lands while the probe is finishing sees alive false and starts the next one.
// TestHealthInvariantUnderInterleavings drives it.
type health struct {
	_         [0]func() // never compared: the binary then carries no equality function for it
	mu        sync.Mutex
	state     healthState
	fails     int  // in a row
	alive     bool // a probe goroutine exists
	retired   bool
	downSince time.Time
	lastErr   string

	checking  bool      // a SERVFAIL or malformed-answer check runs (Resolver.check)
	checkedOK time.Time // when a check last passed

	kick chan struct{} // wakes a probe waiting out its backoff (redial)
}

type healthState uint8

const (
	healthy healthState = iota
	suspect
	down
	probing
)

func newHealth() *health { return &health{kick: make(chan struct{}, 1)} }

// up reports whether the upstream is picked for lookups.
func (h *health) up() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state == healthy || h.state == suspect
}

// fail counts one failure and reports whether the caller must start the probe.
func (h *health) fail(err error, maxFails int) (start bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastErr = err.Error()
	if h.state == down || h.state == probing {
		return false
	}
	h.fails++
	if h.fails < maxFails {
		h.state = suspect
		return false
	}
	h.state = down
	h.downSince = time.Now()
	if h.alive {
		return false // a probe that has not yet ended sees down at its next step and asks
	}
	h.alive = true
	return true
}

// ok records a success from anything but the probe.
func (h *health) ok() {
	h.mu.Lock()
	h.state, h.fails = healthy, 0
	h.mu.Unlock()
}

// redial is ok, and wakes a probe waiting out its backoff so that it ends now.
func (h *health) redial() {
	h.ok()
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// beginProbe is the probe's step after its backoff: it reports whether to ask, and otherwise the
// probe ends.
func (h *health) beginProbe() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != down {
		h.alive = false
		return false
	}
	h.state = probing
	return true
}

// probed records the probe's outcome. again is true when the probe is to wait and ask again;
// recovered is true when this answer brought the upstream back, down for downFor.
func (h *health) probed(err error) (again, recovered bool, downFor time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch h.state {
	case healthy, suspect:
		h.alive = false // a success came meanwhile
		return false, false, 0
	case down:
		// A success and then MaxFails failures came meanwhile: this answer is older than they
		// are. The probe stays and asks again.
		return true, false, 0
	}
	if err != nil {
		h.state = down
		h.lastErr = err.Error()
		return true, false, 0
	}
	h.state, h.fails, h.alive = healthy, 0, false
	return false, true, time.Since(h.downSince)
}

// retire ends the probe for good: the resolver or the upstream closed.
func (h *health) retire() {
	h.mu.Lock()
	h.alive, h.retired = false, true
	h.mu.Unlock()
}

// startCheck reports whether a SERVFAIL or malformed-answer check may start now: none runs, and
// none passed within every.
func (h *health) startCheck(every time.Duration) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.checking || (!h.checkedOK.IsZero() && time.Since(h.checkedOK) < every) {
		return false
	}
	h.checking = true
	return true
}

func (h *health) endCheck(passed bool) {
	h.mu.Lock()
	h.checking = false
	if passed {
		h.checkedOK = time.Now()
	}
	h.mu.Unlock()
}

func (h *health) lastError() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastErr
}

// snapshot is the state for status.
func (h *health) snapshot() (ok bool, downSince time.Time, lastErr string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state == healthy || h.state == suspect, h.downSince, h.lastErr
}
