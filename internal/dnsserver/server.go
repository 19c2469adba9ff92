package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/resolver"
)

// Defaults for the zero values of Options.
const (
	DefaultTimeout     = 3 * time.Second
	DefaultRateLimit   = 100 // queries per second per client address
	DefaultMaxTCPConns = 64
	// DefaultMaxTCPPerClient is a quarter of DefaultMaxTCPConns: one client cannot take every
	// slot (a query every few seconds per connection keeps them open), and dnsmasq, which opens
	// a connection per TCP query it forwards and closes it after the answer, has far more than
	// a household's TCP retries at once.
	DefaultMaxTCPPerClient = 16
	DefaultTCPIdle         = 10 * time.Second
	DefaultMaxInFlight     = 512
)

// Resolver answers one question. *resolver.Resolver is one. A Resolver that also has
// *resolver.Resolver's cache fast paths (Cached, AppendCached) gets cache hits answered on the
// reading goroutine, without a goroutine, a message copy or a pack per query. The listener
// changes a reply's header only, and replaces its sections rather than change them: a Resolver
// may give records it shares (as *resolver.Resolver's ExchangeShared does, the daemon's choice).
type Resolver interface {
	Exchange(ctx context.Context, q *dns.Msg, via string) (*dns.Msg, resolver.Info, error)
}

// Options configure a Server. Zero values mean the documented defaults.
type Options struct {
	// Addrs are "IP:port" literals ("127.0.0.1:5453", "[::1]:5453"); each is served over UDP and
	// TCP. Wildcard addresses (0.0.0.0, ::) are refused: bound on a router they would answer the
	// WAN side too, and UDP replies could leave from another address than the query came to.
	Addrs    []string
	Resolver Resolver
	// Timeout is each query's deadline; 0 means DefaultTimeout. A negative value sets none: the
	// Resolver applies its own (the daemon's resolver has the configured lookup timeout, which a
	// reload changes without a new listener), and a query costs no context timer of its own.
	Timeout time.Duration

	// RateLimit is the number of queries per second each client address may send, refilled
	// continuously, with Burst queries allowed at once. 0 means DefaultRateLimit (100/s), a
	// negative value turns the limit off. Burst 0 means twice the rate. Over UDP a query over
	// the limit is dropped (a spoofed-source flood gets nothing to reflect), over TCP (whose source
	// is verified) it is answered REFUSED.
	RateLimit float64
	Burst     int
	// LimitLoopback applies the rate limit to loopback clients too. By default they are exempt:
	// on a router the loopback client is dnsmasq, which speaks for the whole LAN, and loopback
	// sources cannot be spoofed from outside.
	LimitLoopback bool

	// ForwardECS sends the client's EDNS Client Subnet option upstream. Off by default: it tells
	// the upstream about the LAN. The cache keys answers by the forwarded subnet (cacheKey.subnet in
	// internal/resolver), so one subnet's answer is not given to another.
	ForwardECS bool

	MaxTCPConns int // concurrent TCP connections over all addresses; default 64
	// MaxTCPPerClient bounds the TCP connections of one client: one source address, or one /64
	// for IPv6 (a host picks its addresses within its /64 at will). Default 16. A connection
	// beyond either limit is closed as soon as it is accepted, and counted in TCPRefused.
	// Loopback clients are counted like any other: a local process must not take dnsmasq's slots.
	MaxTCPPerClient int
	TCPIdle         time.Duration // a TCP connection with nothing in flight closes after this; default 10 s
	// MaxInFlight bounds the UDP queries waiting for an upstream at once; one beyond it is
	// dropped (the client retries). Default 512. TCP queries are bounded by connection instead:
	// MaxTCPConns connections with at most 16 queries in flight each.
	MaxInFlight int

	// OnQuery is called after each reply is sent, on the goroutine that sent it: it must not
	// block (hand the event to a channel or a hub that drops when full).
	OnQuery func(Event)
	Logger  *slog.Logger // default: discard
}

// Event describes one answered query.
type Event struct {
	_         [0]func()     // never compared: no equality function in the binary
	Name      string        // the question name as the client sent it
	Type      string        // "A", "AAAA", ... (TYPEnnn for unknown types)
	Rcode     string        // "NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", ...
	Upstream  string        // the upstream that answered; empty when delve answered itself
	RTT       time.Duration // the upstream round trip; zero for cached or refused queries
	Cached    bool          // answered from the cache
	Truncated bool          // sent with TC set (UDP)
	Transport string        // "udp" or "tcp"
	Client    netip.Addr
}

// Stats are the server's counters since Listen.
type Stats struct {
	UDPQueries  uint64 `json:"udp_queries"`  // well-formed queries received over UDP
	TCPQueries  uint64 `json:"tcp_queries"`  // and over TCP
	Answered    uint64 `json:"answered"`     // replies sent, whatever their rcode
	Cached      uint64 `json:"cached"`       // replies from the cache
	Refused     uint64 `json:"refused"`      // REFUSED by delve (policy or rate limit), not by an upstream
	FormErr     uint64 `json:"formerr"`      // FORMERR, BADVERS and NOTIMP answers
	ServFail    uint64 `json:"servfail"`     // SERVFAIL because no upstream answered in time
	Truncated   uint64 `json:"truncated"`    // UDP replies sent with TC
	Malformed   uint64 `json:"malformed"`    // packets dropped as not parseable or not a query
	RateLimited uint64 `json:"rate_limited"` // queries over the per-client limit (dropped or refused)
	Overloaded  uint64 `json:"overloaded"`   // UDP queries dropped because MaxInFlight were waiting
	TCPRefused  uint64 `json:"tcp_refused"`  // TCP connections closed at accept: over MaxTCPConns or MaxTCPPerClient
	TCPConns    int    `json:"tcp_connections"`
}

// Plus returns the counters of s and later added together, as for a listener that replaced
// another; TCPConns, a gauge, is later's.
func (s Stats) Plus(later Stats) Stats {
	s.UDPQueries += later.UDPQueries
	s.TCPQueries += later.TCPQueries
	s.Answered += later.Answered
	s.Cached += later.Cached
	s.Refused += later.Refused
	s.FormErr += later.FormErr
	s.ServFail += later.ServFail
	s.Truncated += later.Truncated
	s.Malformed += later.Malformed
	s.RateLimited += later.RateLimited
	s.Overloaded += later.Overloaded
	s.TCPRefused += later.TCPRefused
	s.TCPConns = later.TCPConns
	return s
}

type counters struct {
	// Never compared: the field keeps the compiler from generating an equality function for
	// the struct (half a kilobyte of armv7 code).
	_ [0]func()

	udp, tcp, answered, cached, refused, formerr, servfail, truncated, malformed, limited, overloaded, tcpRefused atomic.Uint64
}

// Server is a running listener. Its methods are safe for concurrent use.
type Server struct {
	opts    Options
	log     *slog.Logger
	res     Resolver
	fast    fastResolver // res, when it can answer from its cache without waiting
	wire    wireResolver // res, when it can do so packed
	workers goResolver   // res, when it has goroutines of its own to run a query on
	limiter *limiter
	stats   counters

	udp []*net.UDPConn
	tcp []*net.TCPListener

	ctx    context.Context // cancelled when Close gives up waiting: ends exchanges in flight
	cancel context.CancelFunc

	inflight atomic.Int32 // queries waiting for the resolver
	handlers sync.WaitGroup
	loops    sync.WaitGroup // readers and accept loops

	mu       sync.Mutex
	closed   bool
	conns    map[*tcpConn]struct{}
	perTCP   map[netip.Addr]int // open TCP connections by client (tcpClient)
	stopping chan struct{}      // closed by Close
}

// Listen binds every address over UDP and TCP, or none: on an error it releases what it bound
// and returns an error naming the address ("listen 127.0.0.1:5453/udp: address already in use").
func Listen(o Options) (*Server, error) {
	if o.Resolver == nil {
		return nil, errors.New("dnsserver: no resolver")
	}
	if len(o.Addrs) == 0 {
		return nil, errors.New("dnsserver: no address to listen on")
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.RateLimit == 0 {
		o.RateLimit = DefaultRateLimit
	}
	if o.Burst <= 0 {
		o.Burst = max(1, int(2*o.RateLimit))
	}
	if o.MaxTCPConns <= 0 {
		o.MaxTCPConns = DefaultMaxTCPConns
	}
	if o.MaxTCPPerClient <= 0 {
		o.MaxTCPPerClient = DefaultMaxTCPPerClient
	}
	if o.TCPIdle <= 0 {
		o.TCPIdle = DefaultTCPIdle
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		opts:     o,
		log:      o.Logger,
		res:      o.Resolver,
		conns:    make(map[*tcpConn]struct{}),
		perTCP:   make(map[netip.Addr]int),
		stopping: make(chan struct{}),
	}
	s.fast, _ = o.Resolver.(fastResolver)
	s.wire, _ = o.Resolver.(wireResolver)
	s.workers, _ = o.Resolver.(goResolver)
	if o.RateLimit > 0 {
		s.limiter = newLimiter(o.RateLimit, float64(o.Burst), maxClients)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.bind(); err != nil {
		s.release()
		s.cancel()
		return nil, err
	}
	readers := min(max(runtime.GOMAXPROCS(0), 1), 4)
	for _, c := range s.udp {
		for range readers {
			s.loops.Add(1)
			go s.readUDP(c)
		}
	}
	for _, l := range s.tcp {
		s.loops.Add(1)
		go s.acceptTCP(l)
	}
	return s, nil
}

func (s *Server) bind() error {
	seen := map[netip.AddrPort]bool{}
	for _, a := range s.opts.Addrs {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			return fmt.Errorf("listen %s: not IP:port (such as 127.0.0.1:5453 or [::1]:5453)", a)
		}
		if ap.Addr().IsUnspecified() {
			return fmt.Errorf("listen %s: a wildcard address is not allowed; list each address to serve (such as the LAN address)", a)
		}
		if seen[ap] {
			return fmt.Errorf("listen %s: listed twice", a)
		}
		seen[ap] = true
		network := "4"
		if ap.Addr().Is6() && !ap.Addr().Is4In6() {
			network = "6"
		}
		uc, tl, err := bindPair(a, ap, network)
		if err != nil {
			return err
		}
		s.udp = append(s.udp, uc)
		s.tcp = append(s.tcp, tl)
	}
	return nil
}

// bindPair binds ap over UDP and TCP on the same port. For port 0 (tests) UDP picks the port
// and TCP takes the same, trying again when that one is taken for TCP.
func bindPair(a string, ap netip.AddrPort, network string) (*net.UDPConn, *net.TCPListener, error) {
	for attempt := 1; ; attempt++ {
		uc, err := net.ListenUDP("udp"+network, net.UDPAddrFromAddrPort(ap))
		if err != nil {
			return nil, nil, fmt.Errorf("listen %s/udp: %w", a, sysErr(err))
		}
		tap := netip.AddrPortFrom(ap.Addr(), uint16(uc.LocalAddr().(*net.UDPAddr).Port))
		tl, err := net.ListenTCP("tcp"+network, net.TCPAddrFromAddrPort(tap))
		if err == nil {
			return uc, tl, nil
		}
		_ = uc.Close()
		if ap.Port() != 0 || attempt == 10 {
			return nil, nil, fmt.Errorf("listen %s/tcp: %w", a, sysErr(err))
		}
	}
}

// sysErr strips "listen udp 127.0.0.1:5453: bind: " from an error, leaving the cause.
func sysErr(err error) error {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err
	}
	return err
}

func (s *Server) release() {
	for _, c := range s.udp {
		_ = c.Close()
	}
	for _, l := range s.tcp {
		_ = l.Close()
	}
}

// Addrs returns the bound addresses: for each listed address its UDP then its TCP socket.
func (s *Server) Addrs() []net.Addr {
	var out []net.Addr
	for i := range s.udp {
		out = append(out, s.udp[i].LocalAddr(), s.tcp[i].Addr())
	}
	return out
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n := len(s.conns)
	s.mu.Unlock()
	c := &s.stats
	return Stats{
		UDPQueries: c.udp.Load(), TCPQueries: c.tcp.Load(), Answered: c.answered.Load(),
		Cached: c.cached.Load(), Refused: c.refused.Load(), FormErr: c.formerr.Load(),
		ServFail: c.servfail.Load(), Truncated: c.truncated.Load(), Malformed: c.malformed.Load(),
		RateLimited: c.limited.Load(), Overloaded: c.overloaded.Load(), TCPRefused: c.tcpRefused.Load(), TCPConns: n,
	}
}

// Close stops reading, lets the queries in flight finish and be answered until ctx is done, then
// cancels the rest, and returns when every goroutine of the server has ended. It returns ctx's
// error when it had to cancel queries.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stopping)
	conns := make([]*tcpConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	// Wake the UDP readers without closing their sockets, so that queries in flight can still be
	// answered; stop accepting; make every TCP reader return (its replies in flight are still
	// written before the connection closes).
	now := time.Now()
	for _, c := range s.udp {
		_ = c.SetReadDeadline(now)
	}
	for _, l := range s.tcp {
		_ = l.Close()
	}
	for _, c := range conns {
		_ = c.nc.SetReadDeadline(now)
	}

	done := make(chan struct{})
	go func() {
		s.loops.Wait()
		s.handlers.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.cancel()
		for _, c := range conns {
			_ = c.nc.Close()
		}
		<-done
	}
	s.cancel()
	for _, c := range s.udp {
		_ = c.Close()
	}
	return err
}

func (s *Server) isClosed() bool {
	select {
	case <-s.stopping:
		return true
	default:
		return false
	}
}
