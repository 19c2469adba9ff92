// Package daemon is `delve serve`, the composition root: it loads the UCI configuration, builds
// the resolver, serves the JSON-RPC methods on the unix socket and the WebSocket, reloads on
// SIGHUP and the reload method, and shuts down cleanly on SIGTERM.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/dnsserver"
	"github.com/delvedns/delve/internal/engine"
	"github.com/delvedns/delve/internal/json"
	"github.com/delvedns/delve/internal/jsonrpc"
	"github.com/delvedns/delve/internal/jsonrpc/ws"
	"github.com/delvedns/delve/internal/resolver"
	"github.com/delvedns/delve/internal/upstream"
	"github.com/delvedns/delve/internal/version"
	"github.com/delvedns/delve/ubus"
	"github.com/delvedns/delve/uci"
)

// ShutdownGrace bounds how long lookups in flight may run on after SIGTERM, and how long a
// transport a reload retired may serve its last calls. At its end the calls still running are
// cancelled and get an error reply (within CancelGrace), and the daemon exits. It is well within
// the term_timeout delve.init gives procd (10 s; procd's own default is 5 s), after which procd
// sends SIGKILL and the socket file is left behind.
const ShutdownGrace = 3 * time.Second

// rebindGrace bounds how long the queries in flight on a DNS listener a reload replaces on the
// same addresses may take: the new one cannot bind until the old one has let go, and until then
// those addresses are not served.
const rebindGrace = 500 * time.Millisecond

// MaxAnswers caps the answers of one lookup reply, so that a reply stays far below ubus's 1 MiB
// message limit; the reply then says it was capped.
const MaxAnswers = 256

// Options are what `delve serve` is given besides the configuration file.
type Options struct {
	// Config is the UCI file; empty means uci.DefaultPath, or the built-in defaults when that
	// file does not exist.
	Config string
	// Stdout receives the log's debug and info lines, Stderr its warnings and errors (procd logs
	// the two as daemon.info and daemon.err); defaults os.Stdout and os.Stderr.
	Stdout, Stderr io.Writer
	// Signals, when set, replaces the process's own SIGHUP/SIGUSR1 handling (tests).
	Signals <-chan os.Signal
	// Tune adjusts every upstream's options (tests use short timeouts).
	Tune func(*upstream.Options)
	// TuneWS adjusts the WebSocket server's options (tests).
	TuneWS func(*ws.Options)
	// Threads applies main.threads to the process, at start and at every reload; delve serve
	// passes SetThreads. Nil leaves GOMAXPROCS alone: a test binary's daemons share its process,
	// whose other tests a changed GOMAXPROCS would slow or skew.
	Threads func(threads int)
}

// Daemon is a running `delve serve`.
type Daemon struct {
	opts    Options
	path    string // the configuration file; empty: built-in defaults. Set once by New.
	started time.Time
	level   slog.LevelVar
	log     *slog.Logger
	hub     jsonrpc.Hub
	eng     *engine.Engine

	lookups, failures atomic.Uint64

	sig         <-chan os.Signal
	stopSignals func()
	trimmedAt   uint64 // activity() at the last idle trim; only Run's goroutine uses it

	// reloadMu serialises reloads and the start of shutdown, and guards the transports: a reload
	// opens and closes them holding it, never holding mu, so lookups and status (which take mu
	// only for a moment) never wait for a transport to open or drain.
	reloadMu sync.Mutex
	stopping bool // shutdown has begun: a reload binds nothing
	rpc      *jsonrpc.Server
	sock     net.Listener
	sockPath string
	wsrv     *ws.Server
	wsl      net.Listener // wsrv's listener
	wsAddr   string
	wsToken  string
	dnsAddrs []string
	// native is the ubus object the daemon registers itself (option ubus 'native'), nil when
	// off; ubusSocket is the ubus_socket it was started with. Both change under reloadMu.
	native     atomic.Pointer[ubus.Native]
	ubusSocket string

	mu        sync.Mutex // guards what follows; held only to read or swap
	cfg       *uci.Config
	dns       *dnsserver.Server // nil when main.listen is empty
	dnsPast   dnsserver.Stats   // counters of listeners a reload replaced
	reloadErr string

	wg sync.WaitGroup // serving goroutines and retiring transports: Run waits for all
}

// ErrDisabled is returned by New when main.enabled is 0.
var ErrDisabled = errors.New("delve is disabled (delve.main.enabled is 0)")

// New loads the configuration and builds the engine; it does not serve yet.
func New(opts Options) (*Daemon, error) {
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	d := &Daemon{opts: opts, started: time.Now()}
	// Go's default for SIGHUP and SIGUSR1 is to exit, and procd may send a reload right after
	// the start: take them over before anything else.
	d.sig = opts.Signals
	if d.sig == nil {
		ch := make(chan os.Signal, 4)
		signal.Notify(ch, syscall.SIGHUP, syscall.SIGUSR1)
		d.sig = ch
		d.stopSignals = func() { signal.Stop(ch) }
	} else {
		d.stopSignals = func() {}
	}
	d.log = slog.New(newLogHandler(opts.Stdout, opts.Stderr, &d.level))
	d.path = opts.Config
	if d.path == "" {
		d.path = uci.DefaultPath
		if _, err := os.Stat(d.path); errors.Is(err, os.ErrNotExist) {
			d.log.Warn("no configuration file, using the built-in defaults", "file", d.path)
			d.path = ""
		}
	}
	cfg, err := d.load()
	if err == nil && !cfg.Enabled {
		err = ErrDisabled
	}
	if err == nil {
		d.level.Set(cfg.LogLevel)
		for _, w := range cfg.Warnings {
			d.log.Warn(w)
		}
		d.eng, err = engine.New(cfg, engine.Options{Logger: d.log, Tune: opts.Tune})
	}
	if err != nil {
		d.stopSignals()
		return nil, err
	}
	d.cfg = cfg
	return d, nil
}

// load reads the configuration file, or returns the defaults when there is none.
func (d *Daemon) load() (*uci.Config, error) {
	if d.path == "" {
		cfg := uci.Default()
		cfg.LoadedAt = time.Now()
		return cfg, nil
	}
	return uci.Load(d.path)
}

// Run serves until ctx ends (SIGTERM), then shuts down: it stops accepting, lets lookups in
// flight finish (at most ShutdownGrace), removes the socket and returns nil.
func (d *Daemon) Run(ctx context.Context) error {
	defer d.stopSignals()
	if os.Getenv("GOMEMLIMIT") == "" {
		// A soft ceiling for a router with 64 MB: it never binds at delve's usual 10-20 MiB, and
		// under a flood it makes the collector work harder before the kernel's OOM killer has to
		// act. The runtime caps the collector at half the CPU, so it cannot thrash the box.
		debug.SetMemoryLimit(MemoryLimit)
	}
	d.reloadMu.Lock()
	cfg := d.cfg
	d.setThreads(cfg.Threads, true) // before the listeners, which size their readers by it
	err := d.listen(cfg)
	if err == nil {
		d.setUbus(cfg)
	}
	d.reloadMu.Unlock()
	if err != nil {
		d.eng.Close()
		return err
	}
	d.log.Info("delve serving", "version", version.Version, "socket", cfg.Socket, "websocket", cfg.WebSocket,
		"listen", cfg.Listen, "upstreams", len(cfg.EnabledUpstreams()), "threads", runtime.GOMAXPROCS(0), "config", d.path)
	d.trim("start-up")
	idle := time.NewTicker(IdleTrim)
	defer idle.Stop()
	last := d.activity()

	sig := d.sig
	for {
		select {
		case <-idle.C:
			// A router's delve is idle most of the time: give back the code pages the last burst
			// mapped, once, when a whole period passed without a lookup.
			if a := d.activity(); a != last {
				last = a
			} else if a != d.trimmedAt {
				d.trim("idle")
				d.trimmedAt = a
			}
		case <-ctx.Done():
			return d.shutdown()
		case s := <-sig:
			switch s {
			case syscall.SIGHUP:
				_ = d.Reload() // a refusal is logged by Reload
			case syscall.SIGUSR1:
				d.redial("SIGUSR1")
			}
		}
	}
}

// setThreads applies main.threads through Options.Threads, unless GOMAXPROCS in the environment
// set the number: a developer's or a benchmark's override wins, and say tells whether to log so.
func (d *Daemon) setThreads(threads int, say bool) {
	if d.opts.Threads == nil {
		return
	}
	// The runtime takes the variable only as a positive number; otherwise it ignored it.
	if env, err := strconv.Atoi(os.Getenv("GOMAXPROCS")); err == nil && env > 0 {
		if say {
			d.log.Info("GOMAXPROCS in the environment wins over main.threads", "GOMAXPROCS", env, "threads", threads)
		}
		return
	}
	d.opts.Threads(threads)
}

// SetThreads is what delve serve gives Options.Threads: GOMAXPROCS is threads, or Go's own
// default for 0 (one per CPU, within a cgroup's CPU limit, kept up to date by the runtime).
func SetThreads(threads int) {
	if threads == 0 {
		runtime.SetDefaultGOMAXPROCS()
		return
	}
	runtime.GOMAXPROCS(threads)
}

// redial is SIGUSR1 and the redial method: every upstream connection is dropped and every
// failure forgotten, so the next lookup dials again over the link the router has now. It returns
// how many upstreams were reset.
func (d *Daemon) redial(by string) int {
	d.log.Info("reconnecting every upstream (" + by + ")")
	return d.eng.ResetConnections()
}

// MemoryLimit is the Go runtime's soft memory limit unless GOMEMLIMIT is set.
const MemoryLimit = 32 << 20

// IdleTrim is how long the daemon must go without a lookup before it unmaps its code pages again.
const IdleTrim = time.Minute

// activity counts the lookups of every transport, the DNS listener's included.
func (d *Daemon) activity() uint64 {
	n := d.lookups.Load()
	d.mu.Lock()
	if d.dns != nil {
		st := d.dns.Stats()
		n += st.UDPQueries + st.TCPQueries
	}
	d.mu.Unlock()
	return n
}

func (d *Daemon) trim(when string) {
	if n := trimText(); n > 0 {
		d.log.Debug("unmapped the binary's code pages", "when", when, "bytes", n)
	}
}

// listen opens the transports cfg asks for that are not open yet with the same settings, and
// retires those it no longer asks for. It runs under reloadMu, never under mu, and waits for no
// connection to drain: what it replaces is closed in the background (retire), letting its calls
// in flight finish, so that a reload that came in on a transport it replaces gets its reply
// before that transport goes. New transports are opened before old ones are closed, except
// where they need the same address; if one cannot be opened, nothing changes.
func (d *Daemon) listen(cfg *uci.Config) error {
	var sock net.Listener
	var rpc *jsonrpc.Server
	if cfg.Socket != d.sockPath {
		l, err := jsonrpc.ListenUnix(cfg.Socket)
		if err != nil {
			return err
		}
		sock = l
		rpc = jsonrpc.NewServer(jsonrpc.Options{Handler: d.handlerFor("socket"), Immediate: d.lookupNow, Logger: d.log})
	}
	closeNew := func() {
		if sock != nil {
			_ = sock.Close()
		}
	}

	var wsrv *ws.Server
	var wsl net.Listener
	wsChanged := cfg.WebSocket != d.wsAddr || cfg.WebSocketToken != d.wsToken
	// A new token on the same address: the old server's listener lets go of the address first
	// (its connections stay until retired). restoreWS puts the listener back if a later step
	// fails.
	oldWSL := d.wsl
	restoreWS := func() {
		if oldWSL == d.wsl {
			return
		}
		l, err := d.wsrv.Listen(d.wsAddr)
		if err != nil {
			d.log.Error("the WebSocket could not be restored", "websocket", d.wsAddr, "err", err)
			d.wsl = nil
			return
		}
		d.wsl = l
		srv := d.wsrv
		d.serve(func() { _ = srv.Serve(l) })
	}
	if wsChanged && cfg.WebSocket != "" {
		if cfg.WebSocket == d.wsAddr && d.wsl != nil {
			_ = d.wsl.Close()
			d.wsl = nil
		}
		var err error
		wsrv, wsl, err = d.newWS(cfg.WebSocket, cfg.WebSocketToken)
		if err != nil {
			closeNew()
			restoreWS()
			return fmt.Errorf("websocket %s: %w", cfg.WebSocket, err)
		}
	}
	if wsl != nil {
		prev := closeNew
		closeNew = func() { prev(); _ = wsl.Close() }
	}

	var oldDNS, newDNS *dnsserver.Server
	dnsChanged := !slices.Equal(cfg.Listen, d.dnsAddrs)
	if dnsChanged {
		var err error
		oldDNS, newDNS, err = d.listenDNS(cfg.Listen)
		if err != nil {
			closeNew()
			restoreWS()
			return err
		}
	}

	// Everything new is open: switch, then retire what was replaced.
	if sock != nil {
		oldRPC, oldSock, oldPath := d.rpc, d.sock, d.sockPath
		d.rpc, d.sock, d.sockPath = rpc, sock, cfg.Socket
		d.serve(func() { _ = rpc.Serve(sock) })
		if oldRPC != nil {
			d.retire(func(ctx context.Context) { _ = oldRPC.Shutdown(ctx); _ = oldSock.Close(); removeSocket(oldPath) })
		}
	}
	if wsChanged {
		old, oldL := d.wsrv, d.wsl
		d.wsrv, d.wsl, d.wsAddr, d.wsToken = wsrv, wsl, cfg.WebSocket, cfg.WebSocketToken
		if wsrv != nil {
			d.serve(func() { _ = wsrv.Serve(wsl) })
		}
		if old != nil {
			if oldL != nil {
				_ = oldL.Close()
			}
			// Its clients came in with the old token: they get the replies of their calls in
			// flight, this reload's included, and then a close (1001, going away).
			d.retire(func(ctx context.Context) { _ = old.Shutdown(ctx) })
		}
	}
	if dnsChanged {
		d.dnsAddrs = slices.Clone(cfg.Listen)
		d.mu.Lock()
		if cur := d.dns; cur != nil && cur != oldDNS {
			// listenDNS closed it already (same addresses): count what it served.
			d.dnsPast = d.dnsPast.Plus(cur.Stats())
		}
		d.dns = newDNS
		d.mu.Unlock()
		if oldDNS != nil {
			d.retire(func(ctx context.Context) {
				_ = oldDNS.Close(ctx)
				d.mu.Lock()
				d.dnsPast = d.dnsPast.Plus(oldDNS.Stats())
				d.mu.Unlock()
			})
		}
	}
	return nil
}

func (d *Daemon) newWS(addr, token string) (*ws.Server, net.Listener, error) {
	o := ws.Options{Handler: d.handlerFor("websocket"), Hub: &d.hub, Token: token, Logger: d.log}
	if d.opts.TuneWS != nil {
		d.opts.TuneWS(&o)
	}
	srv := ws.NewServer(o)
	l, err := srv.Listen(addr)
	if err != nil {
		return nil, nil, err
	}
	return srv, l, nil
}

// listenDNS opens a DNS listener on addrs (none: no listener). When addrs share no address with
// the running listener, the new one opens first and the old one is returned to be retired, still
// answering its queries in flight. When they share one, the old listener must let go of it
// first: it is closed here, its queries in flight given rebindGrace, and those addresses are
// unserved for that long; if the new one then cannot be opened, the old addresses are served
// again. The DNS listener's timeout is not an address: a change of it alone rebinds nothing.
func (d *Daemon) listenDNS(addrs []string) (old, srv *dnsserver.Server, err error) {
	d.mu.Lock()
	cur := d.dns
	d.mu.Unlock()
	shared := false
	for _, a := range addrs {
		shared = shared || slices.Contains(d.dnsAddrs, a)
	}
	if cur != nil && shared {
		ctx, cancel := context.WithTimeout(context.Background(), rebindGrace)
		_ = cur.Close(ctx)
		cancel()
	} else {
		old = cur
	}
	if len(addrs) > 0 {
		srv, err = d.openDNS(addrs)
	}
	if err != nil && cur != nil && old == nil {
		again, err2 := d.openDNS(d.dnsAddrs)
		if err2 != nil {
			d.log.Error("the DNS listener could not be restored", "listen", d.dnsAddrs, "err", err2)
			again = nil
		}
		d.mu.Lock()
		d.dnsPast = d.dnsPast.Plus(cur.Stats())
		d.dns = again
		d.mu.Unlock()
		if again == nil {
			d.dnsAddrs = nil
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("DNS listener: %w", err)
	}
	return old, srv, nil
}

func (d *Daemon) openDNS(addrs []string) (*dnsserver.Server, error) {
	return dnsserver.Listen(dnsserver.Options{
		Addrs: addrs, Resolver: &dnsResolver{d}, Timeout: -1, OnQuery: d.dnsEvent, Logger: d.log,
	})
}

// dnsResolver is the engine's resolver as the DNS listener sees it. The listener sets no deadline
// of its own (Timeout -1): the resolver gives each query it does not answer from the cache the
// lookup timeout configured at that moment, so that a reload changing the timeout does not have
// to replace the listener, and a query costs one context timer, not three.
type dnsResolver struct{ d *Daemon }

// Exchange gives the listener fresh answers with the cache's records (ExchangeShared): it
// changes only a reply's header and packs it once.
func (r *dnsResolver) Exchange(ctx context.Context, q *dns.Msg, via string) (*dns.Msg, resolver.Info, error) {
	return r.d.eng.Resolver().ExchangeShared(ctx, q, via)
}

func (r *dnsResolver) Go(f func()) bool { return r.d.eng.Resolver().Go(f) }

func (r *dnsResolver) Cached(q *dns.Msg) (*dns.Msg, resolver.Info, bool) {
	return r.d.eng.Resolver().Cached(q)
}

func (r *dnsResolver) AppendCached(dst []byte, q *dns.Msg) ([]byte, resolver.Info, bool) {
	return r.d.eng.Resolver().AppendCached(dst, q)
}

// dnsEvent publishes a listener query to the WebSocket subscribers.
func (d *Daemon) dnsEvent(e dnsserver.Event) {
	if d.hub.Subscribers() == 0 {
		return
	}
	d.hub.Publish(jsonrpc.Event{
		Name: e.Name, Types: []string{e.Type}, Rcode: e.Rcode, Upstream: e.Upstream,
		RTTms: float64(e.RTT.Microseconds()) / 1000, Cached: e.Cached, From: "dns", Time: time.Now(),
	})
}

func (d *Daemon) serve(f func()) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		f()
	}()
}

// retire shuts an old transport down in the background, letting its calls finish.
func (d *Daemon) retire(f func(ctx context.Context)) {
	d.serve(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
		defer cancel()
		f(ctx)
	})
}

func removeSocket(path string) {
	if path != "" {
		_ = os.Remove(path)
	}
}

// Reload re-reads the configuration file. A valid one replaces the running configuration: lookups
// in flight finish with the old upstreams, unchanged upstreams keep their connections, and the
// cache stays. An invalid one changes nothing and its error is returned. Once shutdown has begun,
// a reload is refused and opens nothing.
func (d *Daemon) Reload() error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	if d.stopping {
		return ErrStopping
	}
	err := d.reload()
	d.mu.Lock()
	if err != nil {
		d.reloadErr = err.Error()
	} else {
		d.reloadErr = ""
	}
	d.mu.Unlock()
	if err != nil {
		d.log.Error("reload refused, the running configuration stays", "err", err)
	}
	return err
}

// ErrStopping refuses a reload that comes after shutdown began.
var ErrStopping = errors.New("delve is shutting down")

func (d *Daemon) reload() error {
	cfg, err := d.load()
	if err != nil {
		return err
	}
	if !cfg.Enabled {
		return errors.New("delve.main.enabled is 0: stop the service to disable it (/etc/init.d/delve stop)")
	}
	d.mu.Lock()
	prev := d.cfg
	d.mu.Unlock()
	if err := d.eng.Apply(cfg); err != nil {
		return err
	}
	d.setThreads(cfg.Threads, cfg.Threads != prev.Threads)
	if err := d.listen(cfg); err != nil {
		// The transports did not move; put the engine and the threads back as they were.
		if err2 := d.eng.Apply(prev); err2 != nil {
			d.log.Error("restoring the previous upstreams", "err", err2)
		}
		d.setThreads(prev.Threads, false)
		return err
	}
	d.setUbus(cfg)
	for _, w := range cfg.Warnings {
		d.log.Warn(w)
	}
	d.level.Set(cfg.LogLevel)
	d.mu.Lock()
	d.cfg = cfg
	d.mu.Unlock()
	d.log.Info("configuration reloaded", "file", d.path, "upstreams", len(cfg.EnabledUpstreams()), "threads", runtime.GOMAXPROCS(0))
	return nil
}

// shutdown stops every transport at once and lets their calls and queries in flight finish,
// all within one ShutdownGrace; a reload still running is let finish first (it opens and closes,
// but waits for nothing to drain), and one arriving later is refused.
func (d *Daemon) shutdown() error {
	d.log.Info("shutting down")
	d.reloadMu.Lock()
	d.stopping = true
	rpc, sock, path, wsrv := d.rpc, d.sock, d.sockPath, d.wsrv
	d.stopUbus()
	d.reloadMu.Unlock()
	d.mu.Lock()
	dns := d.dns
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	var wg sync.WaitGroup
	if dns != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = dns.Close(ctx)
			d.mu.Lock()
			d.dnsPast, d.dns = d.dnsPast.Plus(dns.Stats()), nil
			d.mu.Unlock()
		}()
	}
	if rpc != nil {
		wg.Add(1)
		go func() { defer wg.Done(); _ = rpc.Shutdown(ctx); _ = sock.Close() }()
	}
	if wsrv != nil {
		wg.Add(1)
		go func() { defer wg.Done(); _ = wsrv.Shutdown(ctx) }()
	}
	wg.Wait()
	removeSocket(path)
	// Transports a reload retired drain within ShutdownGrace of their retirement, which came
	// before this.
	d.wg.Wait()
	d.eng.Close()
	return nil
}

// handlerFor returns the JSON-RPC handler of one transport.
func (d *Daemon) handlerFor(from string) jsonrpc.Handler {
	return func(ctx context.Context, method string, params json.RawMessage, _ string) (any, error) {
		switch method {
		case api.MethodLookup:
			return d.lookup(ctx, params, from)
		case api.MethodStatus:
			return d.status(), nil
		case api.MethodReload:
			if err := d.Reload(); err != nil {
				return nil, api.NewError(api.CodeConfig, "reload refused, the running configuration stays: "+err.Error())
			}
			return d.reloadResult(), nil
		case api.MethodFlush:
			return map[string]int{"flushed": d.eng.Resolver().Flush()}, nil
		case api.MethodRedial:
			return map[string]int{"redialed": d.redial(api.MethodRedial + " method")}, nil
		}
		return nil, api.NoSuchMethod(method)
	}
}

type lookupParams struct {
	Name     *string `json:"name"`
	Type     *string `json:"type"`
	Upstream *string `json:"upstream"`
}

// lookupArgs are the checked params of a lookup call.
type lookupArgs struct {
	name    string
	types   []uint16
	via     string
	timeout time.Duration
}

func (d *Daemon) lookupArgs(raw json.RawMessage, a *lookupArgs) error {
	var p lookupParams
	if err := jsonrpc.DecodeParams(raw, &p); err != nil {
		return err
	}
	if p.Name == nil {
		return api.NewError(api.CodeBadRequest, `the parameter "name" is required`)
	}
	name, reverse, err := api.ParseName(*p.Name)
	if err != nil {
		return api.NewError(api.CodeBadRequest, err.Error())
	}
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	a.name, a.timeout = name, cfg.Timeout
	switch {
	case p.Type != nil && *p.Type != "":
		t, err := api.ParseType(*p.Type)
		if err != nil {
			return api.NewError(api.CodeBadRequest, err.Error())
		}
		a.types = []uint16{t}
	case reverse:
		a.types = []uint16{dns.TypePTR}
	default:
		for _, s := range cfg.Types {
			t, _ := api.ParseType(s)
			a.types = append(a.types, t)
		}
	}
	if p.Upstream != nil {
		a.via = *p.Upstream
	}
	return nil
}

func (d *Daemon) lookup(ctx context.Context, raw json.RawMessage, from string) (*api.LookupResult, error) {
	var a lookupArgs
	if err := d.lookupArgs(raw, &a); err != nil {
		return nil, err
	}
	return d.resolve(ctx, &a, from, nil, time.Time{})
}

// resolve runs a lookup whose params are checked, counts it and publishes its event. cached, when
// not nil, is its answer from the cache, found at start.
func (d *Daemon) resolve(ctx context.Context, a *lookupArgs, from string, cached *resolver.Result, start time.Time) (*api.LookupResult, error) {
	res := cached
	if res == nil {
		ctx, cancel := context.WithTimeout(ctx, a.timeout)
		defer cancel()
		start = time.Now()
		var err error
		if res, err = d.eng.Resolver().Lookup(ctx, a.name, a.types, a.via); err != nil {
			d.lookups.Add(1)
			d.failures.Add(1)
			aerr := lookupError(a.name, a.timeout, err, errors.Is(ctx.Err(), context.DeadlineExceeded))
			d.lookupEvent(jsonrpc.Event{Name: a.name, Error: string(aerr.Code)}, a.types, from, start)
			return nil, aerr
		}
	}
	d.lookups.Add(1)
	d.lookupEvent(jsonrpc.Event{Name: a.name, Rcode: api.RcodeName(res.Rcode), Upstream: res.Upstream, RTTms: api.Millis(res.RTT), Cached: res.Cached}, a.types, from, start)
	return LookupResult(res), nil
}

// lookupNow answers the lookups whose answer is cached in the goroutine that read the call
// (jsonrpc.Options.Immediate): a cached answer then costs no hand-off between goroutines. Other
// calls wait for handlerFor's handler (jsonrpc.ErrWouldWait); lookups of several types or through
// a named upstream, and answers not cached, for the rest of the lookup with the params decoded
// here; bad params are answered at once.
func (d *Daemon) lookupNow(ctx context.Context, method string, raw json.RawMessage, from string) (any, error) {
	if method != api.MethodLookup {
		return nil, jsonrpc.ErrWouldWait
	}
	var a lookupArgs
	if err := d.lookupArgs(raw, &a); err != nil {
		return nil, err
	}
	start := time.Now()
	if a.via == "" {
		if res, ok := d.eng.Resolver().LookupCached(a.name, a.types); ok {
			return d.resolve(ctx, &a, from, res, start)
		}
	}
	later := a // only a call that waits has its params on the heap
	return jsonrpc.Handler(func(ctx context.Context, _ string, _ json.RawMessage, from string) (any, error) {
		return d.resolve(ctx, &later, from, nil, time.Time{})
	}), jsonrpc.ErrWouldWait
}

// LookupResult is the lookup method's result for a resolver result: the answers capped at
// MaxAnswers (capped, answers_total), a serve-stale answer marked. `delve --json` prints the
// same object.
func LookupResult(res *resolver.Result) *api.LookupResult {
	return &api.LookupResult{Name: res.Name, Types: res.Types, Rcode: res.Rcode, Answers: res.Answers,
		Upstream: res.Upstream, RTT: res.RTT, Cached: res.Cached, Secure: res.Secure, Stale: res.Stale, Max: MaxAnswers}
}

// lookupEvent completes ev and publishes it, when anyone subscribed.
func (d *Daemon) lookupEvent(ev jsonrpc.Event, types []uint16, from string, start time.Time) {
	if d.hub.Subscribers() == 0 {
		return
	}
	for _, t := range types {
		ev.Types = append(ev.Types, api.TypeName(t))
	}
	ev.From, ev.Time = from, start
	d.hub.Publish(ev)
}

// lookupError maps a resolver error to the error the transports report. expired tells whether
// the lookup's own deadline (timeout) passed: an upstream's shorter deadline (its dial timeout)
// that expired first is that upstream's failure, and its error names that deadline.
func lookupError(name string, timeout time.Duration, err error, expired bool) *api.Error {
	switch {
	case errors.Is(err, resolver.ErrUnknownUpstream):
		return api.NewError(api.CodeBadRequest, err.Error())
	case errors.Is(err, resolver.ErrTimeout), expired && errors.Is(err, context.DeadlineExceeded):
		msg := fmt.Sprintf("the lookup of %s timed out after %s", name, timeout)
		// The resolver's error says why, when it knows: "the lookup timed out (upstream x: ...)".
		if why := strings.TrimPrefix(err.Error(), resolver.ErrTimeout.Error()); why != err.Error() && why != "" {
			msg += why
		}
		return api.NewError(api.CodeTimeout, msg)
	case errors.Is(err, resolver.ErrNoUpstream):
		return api.NewError(api.CodeNoUpstream, err.Error())
	case errors.Is(err, resolver.ErrBadAnswer):
		return api.NewError(api.CodeBadAnswer, err.Error())
	case errors.Is(err, context.Canceled):
		return api.NewError(api.CodeTimeout, "the lookup of "+name+" was cancelled")
	}
	return api.NewError(api.CodeNoUpstream, err.Error())
}

// Status is the result of the status method.
type Status struct {
	Version   string                    `json:"version"`
	UptimeS   int64                     `json:"uptime_s"`
	Started   string                    `json:"started"`
	Config    ConfigSummary             `json:"config"`
	Upstreams []resolver.UpstreamStatus `json:"upstreams"`
	Cache     resolver.CacheStatus      `json:"cache"`
	Lookups   uint64                    `json:"lookups"`
	Failures  uint64                    `json:"lookup_failures"`
	// Subscribers counts WebSocket clients following lookups, and the native ubus object while
	// it has subscribers of its own.
	Subscribers int `json:"subscribers"`
	// DNS counts the plain DNS listener's queries (main.listen), across reloads.
	DNS *dnsserver.Stats `json:"dns,omitempty"`
	// Ubus is the native ubus object's state (option ubus 'native').
	Ubus    *ubus.NativeStatus `json:"ubus,omitempty"`
	Process Process            `json:"process"`
}

// ConfigSummary describes the running configuration.
type ConfigSummary struct {
	File       string   `json:"file"`
	LoadedAt   string   `json:"loaded_at"`
	Strategy   string   `json:"strategy"`
	Types      []string `json:"types"`
	TimeoutMS  int64    `json:"timeout_ms"`
	CacheSize  int      `json:"cache_size"`
	CacheKiB   int      `json:"cache_memory_kib"`
	Socket     string   `json:"socket"`
	WebSocket  string   `json:"websocket"`
	Listen     []string `json:"listen"`
	LastReload string   `json:"last_reload_error,omitempty"`
}

func (d *Daemon) status() *Status {
	d.mu.Lock()
	cfg, rerr := d.cfg, d.reloadErr
	var dns *dnsserver.Stats
	if d.dns != nil || d.dnsPast != (dnsserver.Stats{}) {
		st := d.dnsPast
		if d.dns != nil {
			st = st.Plus(d.dns.Stats())
		} else {
			st.TCPConns = 0
		}
		dns = &st
	}
	d.mu.Unlock()
	ups, cache := d.eng.Resolver().Status()
	return &Status{
		Version: version.Version,
		UptimeS: int64(time.Since(d.started) / time.Second),
		Started: d.started.UTC().Format(time.RFC3339),
		Config: ConfigSummary{
			File: d.path, LoadedAt: cfg.LoadedAt.UTC().Format(time.RFC3339), Strategy: cfg.Strategy,
			Types: slices.Clone(cfg.Types), TimeoutMS: cfg.Timeout.Milliseconds(), CacheSize: cfg.CacheSize, CacheKiB: cfg.CacheMemory >> 10,
			Socket: cfg.Socket, WebSocket: cfg.WebSocket, Listen: append([]string{}, cfg.Listen...), LastReload: rerr,
		},
		Upstreams:   ups,
		Cache:       cache,
		Lookups:     d.lookups.Load(),
		Failures:    d.failures.Load(),
		Subscribers: d.hub.Subscribers(),
		DNS:         dns,
		Ubus:        d.ubusStatus(),
		Process:     process(),
	}
}

func (d *Daemon) reloadResult() map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	return map[string]any{
		"reloaded":  true,
		"file":      d.path,
		"loaded_at": d.cfg.LoadedAt.UTC().Format(time.RFC3339),
		"upstreams": len(d.cfg.EnabledUpstreams()),
		"warnings":  append([]string{}, d.cfg.Warnings...),
	}
}
