package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// How a system is driven.
const (
	viaSocket  = "socket"  // delve's JSON-RPC socket, by this program's load generator
	viaUDP     = "udp"     // plain DNS over UDP, by this program's load generator
	viaDnsperf = "dnsperf" // plain DNS over UDP, by dnsperf
)

// settle is how long a fresh daemon idles after its first lookup before its idle RSS is read.
const settle = 500 * time.Millisecond

// target is a system and how it is driven.
type target struct {
	system string
	via    string
	start  func(context.Context, *env, string) (*system, error)
	// variant names a way of running the system other than its default, in its rows' labels:
	// "-allcpu" is delve with option threads '0', its Go code on every CPU at once.
	variant string
}

// name is the system and its variant: "delve", "delve-allcpu".
func (t target) name() string { return t.system + t.variant }

func (t target) label() string { return t.name() + "/" + t.via }

// allCPU is the variant of delve with option threads '0' in its UCI file: GOMAXPROCS one per
// CPU, as delve ran before main.threads. delve as it ships (threads unset, 1) runs GOMAXPROCS=1,
// a single-core router: the rows without a variant.
const allCPU = "-allcpu"

// startDelveAllCPU is startDelve with option threads '0'.
func startDelveAllCPU(ctx context.Context, e *env, tag string) (*system, error) {
	e1 := *e
	e1.threads = "0"
	return startDelve(ctx, &e1, tag)
}

// targets lists what is measured: every system through the same Go client over UDP (delve
// through its socket as well, and only through it while it has no DNS listener), delve with
// threads '0' the same way, and every system through dnsperf.
func (b *bench) targets() []target {
	ts := []target{{system: "delve", via: viaSocket, start: startDelve}}
	if b.hasListener {
		ts = append(ts, target{system: "delve", via: viaUDP, start: startDelve})
	}
	ts = append(ts, target{system: "delve", via: viaSocket, start: startDelveAllCPU, variant: allCPU})
	if b.hasListener {
		ts = append(ts, target{system: "delve", via: viaUDP, start: startDelveAllCPU, variant: allCPU})
	}
	ts = append(ts, target{system: "stubby", via: viaUDP, start: startStubby}, target{system: "unbound", via: viaUDP, start: startUnboundForwarder})
	if b.hasListener {
		ts = append(ts, target{system: "delve", via: viaDnsperf, start: startDelve})
	}
	ts = append(ts, target{system: "stubby", via: viaDnsperf, start: startStubby}, target{system: "unbound", via: viaDnsperf, start: startUnboundForwarder})
	var out []target
	for _, t := range ts {
		if slices.Contains(strings.Split(b.cfg.systems, ","), t.system) {
			out = append(out, t)
		}
	}
	return out
}

// drive runs w against s the way t says.
func (b *bench) drive(ctx context.Context, t target, s *system, w workload) (*result, error) {
	switch t.via {
	case viaSocket:
		return runSocket(ctx, s.sock, w)
	case viaUDP:
		return runUDP(ctx, s.dnsAddr, w)
	default:
		return runDnsperf(ctx, b.tools["dnsperf"], b.env.dir, s.dnsAddr, w)
	}
}

// row is one load run of one system.
type row struct {
	t       target
	mode    string
	clients int
	res     *result
	cpu     time.Duration // of the daemon during the run
	idle    usage         // after start and one lookup
	after   usage         // right after the run
	peak    int64         // VmHWM: peak RSS during the run (reset before it) or, if that failed, since start
	reset   bool          // whether peak covers the run only
	conns   uint64        // delve: TLS connections its upstream opened in its whole life
}

var runSeq int

// prefix returns a label prefix no earlier run used, so every cache-miss name is new everywhere.
func prefix() string {
	runSeq++
	return fmt.Sprintf("b%06x-%d", rand.Uint32()&0xffffff, runSeq)
}

// loadTable runs every system at every concurrency for both workloads, each run on a fresh
// daemon. The systems take turns within each (workload, clients) cell, in the opposite order on
// every other repetition, so that a noisy moment on the machine does not land on one system
// only; of a cell's repetitions the one with the most correct answers per second is kept (other
// work on the machine only ever slows a run down).
func (b *bench) loadTable(ctx context.Context) error {
	for _, mode := range []string{modeMiss, modeHot} {
		for _, n := range b.cfg.clients {
			var ts []target
			for _, t := range b.targets() {
				if t.via != viaDnsperf || slices.Contains(b.cfg.dnsperfClients, n) {
					ts = append(ts, t)
				}
			}
			best := make([]*row, len(ts))
			for rep := range b.cfg.repeat {
				for k := range ts {
					i := k
					if rep%2 == 1 {
						i = len(ts) - 1 - k
					}
					t := ts[i]
					r, err := b.loadRun(ctx, t, mode, n)
					if err != nil {
						return fmt.Errorf("%s, %s names, %d clients: %w", t.label(), mode, n, err)
					}
					b.logf("%-14s %-4s %3d clients: %8.0f lookups/s  p50 %6.3f ms  p99 %7.3f ms  bad %d  cpu %5.0f ms/10k  rss %4.1f→%4.1f MiB",
						t.label(), mode, n, r.res.qps(), ms(r.res.pct(50)), ms(r.res.pct(99)), r.res.bad, cpuPer10k(r), mib(r.idle.rss), mib(r.peak))
					if best[i] == nil || r.res.qps() > best[i].res.qps() {
						best[i] = r
					}
				}
			}
			b.rows = append(b.rows, best...)
		}
	}
	return nil
}

func (b *bench) workload(mode string, clients int) workload {
	w := workload{mode: mode, clients: clients, dur: b.cfg.dur, max: b.cfg.maxMiss, prefix: prefix()}
	if mode == modeHot {
		w.max = b.cfg.maxHot
	}
	return w
}

func (b *bench) loadRun(ctx context.Context, t target, mode string, clients int) (*row, error) {
	w := b.workload(mode, clients)
	s, err := t.start(ctx, b.env, w.prefix)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	if err := warm(ctx, s, t.via, w); err != nil {
		return nil, fmt.Errorf("first lookup: %w", err)
	}
	time.Sleep(settle)
	pid := s.p.pid()
	idle, err := readUsage(pid)
	if err != nil {
		return nil, err
	}
	r := &row{t: t, mode: mode, clients: clients, idle: idle}
	r.reset = resetPeak(pid) == nil
	before, _ := readUsage(pid)
	if r.res, err = b.drive(ctx, t, s, w); err != nil {
		return nil, err
	}
	after, err := readUsage(pid)
	if err != nil {
		return nil, fmt.Errorf("%s died during the run: %w; %s", s.name, err, s.p.output())
	}
	r.cpu, r.after, r.peak = after.cpu-before.cpu, after, after.hwm
	if t.system == "delve" {
		if r.conns, err = s.connsOpened(ctx); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// warm makes one lookup that the run will not make (the first miss name past the run's, or the
// hot name), so that the upstream connection is up and, for the hot workload, the cache filled.
func warm(ctx context.Context, s *system, via string, w workload) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	name, want := w.name(w.max)
	if via == viaSocket {
		c, err := dialSocket(ctx, s.sock)
		if err != nil {
			return err
		}
		defer c.Close()
		var res lookupResult
		if err := c.Call(ctx, "lookup", lookupParams{Name: name, Type: "A"}, &res); err != nil {
			return err
		}
		if len(res.Addresses) == 0 || res.Addresses[0] != want {
			return fmt.Errorf("%s: %s %v, want %s", name, res.Rcode, res.Addresses, want)
		}
		return nil
	}
	cl := &dns.Client{Net: "udp", Timeout: callTimeout}
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	r, _, err := cl.ExchangeContext(ctx, m, s.dnsAddr)
	if err != nil {
		return err
	}
	return checkA(r, want)
}

// connRow counts the TLS connections one system opened to the upstream for connLookups
// never-repeated names, at the counting proxy.
type connRow struct {
	t        target
	clients  int
	ok       int
	accepted int64  // connections the proxy accepted from this system (first lookup included)
	reported uint64 // delve's own connections_opened
}

// connLookups is how many lookups the connection count is taken over.
const connLookups = 10000

func (b *bench) connTable(ctx context.Context) error {
	proxy, err := newCountingProxy(b.up.Addr())
	if err != nil {
		return err
	}
	defer proxy.close()
	e := *b.env
	e.upPort = proxy.port()
	for _, n := range []int{1, 64} {
		for _, t := range b.targets() {
			// One row per system: through the Go client over UDP, or delve's socket while it has
			// no DNS listener.
			if t.via == viaDnsperf || (t.system == "delve" && b.hasListener && t.via == viaSocket) {
				continue
			}
			w := b.workload(modeMiss, n)
			w.max, w.dur = connLookups, 60*time.Second
			before := proxy.accepted.Load()
			s, err := t.start(ctx, &e, w.prefix)
			if err != nil {
				return err
			}
			cr, err := func() (*connRow, error) {
				defer s.stop()
				if err := warm(ctx, s, t.via, w); err != nil {
					return nil, err
				}
				res, err := b.drive(ctx, t, s, w)
				if err != nil {
					return nil, err
				}
				cr := &connRow{t: t, clients: n, ok: res.ok}
				if t.system == "delve" {
					if cr.reported, err = s.connsOpened(ctx); err != nil {
						return nil, err
					}
				}
				return cr, nil
			}()
			if err != nil {
				return fmt.Errorf("%s: %w", t.label(), err)
			}
			cr.accepted = proxy.accepted.Load() - before
			b.conns = append(b.conns, *cr)
			b.logf("%-14s %3d clients: %d TLS connections for %d lookups", t.label(), n, cr.accepted, cr.ok+1)
		}
	}
	return nil
}

// memRow is the daemon's memory around one long run (issue 3).
type memRow struct {
	env     string
	lookups int
	clients int
	res     *result
	idle    usage // after start, one lookup and a moment of idling
	after   usage // right after the lookups
	settled usage // two seconds later
	peak    int64 // VmHWM over the lookups (reset before them)
	reset   bool
	cpu     time.Duration
	status  *delveStatus // right after the lookups
}

func (b *bench) memTable(ctx context.Context) error {
	for _, envs := range b.cfg.memEnvs {
		const n = 64
		e := *b.env
		e.delveEnv = append(append([]string(nil), b.env.delveEnv...), splitEnv(envs)...)
		w := b.workload(modeMiss, n)
		w.max, w.dur = b.cfg.rssLook, 60*time.Second
		s, err := startDelve(ctx, &e, w.prefix)
		if err != nil {
			return err
		}
		m, err := func() (*memRow, error) {
			defer s.stop()
			if err := warm(ctx, s, viaSocket, w); err != nil {
				return nil, err
			}
			time.Sleep(settle)
			pid := s.p.pid()
			idle, err := readUsage(pid)
			if err != nil {
				return nil, err
			}
			m := &memRow{env: strings.Join(e.delveEnv, " "), lookups: w.max, clients: n, idle: idle}
			m.reset = resetPeak(pid) == nil
			if m.res, err = runSocket(ctx, s.sock, w); err != nil {
				return nil, err
			}
			after, err := readUsage(pid)
			if err != nil {
				return nil, err
			}
			m.after, m.peak, m.cpu = after, after.hwm, after.cpu-idle.cpu
			if m.status, err = s.status(ctx); err != nil {
				return nil, err
			}
			time.Sleep(2 * time.Second)
			if m.settled, err = readUsage(pid); err != nil {
				return nil, err
			}
			return m, nil
		}()
		if err != nil {
			return err
		}
		b.mem = append(b.mem, *m)
		b.logf("delve memory (%s): idle %.1f MiB, after %d lookups %.1f MiB (peak %.1f, 2 s later %.1f), %.0f lookups/s",
			m.env, mib(m.idle.rss), m.res.ok, mib(m.after.rss), mib(m.peak), mib(m.settled.rss), m.res.qps())
	}
	return nil
}

func (b *bench) engineRun(ctx context.Context) error {
	er, err := runEngine(ctx, b.env, connLookups, 64, 60*time.Second)
	if err != nil {
		return err
	}
	b.engine = er
	b.logf("engine: one at a time %.0f lookups/s, pipelined (64) %.0f lookups/s, %d TLS connections for %d lookups",
		er.seq.qps(), er.pipe.qps(), er.conns, er.seq.ok+er.pipe.ok+1)
	return nil
}

func (b *bench) oneShotRun(ctx context.Context) error {
	o, err := runOneShot(ctx, b.env, b.tools["kdig"], b.cfg.oneShots)
	if err != nil {
		return err
	}
	b.oneshot = o
	b.logf("one-shot: delve %.1f ms, kdig %.1f ms (medians of %d)", ms(median(o.delve)), ms(median(o.kdig)), o.runs)
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func mib(n int64) float64        { return float64(n) / (1 << 20) }

func cpuPer10k(r *row) float64 {
	if r.res.ok == 0 {
		return 0
	}
	return ms(r.cpu) * 10000 / float64(r.res.ok)
}
