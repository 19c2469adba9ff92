package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/api"
)

// The dead-name run (issue 12): deadLookups distinct names, every deadEvery-th of them under a
// label whose authorities are dead. A recursive resolver on the Internet answers such a name
// only after seconds (unbound: SERVFAIL once it gives up on the authorities) and keeps answering
// the others at once on the same connection; the in-process upstream here does the same, so the
// run shows whether the slow names cost delve TLS connections, mark its upstream down (they must
// not: see internal/resolver/doc.go, "The failure model") or make live names fail.
const (
	deadLookups = 1000
	deadEvery   = 10 // lookups i with i%deadEvery == deadEvery-1 are dead: 100 of 1000
	// deadClients socket clients share the lookups in order, so they all end up waiting on dead
	// names together: each such wave lasts delve's timeout (3 s), during which the connection
	// reads nothing but delve's stall probes' answers. deadLookups/deadEvery/deadClients waves
	// (5) keep the run near 15 s.
	deadClients = 20
	// deadDelay is when the upstream answers a dead name: well past delve's timeout (3 s), so
	// the answer is late for every caller, and within upstream.LateWindow (10 s), so delve still
	// owes the query and must read the late reply and drop it.
	deadDelay = 6 * time.Second
	// deadCap: no lookup starts later than this into the run (it takes ~15 s).
	deadCap  = 40 * time.Second
	deadCall = 10 * time.Second // one call's bound at the client: past delve's timeout
	// deadSample is how often delve's status is read during the run.
	deadSample = 250 * time.Millisecond
)

// deadName returns the i-th name of the run, whether it is dead, and for a live one the address
// the upstream answers. Dead names alternate between the two answers a recursive resolver gives
// for them: a SERVFAIL after seconds (d…, the first time it tries the dead authorities) and a
// bare SERVFAIL at once (s…, once its infrastructure cache knows they are dead: a LAN client's
// retries get this).
func deadName(i int) (name string, dead bool, want string) {
	if i%deadEvery == deadEvery-1 {
		if i/deadEvery%2 == 1 {
			return fmt.Sprintf("s%d.dead.delve.test.", i), true, ""
		}
		return fmt.Sprintf("d%d.dead.delve.test.", i), true, ""
	}
	return fmt.Sprintf("l%d.live.delve.test.", i), false, liveAddr(i)
}

func liveAddr(i int) string { return fmt.Sprintf("10.77.%d.%d", i/256%256, i%256) }

// deadRow is the result of the dead-name run.
type deadRow struct {
	sent                 int // lookups made (deadLookups unless deadCap cut the run short)
	live, liveOK         int
	liveFailed           map[string]int // by reason: api code, or "wrong answer"
	liveErr              string         // the first live failure
	dead, deadAnswered   int
	deadFailed           map[string]int // by api code
	deadAnsweredRcodes   map[string]int
	liveLat, deadLat     []time.Duration
	took                 time.Duration
	idle, after          usage
	before, status       *delveStatus // status before the lookups and right after them
	samples, downSamples int          // status readings during the run, and those with the upstream down
	maxOpen, maxInFlight int          // the largest open_connections and in_flight among them
	downLogs             int          // "upstream down" lines delve logged over its whole life
	srv                  deadCounts   // what the upstream saw, right after the lookups
}

// deadCounts is what the dead-name upstream counted.
type deadCounts struct {
	accepted   int64 // TLS connections accepted
	closedOwed int64 // connections the client closed while late replies were still owed on them
	probes     int64 // ". NS" questions: delve's stall probes
	lateSent   int64 // late SERVFAILs written
	lateLost   int64 // late SERVFAILs that could not be written (the connection was gone)
}

// deadServer is an in-process DoT server (miekg/dns, as largeServer) that answers names under
// dead.delve.test SERVFAIL, those beginning with "s" at once and the others only after deadDelay,
// every other question at once: A under
// live.delve.test with liveAddr, ". NS" (delve's stall probe) with a root NS record, and
// startDelve's readiness probe. Like unbound it has no limit on queries per connection.
type deadServer struct {
	srv      *dns.Server
	mu       sync.Mutex
	conns    map[string]*deadConn // by remote address
	timers   []*time.Timer
	closed   bool
	accepted atomic.Int64
	closedOw atomic.Int64
	probes   atomic.Int64
	lateSent atomic.Int64
	lateLost atomic.Int64
}

// deadConn is one TLS connection of the dead-name upstream.
type deadConn struct {
	net.Conn // *tls.Conn: its Write is safe for concurrent use, so late replies write to it directly
	s        *deadServer
	owed     atomic.Int64 // late replies not yet written
	gone     atomic.Bool
}

func (c *deadConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	var ne net.Error
	if err != nil && !(errors.As(err, &ne) && ne.Timeout()) && c.gone.CompareAndSwap(false, true) {
		if c.owed.Load() > 0 {
			c.s.closedOw.Add(1)
		}
	}
	return n, err
}

type deadListener struct {
	net.Listener
	s *deadServer
}

func (l deadListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.s.accepted.Add(1)
	dc := &deadConn{Conn: c, s: l.s}
	l.s.mu.Lock()
	l.s.conns[c.RemoteAddr().String()] = dc
	l.s.mu.Unlock()
	return dc, nil
}

func startDeadServer(dir string) (d *deadServer, port int, caFile string, err error) {
	d = &deadServer{conns: map[string]*deadConn{}}
	d.srv = &dns.Server{
		Handler:       dns.HandlerFunc(d.serveDNS),
		MaxTCPQueries: -1,
		IdleTimeout:   func() time.Duration { return 30 * time.Second },
	}
	port, caFile, err = startDoT(dir, "dead", d.srv, func(ln net.Listener) net.Listener { return deadListener{ln, d} })
	if err != nil {
		return nil, 0, "", err
	}
	return d, port, caFile, nil
}

func (d *deadServer) serveDNS(w dns.ResponseWriter, q *dns.Msg) {
	r := new(dns.Msg)
	r.SetReply(q)
	switch {
	case len(q.Question) != 1:
	case answerProbe(q, r):
	case q.Question[0].Name == "." && q.Question[0].Qtype == dns.TypeNS:
		d.probes.Add(1)
		rr, _ := dns.NewRR(". 86400 IN NS a.root-servers.net.")
		r.Answer = append(r.Answer, rr)
	case strings.HasSuffix(strings.ToLower(q.Question[0].Name), ".dead.delve.test."):
		r.Rcode = dns.RcodeServerFailure
		if !strings.HasPrefix(q.Question[0].Name, "s") {
			d.late(w, r)
			return
		}
	case q.Question[0].Qtype == dns.TypeA && strings.HasSuffix(strings.ToLower(q.Question[0].Name), ".live.delve.test."):
		var i int
		if _, err := fmt.Sscanf(q.Question[0].Name, "l%d.", &i); err == nil {
			rr, _ := dns.NewRR(q.Question[0].Name + " 300 IN A " + liveAddr(i))
			r.Answer = append(r.Answer, rr)
		}
	}
	_ = w.WriteMsg(r)
}

// late writes r on w's connection after deadDelay, as a recursive resolver's SERVFAIL for a
// name whose authorities do not answer: out of order, after the answers to later queries.
func (d *deadServer) late(w dns.ResponseWriter, r *dns.Msg) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.conns[w.RemoteAddr().String()]
	if c == nil || d.closed {
		return
	}
	c.owed.Add(1)
	d.timers = append(d.timers, time.AfterFunc(deadDelay, func() {
		defer c.owed.Add(-1)
		b, err := r.Pack()
		if err == nil {
			msg := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(b)), uint16(len(b)))
			_, err = c.Conn.Write(append(msg, b...))
		}
		if err != nil {
			d.lateLost.Add(1)
		} else {
			d.lateSent.Add(1)
		}
	}))
}

func (d *deadServer) counts() deadCounts {
	return deadCounts{accepted: d.accepted.Load(), closedOwed: d.closedOw.Load(), probes: d.probes.Load(),
		lateSent: d.lateSent.Load(), lateLost: d.lateLost.Load()}
}

// close stops the late replies still waiting and the server.
func (d *deadServer) close() {
	d.mu.Lock()
	d.closed = true
	for _, t := range d.timers {
		t.Stop()
	}
	d.mu.Unlock()
	_ = d.srv.Shutdown()
}

func (b *bench) deadRun(ctx context.Context) error {
	d, port, caFile, err := startDeadServer(b.env.dir)
	if err != nil {
		return err
	}
	defer d.close()
	e := *b.env
	e.upPort, e.caFile = port, caFile
	s, err := startDelve(ctx, &e, "dead")
	if err != nil {
		return err
	}
	defer s.stop()
	pid := s.p.pid()
	r := &deadRow{liveFailed: map[string]int{}, deadFailed: map[string]int{}, deadAnsweredRcodes: map[string]int{}}
	if r.idle, err = readUsage(pid); err != nil {
		return err
	}
	if r.before, err = s.status(ctx); err != nil {
		return err
	}

	// delve's status during the run, on a connection of its own.
	sc, err := dialSocket(ctx, s.sock)
	if err != nil {
		return err
	}
	defer sc.Close()
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(deadSample)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var st delveStatus
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := sc.Call(cctx, "status", nil, &st)
			cancel()
			if err != nil || len(st.Upstreams) != 1 {
				continue
			}
			u := st.Upstreams[0]
			r.samples++
			if !u.Healthy {
				r.downSamples++
			}
			r.maxOpen, r.maxInFlight = max(r.maxOpen, u.OpenConns), max(r.maxInFlight, u.InFlight)
		}
	}()

	var mu sync.Mutex
	var wg sync.WaitGroup
	var next atomic.Int64
	start := time.Now()
	for range deadClients {
		c, err := dialSocket(ctx, s.sock)
		if err != nil {
			close(done)
			return err
		}
		defer c.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && time.Since(start) < deadCap {
				i := int(next.Add(1) - 1)
				if i >= deadLookups {
					return
				}
				name, dead, want := deadName(i)
				var l api.Lookup
				cctx, cancel := context.WithTimeout(ctx, deadCall)
				t0 := time.Now()
				err := c.Call(cctx, "lookup", map[string]string{"name": name, "type": "A"}, &l)
				took := time.Since(t0)
				cancel()
				mu.Lock()
				r.sent++
				switch {
				case dead && err != nil:
					r.dead++
					r.deadFailed[string(api.CodeOf(err))]++
					r.deadLat = append(r.deadLat, took)
				case dead:
					r.dead++
					r.deadAnswered++
					r.deadAnsweredRcodes[l.Rcode]++
				case err != nil:
					r.live++
					r.liveFailed[string(api.CodeOf(err))]++
					if r.liveErr == "" {
						r.liveErr = fmt.Sprintf("%s: %v", name, err)
					}
				case !slices.Contains(l.Addresses, want):
					r.live++
					r.liveFailed["wrong answer"]++
					if r.liveErr == "" {
						r.liveErr = fmt.Sprintf("%s: %s %v, want %s", name, l.Rcode, l.Addresses, want)
					}
				default:
					r.live++
					r.liveOK++
					r.liveLat = append(r.liveLat, took)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	r.took = time.Since(start)
	close(done)
	<-sampled
	r.srv = d.counts()
	if r.after, err = readUsage(pid); err != nil {
		return err
	}
	if r.status, err = s.status(ctx); err != nil {
		return err
	}
	r.downLogs = strings.Count(s.p.out.String(), "upstream down")
	b.dead = r
	b.logf("dead names: %d lookups in %v; live %d ok, %d failed; dead %d failed, %d answered; %d TLS connection(s) opened during the run, %d closed stalled, %s; peak RSS %.1f MiB",
		r.sent, r.took.Round(time.Millisecond), r.liveOK, r.live-r.liveOK, r.dead-r.deadAnswered, r.deadAnswered,
		r.connsDuring(), r.srv.closedOwed, r.downSummary(), mib(r.after.hwm))
	return nil
}

// connsDuring is how many TLS connections delve opened to the upstream during the lookups.
func (r *deadRow) connsDuring() uint64 {
	return r.status.Upstreams[0].ConnectionsOpened - r.before.Upstreams[0].ConnectionsOpened
}

// downSummary says whether the upstream was ever marked down.
func (r *deadRow) downSummary() string {
	if r.downLogs == 0 && r.downSamples == 0 && r.status.Upstreams[0].Healthy {
		return "never marked down"
	}
	return fmt.Sprintf("MARKED DOWN (%d \"upstream down\" log lines, down in %d of %d samples, healthy after: %v)",
		r.downLogs, r.downSamples, r.samples, r.status.Upstreams[0].Healthy)
}

// counts formats a map of counts as "k n, k n" in key order, or "-".
func counts(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(out, ", ")
}
