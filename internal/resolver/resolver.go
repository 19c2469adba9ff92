package resolver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/upstream"
)

// Strategies for choosing an upstream.
const (
	Failover   = "failover"    // in order: the first healthy one
	RoundRobin = "round_robin" // each lookup starts at the next one
	Fastest    = "fastest"     // the healthy one with the lowest smoothed RTT
)

// DefaultTimeout bounds a lookup whose context has no deadline.
const DefaultTimeout = 3 * time.Second

// ErrNoUpstream is wrapped by the error of a lookup that no upstream could answer.
var ErrNoUpstream = errors.New("no upstream could answer")

// ErrTimeout is wrapped by the error of a lookup whose deadline passed.
var ErrTimeout = errors.New("the lookup timed out")

// ErrBadAnswer is wrapped by the error of a lookup whose answer does not parse (a zone's bad
// record, relayed by the upstream). It is the name's problem, not the upstream's; a DNS client can
// still be given the answer as it came (Relay).
var ErrBadAnswer = errors.New("the answer does not parse")

// badAnswer is an upstream.MalformedError that is also ErrBadAnswer, saying no more than it does.
type badAnswer struct{ error }

func (e badAnswer) Unwrap() []error { return []error{ErrBadAnswer, e.error} }

// Relay returns, for a lookup that failed with ErrBadAnswer, the upstream's answer with the
// records that do not parse kept as opaque data, for a forwarder to pass on as it came: a copy,
// the caller's to change. ok is false when there is none (its header, question or framing is not
// sound, or err is another error). It is never cached.
func Relay(err error) (m *dns.Msg, ok bool) {
	var me *upstream.MalformedError
	if !errors.As(err, &me) || me.Relay == nil {
		return nil, false
	}
	return clone(me.Relay), true
}

// ErrUnknownUpstream is returned when a lookup names an upstream that is not configured.
var ErrUnknownUpstream = errors.New("no such upstream")

// Options configure a Resolver. Zero values mean the documented defaults.
type Options struct {
	_         [0]func()     // never compared: the binary then carries no equality function for it
	Strategy  string        // Failover (default), RoundRobin or Fastest
	Timeout   time.Duration // whole-lookup deadline when the context has none; default 3 s
	CacheSize int           // entries; 0 = no cache
	// CacheMemory bounds the bytes all cached answers hold (see entrySize for what is counted);
	// default DefaultCacheMemory. An answer above 1/16 of it is not cached.
	CacheMemory int
	// MaxFails consecutive failures mark an upstream down; default 2. A down upstream is skipped
	// and probed in the background with a backoff from BackoffMin (default 500 ms) doubling to
	// BackoffMax (default 30 s) until it answers again.
	MaxFails   int
	BackoffMin time.Duration
	BackoffMax time.Duration
	// MaxStale turns serve-stale (RFC 8767) on: an answer stays cached up to MaxStale past its
	// expiry, and a lookup that no upstream answers within StaleAnswerAfter, or that fails (an
	// error, or SERVFAIL or REFUSED from every upstream tried: RFC 8767 §4), is answered from it
	// with TTL StaleTTL (Info.Stale) while the upstream query goes on and refreshes the cache
	// when it is answered. 0: off.
	MaxStale time.Duration
	// Prefetch refreshes a popular answer before it expires: a cache hit in the last
	// 1/PrefetchDivisor of the answer's TTL, on an answer hit at least PrefetchMinHits times,
	// starts the upstream query in the background, once, and the hit is answered from the cache
	// as usual. So the names a LAN asks all the time never expire into a miss.
	Prefetch bool
	Logger   *slog.Logger // default: discard
}

// Prefetch's thresholds (Options.Prefetch).
const (
	// PrefetchDivisor: a hit in the last tenth of an answer's TTL prefetches it, as unbound's
	// prefetch does: late enough that a refresh is rarely wasted, early enough that the refresh
	// (one upstream round trip, a timeout at worst) is done before the answer expires, for any
	// TTL above a few seconds.
	PrefetchDivisor = 10
	// PrefetchMinHits is how many hits make an answer popular: a name asked once more in its
	// last tenth by a client that happened to come back is not worth an upstream query; one
	// asked again and again (a connectivity check, an NTP server, a push service) is.
	PrefetchMinHits = 2
)

// Serve-stale's timers (RFC 8767 §5 and §4).
const (
	// StaleAnswerAfter is the client-response timer: how long a lookup with a stale answer at
	// hand waits for an upstream before it gives the stale one (RFC 8767 §5 suggests 1.8 s,
	// below the common 2 s stub timeout).
	StaleAnswerAfter = 1800 * time.Millisecond
	// StaleTTL is the TTL of the records of a stale answer (RFC 8767 §4: 30 s).
	StaleTTL = 30
	// DefaultMaxStale is the maximum staleness UCI's serve_stale gives (RFC 8767 §5 suggests 1
	// to 3 days): long enough to ride out a WAN outage of a day.
	DefaultMaxStale = 24 * time.Hour
)

// Info tells where an answer came from.
type Info struct {
	Upstream string        // the upstream that answered (for a cached answer: the one that did then)
	RTT      time.Duration // round trip to it; zero when cached
	Cached   bool
	Stale    bool // an expired answer, served because no upstream answered (Options.MaxStale)
}

// Resolver sends queries to a set of upstreams by a strategy, with failover, backoff and probes,
// a shared cache and coalescing of identical concurrent queries. It is safe for concurrent use.
type Resolver struct {
	log   *slog.Logger
	cache *cache

	set atomic.Pointer[upstreamSet]

	flightMu sync.Mutex
	flights  map[flightKey]*flight

	prefetches atomic.Uint64 // prefetches started
	stale      atomic.Uint64 // expired answers given by serve-stale

	rr atomic.Uint32

	ctx    context.Context // cancelled by Close: ends probes and queries in flight
	cancel context.CancelFunc

	workMu sync.Mutex // orders starting background work against Close
	closed bool
	work   sync.WaitGroup // the workers running probes and flights, busy or idle
	tasks  chan func()    // unbuffered: to a worker idle in workLoop
	idle   atomic.Int32   // workers waiting on tasks
	spawns atomic.Uint64  // workers started (tests)
}

// MaxIdleWorkers is how many goroutines that ran a flight or probe wait for the next one instead
// of exiting, each for at most WorkerIdle. A flight's goroutine grows its stack (unpacking the
// reply, down in miekg/dns) and a new goroutine per miss paid the copy each time: 5 % of a
// miss's CPU under load. Parked, they cost their stacks, some 8 KiB each; a quiet resolver
// keeps none, so that goroutines come back to what they were once the load has passed.
const (
	MaxIdleWorkers = 16
	WorkerIdle     = 2 * time.Second
)

// upstreamSet is the configuration a lookup runs with; a reload swaps it whole.
type upstreamSet struct {
	members  []*member
	byName   map[string]*member
	strategy string
	timeout  time.Duration
	opts     Options
}

// New returns a resolver over ups, which it does not own: closing them is the caller's job.
func New(opts Options, ups []*upstream.Upstream) *Resolver {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Resolver{
		log:     opts.Logger,
		cache:   newCache(opts.CacheSize, cacheMemory(opts)),
		flights: make(map[flightKey]*flight),
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.tasks = make(chan func())
	r.Configure(opts, ups)
	return r
}

func cacheMemory(o Options) int {
	if o.CacheMemory <= 0 {
		return DefaultCacheMemory
	}
	return o.CacheMemory
}

// Configure replaces the upstream set, strategy, timeout and cache bounds. Lookups in flight finish
// with the set they started with. Health state carries over for upstreams that stay (the same
// *Upstream); the cache is kept.
func (r *Resolver) Configure(opts Options, ups []*upstream.Upstream) {
	if opts.Strategy == "" {
		opts.Strategy = Failover
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxFails <= 0 {
		opts.MaxFails = 2
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = 500 * time.Millisecond
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 30 * time.Second
	}
	old := map[*upstream.Upstream]*member{}
	if prev := r.set.Load(); prev != nil {
		for _, m := range prev.members {
			old[m.u] = m
		}
	}
	s := &upstreamSet{byName: map[string]*member{}, strategy: opts.Strategy, timeout: opts.Timeout, opts: opts}
	for _, u := range ups {
		m := old[u]
		if m == nil {
			m = newMember(u)
		}
		s.members = append(s.members, m)
		s.byName[u.Name()] = m
	}
	r.cache.resize(opts.CacheSize, cacheMemory(opts))
	r.cache.setMaxStale(opts.MaxStale)
	r.set.Store(s)
}

// Close ends the background probes and the queries in flight, and waits for them.
func (r *Resolver) Close() {
	r.workMu.Lock()
	r.closed = true
	r.workMu.Unlock()
	r.cancel()
	// Flights started before closed was set are in r.flights until they finish; later ones do
	// not start (goWork).
	r.flightMu.Lock()
	for _, f := range r.flights {
		f.cancel()
	}
	r.flightMu.Unlock()
	r.work.Wait()
}

// goWork runs f on a goroutine that Close waits for: an idle worker's, else a new one's. After
// Close it runs nothing and says so.
func (r *Resolver) goWork(f func()) bool {
	r.workMu.Lock()
	defer r.workMu.Unlock()
	if r.closed {
		return false
	}
	select {
	case r.tasks <- f: // sent under workMu, so never after Close
	default:
		r.work.Add(1)
		r.spawns.Add(1)
		go r.workLoop(f)
	}
	return true
}

// Go runs f on one of the resolver's goroutines, as a flight or probe runs (see MaxIdleWorkers),
// and Close waits for it. The DNS listener runs the queries it cannot answer from the cache so:
// each asks its upstream itself (an inline flight, resolve), on a goroutine whose stack has grown
// to what that takes. It returns false, and f has not run, after Close.
func (r *Resolver) Go(f func()) bool { return r.goWork(f) }

// workLoop runs f, then waits for more work, for WorkerIdle and while fewer than MaxIdleWorkers
// others wait, until Close.
func (r *Resolver) workLoop(f func()) {
	defer r.work.Done()
	var idle *time.Timer
	for {
		f()
		f = nil // what the last task held is not kept while idle
		if r.idle.Add(1) > MaxIdleWorkers {
			r.idle.Add(-1)
			return
		}
		// The idle timer is set once and moved only when it fires early (it was set for an
		// earlier task): a worker busy with one miss after another resets no timer per task.
		finished := time.Now()
		if idle == nil {
			idle = time.NewTimer(WorkerIdle)
		}
	wait:
		select {
		case f = <-r.tasks:
			r.idle.Add(-1)
		case <-idle.C:
			if left := WorkerIdle - time.Since(finished); left > 0 {
				idle.Reset(left)
				goto wait
			}
			r.idle.Add(-1)
			return
		case <-r.ctx.Done():
			r.idle.Add(-1)
			idle.Stop()
			return
		}
	}
}

// Flush empties the cache and returns how many entries it held.
func (r *Resolver) Flush() int { return r.cache.flush() }

// ResetHealth forgets every failure, so that all upstreams are tried again at once (after the
// WAN came back, for example).
func (r *Resolver) ResetHealth() {
	for _, m := range r.set.Load().members {
		m.reset()
	}
}

// Exchange answers one question: from the cache when it can (and via is empty), else from an
// upstream chosen by the strategy, or the one named via. The reply is the caller's to modify.
// Its TTLs are aged by the time it spent in the cache.
func (r *Resolver) Exchange(ctx context.Context, q *dns.Msg, via string) (*dns.Msg, Info, error) {
	return r.exchange(ctx, q, via, true)
}

// ExchangeShared is Exchange for a caller that changes nothing a reply points to (the DNS
// listener, which packs it once): the reply's header fields are the caller's, but its sections,
// the slices and the records in them, may be the cache's, to be read and packed and never
// changed. An answer from the cache is a copy all the same, since its TTLs are aged; one fresh
// from an upstream is the message the cache keeps under a header of the caller's, which saves
// copying each of its records.
func (r *Resolver) ExchangeShared(ctx context.Context, q *dns.Msg, via string) (*dns.Msg, Info, error) {
	return r.exchange(ctx, q, via, false)
}

// exchange is Exchange; without copyRecords, ExchangeShared: a fresh answer's records are not
// copied (an answer from the cache is, since its TTLs are aged).
func (r *Resolver) exchange(ctx context.Context, q *dns.Msg, via string, copyRecords bool) (*dns.Msg, Info, error) {
	e, info, err := r.resolve(ctx, q, via)
	if err != nil {
		return nil, info, err
	}
	var m *dns.Msg
	if copyRecords || info.Cached {
		m = clone(e.msg)
	} else {
		c := *e.msg
		m = &c
	}
	m.Id = q.Id
	if info.Stale {
		staleTTL(m)
	} else if info.Cached {
		age(m, time.Since(e.stored))
	}
	return m, info, nil
}

// resolve returns an entry whose msg is shared and must not be modified.
func (r *Resolver) resolve(ctx context.Context, q *dns.Msg, via string) (*entry, Info, error) {
	if len(q.Question) != 1 {
		return nil, Info{}, upstream.ErrBadQuery
	}
	s := r.set.Load()
	if via != "" && s.byName[via] == nil {
		return nil, Info{}, fmt.Errorf("%w named %q", ErrUnknownUpstream, via)
	}
	k := keyOf(q)
	if via == "" {
		now := time.Now()
		if e := r.cache.get(k, now); e != nil {
			r.hit(k, e, now)
			return e, Info{Upstream: e.upstream, Cached: true}, nil
		}
	}
	// own cancels ctx when the resolver made it: an inline flight can then run under it (flight).
	var own context.CancelFunc
	if _, ok := ctx.Deadline(); !ok {
		ctx, own = context.WithTimeout(ctx, s.timeout)
		defer own()
	}

	// Serve-stale: with an expired answer at hand, the lookup waits StaleAnswerAfter for the
	// upstreams, then answers with it; so it does when they fail. The flight goes on without the
	// caller and caches its answer: the refresh.
	var stale *entry
	var staleAfter <-chan time.Time
	if via == "" {
		if stale = r.cache.getStale(k, time.Now()); stale != nil {
			t := time.NewTimer(StaleAnswerAfter)
			defer t.Stop()
			staleAfter = t.C
		}
	}
	staleInfo := func() Info {
		r.stale.Add(1)
		return Info{Upstream: stale.upstream, Cached: true, Stale: true}
	}

	// Identical questions in flight share one upstream query. A caller waits for it with its own
	// deadline; when a flight ends in a timeout while a caller still has time (it joined late, or
	// its deadline is past the flight's), that caller starts or joins another.
	fk := flightKey{k, via}
	for {
		// A caller with no stale answer to give may run the flight itself (see flight).
		f := r.flight(ctx, own, s, q, k, fk, via, stale == nil)
		select {
		case <-f.done:
			if stale != nil && refreshFailed(f) {
				return stale, staleInfo(), nil
			}
			// A flight that timed out, or an inline one whose caller was cancelled: a caller
			// with time left asks again (or joins).
			if (errors.Is(f.err, ErrTimeout) || errors.Is(f.err, context.Canceled) && ctx.Err() == nil) &&
				time.Until(deadline(ctx)) >= MinAttempt {
				continue
			}
			return f.entry, f.info, f.err
		case <-staleAfter:
			return stale, staleInfo(), nil
		case <-ctx.Done():
			if stale != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return stale, staleInfo(), nil
			}
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && f.deadline.Sub(deadline(ctx)) <= FlightGrace {
			// The flight runs to this caller's deadline, or a moment past it (the caller started
			// it, and the configured timeout counted from the flight's start is a little later):
			// it ends within FlightGrace, with the reason. Waiting that moment gives the caller
			// the reason rather than a bare timeout.
			t := time.NewTimer(FlightGrace)
			defer t.Stop()
			select {
			case <-f.done:
				return f.entry, f.info, f.err
			case <-t.C:
			}
		}
		return nil, Info{}, timeoutErr(ctx)
	}
}

// flight returns the flight for fk, starting it if there is none. A flight's deadline is the
// later of its first caller's and the configured timeout from now, and no caller's cancellation
// ends it: it answers every caller that joins, and caches the answer, even when the caller that
// started it has gone (a client that gave up retransmits, and joins). Only Close cancels it.
//
// A caller that may (mayInline: it has no stale answer to give) and whose deadline is the one the
// flight would have, give or take FlightGrace, runs the flight itself (inline): it would only
// wait for it, and a worker goroutine is one more hand-off each way. The flight then runs under
// the caller's context and has ended when flight returns. It is the exception to the rule above:
// its caller's cancellation (not its deadline) ends it, and whoever joined it then asks again
// (resolve). Other callers start the flight on a worker and wait with their own deadline.
//
// own, when not nil, cancels ctx and nothing else (resolve made ctx for this lookup): an inline
// flight then runs under ctx itself and Close cancels it with own, rather than through a child
// context of its own (an allocation, a registration with ctx, and a channel).
func (r *Resolver) flight(ctx context.Context, own context.CancelFunc, s *upstreamSet, q *dns.Msg, k cacheKey, fk flightKey, via string, mayInline bool) *flight {
	r.flightMu.Lock()
	f, joined := r.flights[fk]
	if joined {
		r.flightMu.Unlock()
		return f
	}
	// A worker's flight has a context that is not a child of r.ctx: registering every flight
	// with one shared parent (a lock and a map insert and delete) cost more than the flight's own
	// work; Close cancels the flights in r.flights instead.
	dl, later := deadline(ctx), time.Now().Add(s.timeout)
	inline := mayInline && later.Sub(dl) <= FlightGrace && dl.Sub(later) <= FlightGrace
	var fctx context.Context
	var cancel context.CancelFunc
	switch {
	case inline && own != nil:
		fctx, cancel = ctx, own
	case inline:
		fctx, cancel = context.WithCancel(ctx)
	default:
		if later.After(dl) {
			dl = later
		}
		fctx, cancel = context.WithDeadline(context.Background(), dl)
	}
	f = &flight{done: make(chan struct{}), cancel: cancel, deadline: dl}
	r.flights[fk] = f
	// Close cancels r.ctx before the flights it finds here: either it finds this one, or this
	// sees r.ctx cancelled.
	closed := r.ctx.Err() != nil
	r.flightMu.Unlock()
	switch {
	case inline && !closed:
		// Run here, without a closure: own is the caller's to call (resolve), after the
		// flight has answered; cancelling ctx before would race its answer.
		f.entry, f.info, f.err = r.query(fctx, s, q, k, via)
		if own == nil {
			cancel()
		}
		r.finish(fk, f)
	case inline || !r.goWork(func() {
		f.entry, f.info, f.err = r.query(fctx, s, q, k, via)
		cancel()
		r.finish(fk, f)
	}):
		cancel()
		f.err = upstream.ErrClosed
		r.finish(fk, f)
	}
	return f
}

// refreshFailed reports whether a flight that ended failed to refresh an answer (RFC 8767 §4):
// an error other than cancellation, or a SERVFAIL or REFUSED from every upstream tried (a
// vendor whose authoritative servers died is answered SERVFAIL), which is returned but never
// cached.
func refreshFailed(f *flight) bool {
	if f.err != nil {
		return !errors.Is(f.err, context.Canceled)
	}
	rc := f.entry.msg.Rcode
	return rc == dns.RcodeServerFailure || rc == dns.RcodeRefused
}

// hit counts a cache hit on e (key k) and starts a prefetch when it makes e due for one
// (Options.Prefetch). It costs a hit two atomic loads once e is popular.
func (r *Resolver) hit(k cacheKey, e *entry, now time.Time) {
	s := r.set.Load()
	if !s.opts.Prefetch {
		return
	}
	n := e.hits.Load()
	if n < PrefetchMinHits {
		n = e.hits.Add(1)
	}
	if n < PrefetchMinHits || e.prefetched.Load() {
		return
	}
	if ttl := e.expires.Sub(e.stored); e.expires.Sub(now) > ttl/PrefetchDivisor {
		return
	}
	if !e.prefetched.CompareAndSwap(false, true) {
		return // another hit started it
	}
	r.prefetches.Add(1)
	// The refresh is an ordinary flight, with the configured timeout and no caller: it caches its
	// answer over e (or joins a flight already asking). Its query is built from the cache key,
	// not from q, which is whatever the client sent (hop by hop: see upstream.wireQuery).
	// Its context only gives the flight its deadline.
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	r.flight(ctx, nil, s, k.query(), k, flightKey{cacheKey: k}, "", false)
	cancel()
}

// FlightGrace is how long a caller whose deadline passed waits for the flight it started, which
// ends at that same deadline: long enough for the flight to return the attempt's error (the
// reason, for the caller), short enough not to matter to a client that is already late.
const FlightGrace = 100 * time.Millisecond

// MinAttempt is the least time left for which an attempt is started: less than a round trip on
// a warm loopback connection can only time out, and a timeout says nothing about the upstream.
const MinAttempt = 20 * time.Millisecond

func (r *Resolver) finish(fk flightKey, f *flight) {
	r.flightMu.Lock()
	delete(r.flights, fk)
	r.flightMu.Unlock()
	close(f.done)
}

func deadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

func timeoutErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	return ErrTimeout
}

type flightKey struct {
	cacheKey
	via string
}

type flight struct {
	done     chan struct{}
	cancel   context.CancelFunc // ends the query (Close)
	deadline time.Time
	entry    *entry
	info     Info
	err      error
}

// query asks the upstreams in strategy order until one answers, and caches the answer.
func (r *Resolver) query(ctx context.Context, s *upstreamSet, q *dns.Msg, k cacheKey, via string) (*entry, Info, error) {
	var buf [4]*member
	cands := r.candidates(s, via, buf[:0])
	if len(cands) == 0 {
		return nil, Info{}, r.allDown(s)
	}
	var fallback *entry // a SERVFAIL or REFUSED reply, returned if nobody does better
	var fallbackInfo Info
	var malformed error // an answer that does not parse, returned if nobody does better
	var errs attemptErrors
	for i, m := range cands {
		if time.Until(deadline(ctx)) < MinAttempt {
			// No attempt without time left (after a SERVFAIL, say): it could only time out.
			break
		}
		actx, cancel := attemptContext(ctx, len(cands)-i)
		start := time.Now()
		reply, err := m.u.Exchange(actx, q)
		rtt := time.Since(start)
		cancel()
		if err != nil {
			if ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled) {
				return nil, Info{}, ctx.Err()
			}
			if errors.Is(err, upstream.ErrMalformed) {
				// Name-scoped: a zone's bad record, relayed. It counts against m only if m
				// also garbles a name it answered before (check).
				r.check(s, m, q.Question[0].Name, "sent an answer that does not parse")
				if malformed == nil {
					malformed = badAnswer{err}
				}
				continue
			}
			r.attemptFailed(s, m, err)
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		info := Info{Upstream: m.u.Name(), RTT: rtt}
		e := &entry{key: k, msg: reply, upstream: m.u.Name(), stored: time.Now()}
		if reply.Rcode == dns.RcodeServerFailure || reply.Rcode == dns.RcodeRefused {
			switch {
			case reply.Rcode == dns.RcodeServerFailure && !hasEDE(reply):
				r.check(s, m, q.Question[0].Name, "answered SERVFAIL")
			case ownFailure(reply):
				r.failed(s, m, fmt.Errorf("upstream %s answered %s", m.u.Name(), dns.RcodeToString[reply.Rcode]))
			default:
				m.succeeded()
			}
			if fallback == nil {
				fallback, fallbackInfo = e, info
			}
			continue
		}
		m.succeeded()
		if reply.Rcode == dns.RcodeSuccess || reply.Rcode == dns.RcodeNameError {
			m.lastOK.Store(reply)
		}
		if ttl := cacheTTL(reply); ttl > 0 && via == "" {
			e.expires = e.stored.Add(ttl)
			r.cache.put(e)
		}
		return e, info, nil
	}
	if malformed != nil {
		return nil, Info{}, malformed
	}
	if fallback != nil {
		return fallback, fallbackInfo, nil
	}
	if ctx.Err() != nil || len(errs) == 0 {
		if len(errs) == 0 {
			return nil, Info{}, ErrTimeout
		}
		return nil, Info{}, fmt.Errorf("%w (%w)", ErrTimeout, errs)
	}
	return nil, Info{}, fmt.Errorf("%w: %w", ErrNoUpstream, errs)
}

// attemptErrors are the failures of a lookup's attempts, one per upstream tried, in order. They
// stay reachable with errors.Is and errors.As (a caller can still find the *upstream.TLSError).
type attemptErrors []error

func (e attemptErrors) Error() string {
	parts := make([]string, len(e))
	for i, err := range e {
		parts[i] = err.Error()
	}
	return strings.Join(parts, "; ")
}

func (e attemptErrors) Unwrap() []error { return e }

// attemptContext gives one attempt its share of what is left (the attempt budget): all of it for
// the last candidate, half of it while others remain, so that a stalled upstream leaves time for
// the next.
func attemptContext(ctx context.Context, remaining int) (context.Context, context.CancelFunc) {
	if remaining <= 1 {
		return ctx, func() {} // the whole of ctx: no child context needed
	}
	left := time.Until(deadline(ctx))
	return context.WithTimeout(ctx, left/2)
}

// candidates lists the upstreams to try, in order: the named one alone, else the healthy ones
// ordered by the strategy. It appends to out (the caller's, on its stack when few).
func (r *Resolver) candidates(s *upstreamSet, via string, out []*member) []*member {
	if via != "" {
		return append(out, s.byName[via])
	}
	for _, m := range s.members {
		if m.healthy() {
			out = append(out, m)
		}
	}
	switch s.strategy {
	case RoundRobin:
		if n := len(out); n > 1 {
			i := int(r.rr.Add(1)-1) % n
			out = append(out[i:], out[:i]...)
		}
	case Fastest:
		sortBySRTT(out)
	}
	return out
}

func (r *Resolver) allDown(s *upstreamSet) error {
	if len(s.members) == 0 {
		return fmt.Errorf("%w: no upstream is configured", ErrNoUpstream)
	}
	var parts []string
	for _, m := range s.members {
		parts = append(parts, m.u.Name()+" is down ("+m.h.lastError()+")")
	}
	return fmt.Errorf("%w: %s", ErrNoUpstream, strings.Join(parts, "; "))
}

// attemptFailed holds an attempt's error against m when the failure model says it counts (see the
// package doc), each event once. A dial or handshake that failed, a connection that stalled or
// that the server closed before answering anything are connection faults, which the upstream
// counts (upstream.Upstream.Faults): of the lookups that waited on that connection only the first
// to look counts it. A timeout alone is no fault (the caller's deadline, or one slow name) unless
// the connection faulted meanwhile.
func (r *Resolver) attemptFailed(s *upstreamSet, m *member, err error) {
	if errors.Is(err, upstream.ErrClosed) || errors.Is(err, upstream.ErrBadQuery) {
		return // a reload closed the upstream; a query no server could be sent
	}
	if m.newFaults() {
		r.failed(s, m, err)
	}
}

// hasEDE reports whether m carries an Extended DNS Error.
func hasEDE(m *dns.Msg) bool {
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if _, ok := o.(*dns.EDNS0_EDE); ok {
				return true
			}
		}
	}
	return false
}

// ownFailure reports whether a SERVFAIL or REFUSED is the upstream's own failure, which counts
// against its health: any REFUSED (it will not serve us), and a SERVFAIL unless an extended DNS
// error (RFC 8914) puts the fault elsewhere: a DNSSEC failure of the zone (codes 1-12) or its
// authorities unreachable (22, No Reachable Authority; 23, Network Error). Another upstream would
// answer such a name no better.
func ownFailure(m *dns.Msg) bool {
	if m.Rcode == dns.RcodeRefused {
		return true
	}
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_EDE); ok {
				switch c := e.InfoCode; {
				case c >= 1 && c <= 12, c == dns.ExtendedErrorCodeNoReachableAuthority, c == dns.ExtendedErrorCodeNetworkError:
					return false
				}
			}
		}
	}
	return true
}

// age lowers every TTL by the time an answer spent in the cache.
// staleTTL gives every record of a stale answer StaleTTL (RFC 8767 §4).
func staleTTL(m *dns.Msg) {
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			if h := rr.Header(); h.Rrtype != dns.TypeOPT {
				h.Ttl = StaleTTL
			}
		}
	}
}

func age(m *dns.Msg, d time.Duration) {
	secs := uint32(d / time.Second)
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			h := rr.Header()
			if h.Rrtype == dns.TypeOPT {
				continue
			}
			if h.Ttl > secs {
				h.Ttl -= secs
			} else {
				h.Ttl = 0
			}
		}
	}
}
