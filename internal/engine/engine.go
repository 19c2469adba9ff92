// Package engine builds the resolver and its upstreams from a UCI configuration, and on reload
// swaps in a new configuration while keeping the connections of upstreams that did not change.
package engine

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/delvedns/delve/internal/resolver"
	"github.com/delvedns/delve/internal/upstream"
	"github.com/delvedns/delve/internal/version"
	"github.com/delvedns/delve/uci"
)

// Options are what the configuration file does not say.
type Options struct {
	Logger *slog.Logger // default: discard
	// ClockUnsynced tells whether the system clock is known to be wrong; it is used only when the
	// configuration turns tolerate_unset_clock on. Default: version.ClockBeforeBuild.
	ClockUnsynced func(time.Time) bool
	// OnClockTolerance, when set, is told too each time tolerate_unset_clock let a certificate
	// that is not valid yet through (the log gets a warning either way; the command line, whose
	// log goes nowhere, prints one).
	// checkedAt is when the chain was checked instead of now: the later of the build time and the
	// chain's start of validity.
	OnClockTolerance func(upstream string, now, checkedAt time.Time)
	// Tune adjusts each upstream's options before it is made (tests use it for short timeouts).
	Tune func(*upstream.Options)
	// Grace is how long a removed upstream stays open for lookups still using it; default: the
	// lookup timeout of the configuration it served, the longest such a lookup can still run.
	Grace time.Duration
}

// Engine owns the upstreams and the resolver built from a configuration.
type Engine struct {
	opts Options
	log  *slog.Logger
	res  *resolver.Resolver

	mu      sync.Mutex
	ups     map[string]*upstream.Upstream // by key()
	timeout time.Duration                 // the lookup timeout of the running configuration
	closed  bool
	// retired are the upstreams reloads removed, each batch closed by its timer when its grace
	// runs out and then forgotten.
	retired map[*time.Timer][]*upstream.Upstream
}

// New builds the upstreams and resolver of cfg. Nothing connects until the first lookup.
func New(cfg *uci.Config, opts Options) (*Engine, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{opts: opts, log: opts.Logger, ups: map[string]*upstream.Upstream{}, retired: map[*time.Timer][]*upstream.Upstream{}}
	ups, ropts, err := e.build(cfg)
	if err != nil {
		return nil, err
	}
	e.res = resolver.New(ropts, ups)
	return e, nil
}

// Resolver is the engine's resolver.
func (e *Engine) Resolver() *resolver.Resolver { return e.res }

// Apply switches to cfg. Upstreams whose settings are unchanged keep their connections; removed
// ones are closed after a grace period so that lookups using them can finish. On error nothing
// changes.
func (e *Engine) Apply(cfg *uci.Config) error {
	old := e.snapshot()
	e.mu.Lock()
	prevTimeout := e.timeout
	e.mu.Unlock()
	ups, ropts, err := e.build(cfg)
	if err != nil {
		return err
	}
	e.res.Configure(ropts, ups)
	keep := map[*upstream.Upstream]bool{}
	for _, u := range ups {
		keep[u] = true
	}
	var gone []*upstream.Upstream
	for _, u := range old {
		if !keep[u] {
			gone = append(gone, u)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	grace := e.opts.Grace
	if grace <= 0 {
		grace = prevTimeout
	}
	if len(gone) > 0 && !e.closed {
		var t *time.Timer
		// The timer's func runs only after t is set: it takes e.mu, held until then.
		t = time.AfterFunc(grace, func() {
			e.mu.Lock()
			batch := e.retired[t]
			delete(e.retired, t)
			e.mu.Unlock()
			for _, u := range batch {
				_ = u.Close()
			}
		})
		e.retired[t] = gone
	}
	return nil
}

// Retired counts the upstreams reloads removed that are not closed yet.
func (e *Engine) Retired() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, b := range e.retired {
		n += len(b)
	}
	return n
}

func (e *Engine) snapshot() []*upstream.Upstream {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*upstream.Upstream, 0, len(e.ups))
	for _, u := range e.ups {
		out = append(out, u)
	}
	return out
}

// build makes (or reuses) the upstreams of cfg and the resolver options. e.ups becomes exactly
// the new set; upstreams that left it are not closed here.
func (e *Engine) build(cfg *uci.Config) ([]*upstream.Upstream, resolver.Options, error) {
	roots, err := LoadRoots(cfg.CAFile)
	if err != nil {
		return nil, resolver.Options{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, resolver.Options{}, upstream.ErrClosed
	}
	next := map[string]*upstream.Upstream{}
	var ups, made []*upstream.Upstream
	for _, uc := range cfg.EnabledUpstreams() {
		k := key(uc, cfg.CAFile, cfg.TolerateUnsetClock)
		if u, ok := e.ups[k]; ok {
			next[k] = u
			ups = append(ups, u)
			continue
		}
		o, err := Options2Upstream(uc, roots)
		if err != nil {
			for _, u := range made {
				_ = u.Close()
			}
			return nil, resolver.Options{}, err
		}
		o.Logger, o.CAFile = e.log, cfg.CAFile
		if cfg.TolerateUnsetClock {
			o.ClockUnsynced, o.OnClockTolerance = e.clockUnsynced, e.clockTolerated
		}
		if e.opts.Tune != nil {
			e.opts.Tune(&o)
		}
		u, err := upstream.New(o)
		if err != nil {
			for _, u := range made {
				_ = u.Close()
			}
			return nil, resolver.Options{}, fmt.Errorf("upstream %s: %w", uc.Name, err)
		}
		made = append(made, u)
		next[k] = u
		ups = append(ups, u)
	}
	if len(ups) == 0 {
		return nil, resolver.Options{}, errors.New("no upstream is enabled")
	}
	e.ups = next
	e.timeout = cfg.Timeout
	return ups, resolver.Options{
		Strategy:    cfg.Strategy,
		Timeout:     cfg.Timeout,
		CacheSize:   cfg.CacheSize,
		CacheMemory: cfg.CacheMemory,
		MaxStale:    maxStale(cfg.ServeStale),
		Prefetch:    cfg.Prefetch,
		Logger:      e.log,
	}, nil
}

// key identifies an upstream's settings: equal keys can share connections across a reload.
func key(u uci.Upstream, caFile string, clock bool) string {
	pins := slices.Clone(u.Pins)
	slices.Sort(pins)
	return strings.Join([]string{u.Name, u.Address, fmt.Sprint(u.Port), u.TLSName, strings.Join(pins, ","), caFile, fmt.Sprint(clock)}, "|")
}

func (e *Engine) clockUnsynced(now time.Time) bool {
	if e.opts.ClockUnsynced != nil {
		return e.opts.ClockUnsynced(now)
	}
	return version.ClockBeforeBuild(now)
}

// clockTolerated says, loudly, each time a certificate was accepted only because the clock is
// known to be wrong: the owner should know DNS ran without a full certificate check.
func (e *Engine) clockTolerated(upstream string, now, checkedAt time.Time) {
	e.log.Warn("accepted a certificate that is not valid yet, because the system clock is earlier than this build of delve (tolerate_unset_clock is on); set the clock with NTP",
		"upstream", upstream, "clock", now.UTC().Format(time.RFC3339), "checked_at", checkedAt.UTC().Format(time.RFC3339), "built", version.Built().UTC().Format(time.RFC3339))
	if e.opts.OnClockTolerance != nil {
		e.opts.OnClockTolerance(upstream, now, checkedAt)
	}
}

// Options2Upstream turns one configured upstream into upstream options.
func Options2Upstream(u uci.Upstream, roots *x509.CertPool) (upstream.Options, error) {
	o := upstream.Options{Name: u.Name, Address: u.Address, Port: u.Port, TLSName: u.TLSName, RootCAs: roots}
	for _, p := range u.Pins {
		pin, err := ParsePin(p)
		if err != nil {
			return o, fmt.Errorf("upstream %s: %w", u.Name, err)
		}
		o.Pins = append(o.Pins, pin)
	}
	return o, nil
}

// ParsePin decodes an SPKI pin: base64 of a SHA-256 digest, optionally written "sha256/<base64>"
// as stubby does.
func ParsePin(s string) ([32]byte, error) {
	var pin [32]byte
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "sha256/"))
	if err != nil || len(b) != sha256.Size {
		return pin, fmt.Errorf("pin %q is not a base64 SHA-256 digest (44 characters ending in =)", s)
	}
	copy(pin[:], b)
	return pin, nil
}

// LoadRoots reads a PEM bundle of trusted certificates; an empty path means the system roots
// (nil).
func LoadRoots(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("the CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// ResetConnections closes every upstream connection (after a WAN change) and forgets failures,
// so that the next lookup reconnects at once. It returns how many upstreams it reset.
func (e *Engine) ResetConnections() int {
	ups := e.snapshot()
	for _, u := range ups {
		u.Reset()
	}
	e.res.ResetHealth()
	return len(ups)
}

// Close stops the resolver and closes every upstream.
func (e *Engine) Close() {
	e.mu.Lock()
	e.closed = true
	var retired []*upstream.Upstream
	for t, b := range e.retired {
		t.Stop()
		retired = append(retired, b...)
	}
	clear(e.retired)
	e.mu.Unlock()
	e.res.Close()
	// Upstream.Close is idempotent: one whose timer is closing it right now is harmless.
	for _, u := range append(retired, e.snapshot()...) {
		_ = u.Close()
	}
}

// maxStale is the resolver's serve-stale window for UCI's serve_stale.
func maxStale(on bool) time.Duration {
	if on {
		return resolver.DefaultMaxStale
	}
	return 0
}
