package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Defaults for the zero values of Options.
const (
	DefaultPort        = 853
	DefaultIdleTimeout = 20 * time.Second
	DefaultMaxConns    = 1
	DefaultMaxInFlight = 128
	DefaultDialTimeout = 5 * time.Second
)

// maxAttempts bounds how often one query is sent after its connection closed under it without
// answering anything else; maxDoneRetries bounds the resends after connections that did answer
// others first (errConnDone): with a server that answers one query per connection, the queries
// pipelined behind the first each need one more connection.
const (
	maxAttempts    = 3
	maxDoneRetries = 64
)

// ErrClosed is returned by Exchange after Close.
var ErrClosed = errors.New("upstream closed")

// ErrConnClosed is returned when the server closed every connection a query was sent on.
var ErrConnClosed = errors.New("the server closed the connection before answering")

// ErrMalformed is wrapped by the error of a reply that does not parse (*MalformedError).
var ErrMalformed = errors.New("the answer does not parse")

// MalformedError is a reply, matched to its query by ID and question, that miekg/dns cannot
// unpack. It is most often one record a zone published and the recursive server relayed as it
// came (an HTTPS record whose SvcParamKeys are out of order): the name's problem, not the
// server's, so it is an error of the lookup and never, by itself, of the upstream.
type MalformedError struct {
	_ [0]func() // never compared: the binary then carries no equality function for it
	// Relay is the reply with each record that does not unpack kept as opaque data (RFC 3597),
	// when its header, question and record framing are sound and no such record is of a type
	// whose data may hold compressed names: what a forwarder can pass on as it came. Nil
	// otherwise. It is shared: copy it before changing it.
	Relay *dns.Msg
	Err   error // miekg/dns's reason

	upstream, name string
}

func (e *MalformedError) Error() string {
	if e.Relay != nil {
		return fmt.Sprintf("the answer for %s from upstream %s does not parse (a record its zone publishes is malformed): %v", e.name, e.upstream, e.Err)
	}
	return fmt.Sprintf("the answer for %s from upstream %s does not parse: %v", e.name, e.upstream, e.Err)
}

func (e *MalformedError) Unwrap() []error { return []error{ErrMalformed, e.Err} }

// Options configure one DoT server. Zero values mean the documented defaults.
type Options struct {
	Name    string // shown in errors and status; default "address:port"
	Address string // IP address literal; no bootstrap lookups
	Port    int    // default 853 (RFC 7858 §3.1)
	// TLSName is the authentication domain name checked against the certificate and sent as SNI.
	// It may be empty only when Pins is not.
	TLSName string
	// Pins are SHA-256 digests of DER SubjectPublicKeyInfo (RFC 7858 §4.2). With a TLSName, a key
	// of the verified chain must match one; without, the server's own key must.
	Pins    [][32]byte
	RootCAs *x509.CertPool // nil: the system roots
	CAFile  string         // the file RootCAs was read from, named in errors

	IdleTimeout time.Duration // an unused connection closes after this; default 20 s
	MaxConns    int           // connections to this server; default 1 (RFC 7766 §6.2.2)
	MaxInFlight int           // queries in flight per connection; default 128
	DialTimeout time.Duration // TCP connect and TLS handshake; default 5 s

	// ClockUnsynced, when set and true for the current time (earlier than this build), makes the
	// chain be checked at the later of the build time (version.Built) and its certificates'
	// NotBefore instead: one whose only fault is "not valid yet" passes, one that expired before
	// the build does not. A router without a real-time clock boots in the past, and NTP may
	// need DNS to correct it. OnClockTolerance is told each time a chain not valid at the
	// clock's time passed so.
	ClockUnsynced    func(now time.Time) bool
	OnClockTolerance func(upstream string, now, checkedAt time.Time)

	Now         func() time.Time                                                  // default time.Now
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error) // default net.Dialer
	Logger      *slog.Logger                                                      // default: discard
}

// Stats are an upstream's counters.
type Stats struct {
	Queries     uint64        // Exchange calls
	Errors      uint64        // Exchange calls that returned an error
	Retries     uint64        // queries sent again after their connection closed
	Stalls      uint64        // connections closed as stalled (StallInterval)
	DialFails   uint64        // connections that could not be made: TCP, TLS, or the dial timeout
	Dropped     uint64        // connections the server closed, with queries owed, before answering any
	Unmatched   uint64        // replies dropped because no query matched their ID and question
	ConnsOpened uint64        // TLS connections established
	Resumed     uint64        // of which resumed a TLS session
	OpenConns   int           // connections open now
	InFlight    int           // queries in flight now
	SRTT        time.Duration // smoothed round-trip time of answered queries; 0 before the first
}

type counters struct {
	// Never compared: the field keeps the compiler from generating an equality function for
	// the struct (half a kilobyte of armv7 code).
	_ [0]func()

	queries, errors, retries, unmatched, opened, resumed, stalls, dialFails, dropped atomic.Uint64
}

// Upstream is one DNS-over-TLS server with a small pool of pipelined connections. It is safe for
// concurrent use; Exchange does not modify the message it is given.
type Upstream struct {
	opts   Options
	addr   string
	pins   [][32]byte
	tlsCfg *tls.Config
	// tlsCfgNoALPN is tlsCfg without the ALPN token, for servers that refuse it (noALPN).
	tlsCfgNoALPN *tls.Config
	noALPN       atomic.Bool
	log          *slog.Logger
	stats        counters

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	dials  sync.WaitGroup

	waiters atomic.Int32 // callers waiting for a slot; changed() wakes them

	// bufs are the buffers replies are read into (*[pooledBuf]byte), back once a reply is unpacked: a
	// reply is read, unpacked (miekg/dns copies what it keeps) and dropped, one after another.
	bufs sync.Pool

	mu      sync.Mutex
	conns   []*conn
	dialing *dialing
	notify  chan struct{}
	closed  bool
	srtt    time.Duration
}

type dialing struct {
	ctx    context.Context // bounds the dial: DialTimeout, Close, Reset
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// errDialAbandoned ends a dial that Reset gave up on; whoever waited for it dials again.
var errDialAbandoned = errors.New("connecting was abandoned by a reset")

// New checks opts and returns an Upstream. It does not connect: the first Exchange does.
func New(opts Options) (*Upstream, error) {
	ip, err := netip.ParseAddr(opts.Address)
	if err != nil {
		return nil, fmt.Errorf("upstream address %q is not an IP address", opts.Address)
	}
	if opts.Port == 0 {
		opts.Port = DefaultPort
	}
	if opts.Port < 1 || opts.Port > 65535 || opts.Port == 53 {
		return nil, fmt.Errorf("upstream port %d is not a DoT port (1-65535, not 53)", opts.Port)
	}
	if opts.TLSName == "" && len(opts.Pins) == 0 {
		return nil, errors.New("an upstream needs a TLS name, SPKI pins, or both (strict profile)")
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DialContext == nil {
		d := &net.Dialer{KeepAlive: 30 * time.Second}
		opts.DialContext = d.DialContext
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	addr := net.JoinHostPort(ip.String(), strconv.Itoa(opts.Port))
	if opts.Name == "" {
		opts.Name = addr
	}
	u := &Upstream{
		opts:   opts,
		addr:   addr,
		pins:   opts.Pins,
		log:    opts.Logger,
		notify: make(chan struct{}),
	}
	u.tlsCfg = u.tlsConfig()
	u.tlsCfgNoALPN = u.tlsCfg.Clone()
	u.tlsCfgNoALPN.NextProtos = nil
	u.ctx, u.cancel = context.WithCancel(context.Background())
	return u, nil
}

// Name is the upstream's name.
func (u *Upstream) Name() string { return u.opts.Name }

// Addr is "address:port".
func (u *Upstream) Addr() string { return u.addr }

// Options returns the options the upstream was made with, defaults filled in.
func (u *Upstream) Options() Options { return u.opts }

func (u *Upstream) label() string {
	if u.opts.Name == u.addr {
		return u.addr
	}
	return u.opts.Name + " (" + u.addr + ")"
}

func (u *Upstream) now() time.Time { return u.opts.Now() }

// Exchange sends q and returns the reply, with q's ID. A connection that closes with the query
// in flight is not an error: the query is sent again on a fresh connection within ctx's deadline.
// Errors name the upstream; TLS failures are *TLSError, never retried in clear text.
func (u *Upstream) Exchange(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
	u.stats.queries.Add(1)
	m, err := u.exchange(ctx, q)
	if err != nil {
		u.stats.errors.Add(1)
	}
	return m, err
}

func (u *Upstream) exchange(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
	frame, err := wireFrame(q)
	if err != nil {
		return nil, err
	}
	question := frame[2+12 : 2+QuestionEnd(frame[2:])]
	began := time.Now()
	for attempt, done := 1, 0; ; {
		c, err := u.acquire(ctx)
		if err != nil {
			return nil, err
		}
		start := time.Now()
		raw, err := c.roundTrip(ctx, frame, question)
		if err == nil {
			m, err := u.reply(c, q, raw, time.Since(start))
			u.putBuf(raw) // unpacked: the message and the error hold copies of what they need
			return m, err
		}
		if errors.Is(err, errConnLost) && ctx.Err() == nil {
			// The failed connection's writer may still be reading the frame: another attempt
			// sends a copy, with its own ID.
			frame = append([]byte(nil), frame...)
			switch {
			case (errors.Is(err, errConnDone) || errors.Is(err, errConnGone)) && done < maxDoneRetries:
				done++
				u.stats.retries.Add(1)
				continue
			case attempt < maxAttempts:
				attempt++
				u.stats.retries.Add(1)
				continue
			}
		}
		switch {
		case errors.Is(err, errConnLost):
			err = ErrConnClosed
		case err == ctx.Err():
			return nil, fmt.Errorf("upstream %s: no reply %s: %w", u.label(), within(ctx, began), err)
		}
		return nil, fmt.Errorf("upstream %s: %w", u.label(), err)
	}
}

func (u *Upstream) reply(c *conn, q *dns.Msg, raw []byte, rtt time.Duration) (*dns.Msg, error) {
	m := new(dns.Msg)
	var malformed *MalformedError
	if err := m.Unpack(raw); err != nil {
		malformed = &MalformedError{upstream: u.label(), name: q.Question[0].Name, Err: err}
		if m = salvage(raw); m == nil {
			return nil, malformed
		}
	}
	m.Id = q.Id
	if ka, ok := cleanReply(m); ok {
		c.setKeepalive(ka)
	}
	if malformed != nil {
		// The connection worked: its round trip is as good a measure as any other reply's.
		u.measure(rtt)
		malformed.Relay = m
		return nil, malformed
	}
	u.measure(rtt)
	return m, nil
}

// pooledBuf is the size of the buffers in Upstream.bufs: most replies fit (a padded one is a
// multiple of 468 octets, RFC 8467); a larger one is read into a buffer of its own.
const pooledBuf = 4096

// getBuf returns a buffer of n octets for a reply, from u.bufs when it fits.
func (u *Upstream) getBuf(n int) []byte {
	if p, ok := u.bufs.Get().(*[pooledBuf]byte); ok && n <= pooledBuf {
		return p[:n]
	}
	return make([]byte, n, max(n, pooledBuf))
}

// putBuf gives back a buffer from getBuf that nothing refers to any more.
func (u *Upstream) putBuf(b []byte) {
	if cap(b) == pooledBuf {
		u.bufs.Put((*[pooledBuf]byte)(b[:pooledBuf]))
	}
}

// measure folds one round trip into the smoothed RTT.
func (u *Upstream) measure(rtt time.Duration) {
	u.mu.Lock()
	if u.srtt == 0 {
		u.srtt = rtt
	} else {
		u.srtt += (rtt - u.srtt) / 8
	}
	u.mu.Unlock()
}

// acquire returns a connection with a slot reserved for one query: the least loaded open one,
// else a new one when fewer than MaxConns are open, else it waits for a slot.
func (u *Upstream) acquire(ctx context.Context) (*conn, error) {
	// Counted before looking at the connections, so that a slot released after the look always
	// finds this caller counted and wakes it.
	u.waiters.Add(1)
	defer u.waiters.Add(-1)
	began := time.Now()
	for {
		if err := ctx.Err(); err != nil {
			// No attempt without time left: a caller whose deadline has passed is not given a
			// connection (or a dial) to time out on.
			return nil, fmt.Errorf("upstream %s: no time left to send the query: %w", u.label(), err)
		}
		u.mu.Lock()
		if u.closed {
			u.mu.Unlock()
			return nil, ErrClosed
		}
		var best *conn
		bestLoad := u.opts.MaxInFlight
		for _, c := range u.conns {
			if n, ok := c.load(); ok && n < bestLoad {
				best, bestLoad = c, n
			}
		}
		if best != nil && best.tryReserve(u.opts.MaxInFlight) {
			u.mu.Unlock()
			return best, nil
		}
		if u.dialing == nil && len(u.conns) < u.opts.MaxConns {
			d := &dialing{done: make(chan struct{})}
			d.ctx, d.cancel = context.WithTimeout(u.ctx, u.opts.DialTimeout)
			u.dialing = d
			u.dials.Add(1)
			go u.dial(d)
		}
		d, wake := u.dialing, u.notify
		u.mu.Unlock()

		var dialDone chan struct{}
		if d != nil {
			dialDone = d.done
		}
		select {
		case <-dialDone:
			if d.err != nil && !errors.Is(d.err, errDialAbandoned) {
				return nil, d.err
			}
		case <-wake:
		case <-ctx.Done():
			if d != nil {
				// Say what was not done in time: a server that takes TCP and never answers the
				// ClientHello (plain DNS on the DoT port, a black hole) ends up here.
				return nil, fmt.Errorf("upstream %s: connecting did not finish %s (TCP and TLS handshake): %w", u.label(), within(ctx, began), ctx.Err())
			}
			return nil, fmt.Errorf("upstream %s: no free connection %s: %w", u.label(), within(ctx, began), ctx.Err())
		}
	}
}

// dial opens one connection. It runs on its own, not under any caller's context, so that one
// impatient caller does not abort a handshake the others are waiting for.
func (u *Upstream) dial(d *dialing) {
	defer u.dials.Done()
	defer d.cancel()
	tc, err := u.handshake(d.ctx)

	u.mu.Lock()
	abandoned := u.dialing != d // Reset gave up on it: it went out over a link that is gone
	if !abandoned {
		u.dialing = nil
	}
	switch {
	case err == nil && u.closed:
		_ = tc.Close()
		err = ErrClosed
	case err == nil && abandoned:
		_ = tc.Close()
		err = errDialAbandoned
	case err == nil:
		u.conns = append(u.conns, newConn(u, tc))
	case abandoned && !u.closed:
		err = errDialAbandoned
	case !u.closed:
		u.stats.dialFails.Add(1)
	}
	d.err = err
	close(d.done)
	u.broadcastLocked()
	u.mu.Unlock()
}

func (u *Upstream) handshake(ctx context.Context) (*tls.Conn, error) {
	cfg := u.tlsCfg
	if u.noALPN.Load() {
		cfg = u.tlsCfgNoALPN
	}
	tc, err := u.handshakeWith(ctx, cfg)
	if err != nil && cfg == u.tlsCfg && errors.Is(err, errRemoteAlert) && ctx.Err() == nil {
		// The server refused the handshake. It may refuse the "dot" ALPN token (alert 120,
		// no_application_protocol: RFC 7858 does not require servers to know it); crypto/tls
		// does not say which alert it was, so ask once more without ALPN, and keep that if it
		// works. Authentication is unchanged.
		tc2, err2 := u.handshakeWith(ctx, u.tlsCfgNoALPN)
		if err2 == nil {
			u.noALPN.Store(true)
			u.log.Info("upstream refused ALPN dot; connecting without ALPN", "upstream", u.label())
			return tc2, nil
		}
		// Without ALPN the handshake got as far as the certificate: that is the news.
		var te *TLSError
		if errors.As(err2, &te) && te.Kind != TLSHandshake {
			return nil, err2
		}
	}
	return tc, err
}

// errRemoteAlert marks a handshake the server refused with a TLS alert.
var errRemoteAlert = errors.New("the server refused the TLS handshake")

func (u *Upstream) handshakeWith(ctx context.Context, cfg *tls.Config) (*tls.Conn, error) {
	nc, err := u.opts.DialContext(ctx, "tcp", u.addr)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("upstream %s: connecting: TCP did not connect within the dial timeout (%v): %w", u.label(), u.opts.DialTimeout, err)
		}
		return nil, fmt.Errorf("upstream %s: connecting: %w", u.label(), err)
	}
	if tcp, ok := nc.(*net.TCPConn); ok {
		_ = tcp.SetNoDelay(true)
	}
	tc := tls.Client(quickAck(nc), cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = nc.Close()
		var te *TLSError
		var oe *net.OpError
		var ne net.Error
		switch {
		case errors.As(err, &te):
			return nil, te
		case errors.As(err, &oe) && oe.Op == "remote error":
			// crypto/tls reports the server's alert as a net.OpError "remote error": a refusal,
			// not a network failure.
			return nil, u.tlsErr(TLSHandshake, fmt.Errorf("%w: %w", errRemoteAlert, err))
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
			// The dial's own deadline, not the lookup's: say which, since the lookup may have had
			// far longer.
			return nil, fmt.Errorf("upstream %s: the TLS handshake did not finish within the dial timeout (%v) although TCP connected; check that port %d serves DNS over TLS and is not overloaded (%w)", u.label(), u.opts.DialTimeout, u.opts.Port, err)
		case errors.As(err, &ne), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
			return nil, fmt.Errorf("upstream %s: TLS handshake: %w", u.label(), err)
		default:
			return nil, u.tlsErr(TLSHandshake, err)
		}
	}
	u.stats.opened.Add(1)
	if tc.ConnectionState().DidResume {
		u.stats.resumed.Add(1)
	}
	return tc, nil
}

// within says how long a caller that gave up at its context's deadline had had, counted from
// began: "within 400ms". A caller cancelled instead is told so.
func within(ctx context.Context, began time.Time) string {
	if errors.Is(ctx.Err(), context.Canceled) {
		return "before the caller gave up"
	}
	if dl, ok := ctx.Deadline(); ok {
		return "within " + dl.Sub(began).Round(time.Millisecond).String()
	}
	return "in time"
}

// changed wakes callers waiting for a slot, if there are any.
func (u *Upstream) changed() {
	if u.waiters.Load() == 0 {
		return
	}
	u.mu.Lock()
	u.broadcastLocked()
	u.mu.Unlock()
}

func (u *Upstream) broadcastLocked() {
	close(u.notify)
	u.notify = make(chan struct{})
}

func (u *Upstream) removeConn(c *conn) {
	u.mu.Lock()
	for i, x := range u.conns {
		if x == c {
			u.conns = append(u.conns[:i], u.conns[i+1:]...)
			break
		}
	}
	u.broadcastLocked()
	u.mu.Unlock()
}

// Reset closes every connection, as after a WAN change. Queries in flight are sent again on a
// fresh connection. A connection being set up is abandoned too, since it may be going out over
// the link that is gone: whoever waits for it gets a fresh one instead of waiting out
// DialTimeout.
func (u *Upstream) Reset() {
	u.mu.Lock()
	conns := append([]*conn(nil), u.conns...)
	d := u.dialing
	u.dialing = nil
	if d != nil {
		u.broadcastLocked()
	}
	u.mu.Unlock()
	if d != nil {
		d.cancel()
	}
	for _, c := range conns {
		c.fail(errConnLost)
	}
}

// Close closes every connection and stops new exchanges; it returns when every goroutine the
// upstream started has ended.
func (u *Upstream) Close() error {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return nil
	}
	u.closed = true
	conns := append([]*conn(nil), u.conns...)
	u.mu.Unlock()
	u.cancel()
	for _, c := range conns {
		c.fail(ErrClosed)
	}
	for _, c := range conns {
		c.wait()
	}
	u.dials.Wait()
	return nil
}

// Stats returns the upstream's counters.
func (u *Upstream) Stats() Stats {
	s := Stats{
		Queries:     u.stats.queries.Load(),
		Errors:      u.stats.errors.Load(),
		Retries:     u.stats.retries.Load(),
		Unmatched:   u.stats.unmatched.Load(),
		Stalls:      u.stats.stalls.Load(),
		DialFails:   u.stats.dialFails.Load(),
		Dropped:     u.stats.dropped.Load(),
		ConnsOpened: u.stats.opened.Load(),
		Resumed:     u.stats.resumed.Load(),
	}
	u.mu.Lock()
	s.OpenConns = len(u.conns)
	s.SRTT = u.srtt
	conns := append([]*conn(nil), u.conns...)
	u.mu.Unlock()
	for _, c := range conns {
		n, _ := c.load()
		s.InFlight += n
	}
	return s
}

// Faults counts the connection faults: connections that could not be made (Stats.DialFails),
// closed as stalled (Stats.Stalls), or closed by the server before it answered anything
// (Stats.Dropped). Each is one event, however many queries waited on that connection, and is
// counted whether or not a caller was still waiting to see it: a caller that gave up sees only
// its own deadline, and of many callers that saw one failed dial only one should count it.
// Comparing Faults before and after tells whether a fault happened meanwhile.
func (u *Upstream) Faults() uint64 {
	return u.stats.stalls.Load() + u.stats.dialFails.Load() + u.stats.dropped.Load()
}

// SRTT is the smoothed round-trip time of answered queries, zero before the first.
func (u *Upstream) SRTT() time.Duration {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.srtt
}
