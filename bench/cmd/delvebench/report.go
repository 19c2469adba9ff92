package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

func (b *bench) report() string {
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	host, _ := os.Hostname()
	p("delve benchmark, %s\n", b.start.UTC().Format("2006-01-02 15:04 MST"))
	p("command: make bench (go run ./bench/cmd/delvebench %s), wall time %s\n",
		strings.Join(os.Args[1:], " "), time.Since(b.start).Round(time.Second))
	p("machine: %s, %d CPUs (nproc), %s, %s\n", host, runtime.NumCPU(), cpuModel(), kernel())
	p("versions: %s; unbound %s; %s; %s; %s; %s\n", b.vers["delve"], strings.TrimPrefix(b.vers["unbound"], "Version "),
		b.vers["stubby"], b.vers["dnsperf"], b.vers["kdig"], b.vers["go"])
	p("load average (1, 5, 15 min): %s at the start, %s at the end\n", b.loadStart, loadavg())
	p("upstream: unbound serving DoT on 127.0.0.1, 1 thread, TLS session tickets off, 10000 names + wild.delve.test, no recursion\n")
	if b.cfg.delveEnv != "" {
		p("delve serve environment: %s\n", b.cfg.delveEnv)
	}
	for _, n := range b.notes {
		p("note: %s\n", n)
	}

	if len(b.rows) > 0 {
		p("\n== Load: lookups/s and latency (fresh daemon per run; each run at most %v and %d miss / %d hot lookups;\n", b.cfg.dur, b.cfg.maxMiss, b.cfg.maxHot)
		p("the best of %d runs per row, the systems taking turns)\n", b.cfg.repeat)
		p("miss = every name new (wildcard names with a run-unique prefix), hot = one name (%s) over and over.\n", hotName())
		p("clients = concurrent clients, each waiting for its answer before asking again (dnsperf -c N -q N).\n")
		p("delve/socket: JSON-RPC lookups by delvebench, counting only answers with the right address;\n")
		p("dnsperf rows: UDP, counting NOERROR answers. cpu = utime+stime of the daemon per 10,000 answers.\n")
		p("Memory (MiB): idle = VmRSS after start and one lookup (anon = its RssAnon part: heap, stacks; the rest is\n")
		p("clean pages of the binary and libraries); peak = VmHWM over the run (reset before it with clear_refs);\n")
		p("anon after = RssAnon right after the run.\n")
		p("delve = delve as it ships, option threads unset (1): GOMAXPROCS=1, as on a single-core router;\n")
		p("delve-allcpu = option threads '0': GOMAXPROCS one per CPU (%d here), Go's default.\n\n", runtime.NumCPU())
		tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "system\tnames\tclients\tlookups/s\tp50 ms\tp99 ms\tanswers\tfailed\tcpu ms/10k\tidle\tanon\tpeak\tanon after\tupstream conns\t")
		for _, r := range b.rows {
			conns := "-"
			if r.t.system == "delve" {
				conns = fmt.Sprint(r.conns)
			}
			peak := fmt.Sprintf("%.1f", mib(r.peak))
			if !r.reset {
				peak += "*"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.3f\t%.3f\t%d\t%d\t%.0f\t%.1f\t%.1f\t%s\t%.1f\t%s\t\n", r.t.label(), r.mode, r.clients,
				r.res.qps(), ms(r.res.pct(50)), ms(r.res.pct(99)), r.res.ok, r.res.bad, cpuPer10k(r),
				mib(r.idle.rss), mib(r.idle.anon), peak, mib(r.after.anon), conns)
		}
		tw.Flush()
		if !b.rows[0].reset {
			p("* VmHWM could not be reset: the peak is since the daemon started.\n")
		}

		p("\n== Ratios delve / peer in the same run (lookups/s: >1 is delve faster; p50 and cpu: <1 is delve better)\n\n")
		tw = tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "delve\tpeer\tnames\tclients\tlookups/s\tp50\tcpu/lookup\t")
		for _, r := range b.rows {
			if r.t.system != "delve" {
				continue
			}
			for _, peer := range []string{"stubby", "unbound"} {
				o := b.find(peer, peerVia(r.t.via), r.mode, r.clients)
				if o == nil {
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.2f\t%.2f\t%.2f\t\n", r.t.label(), o.t.label(), r.mode, r.clients,
					ratio(r.res.qps(), o.res.qps()), ratio(ms(r.res.pct(50)), ms(o.res.pct(50))), ratio(cpuPer10k(r), cpuPer10k(o)))
			}
		}
		tw.Flush()
	}

	if len(b.conns) > 0 {
		p("\n== Upstream TLS connections per %d lookups (never-repeated names), counted at a TCP proxy in front of the upstream\n\n", connLookups)
		tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "system\tclients\tlookups\tconnections accepted\tper 10,000\tdelve's connections_opened\t")
		for _, c := range b.conns {
			rep := "-"
			if c.t.system == "delve" {
				rep = fmt.Sprint(c.reported)
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f\t%s\t\n", c.t.label(), c.clients, c.ok+1, c.accepted,
				float64(c.accepted)*10000/float64(c.ok+1), rep)
		}
		tw.Flush()
		p("(lookups include the first one of each fresh daemon; a system that opens new connections under load shows it here)\n")
	}

	for _, m := range b.mem {
		env := m.env
		if env == "" {
			env = "Go defaults (GOGC=100, no GOMEMLIMIT)"
		}
		p("\n== delve serve memory over %d never-repeated lookups, %d socket clients; environment: %s (issue 3)\n\n", m.lookups, m.clients, env)
		p("  RSS idle:                %.1f MiB (VmRSS after start and one lookup; RssAnon %.1f, RssFile %.1f; VmHWM so far %.1f)\n",
			mib(m.idle.rss), mib(m.idle.anon), mib(m.idle.file), mib(m.idle.hwm))
		p("  RSS after the lookups:   %.1f MiB (RssAnon %.1f); 2 s later %.1f MiB (RssAnon %.1f)\n",
			mib(m.after.rss), mib(m.after.anon), mib(m.settled.rss), mib(m.settled.anon))
		p("  peak during the lookups: %.1f MiB (VmHWM, reset before them)\n", mib(m.peak))
		if st := m.status; st != nil {
			p("  status after:            Go heap in use %d KiB, %d goroutines, %d cache entries, %d upstream TLS connection(s) opened\n",
				st.Process.HeapKiB, st.Process.Goroutines, st.Cache.Entries, st.Upstreams[0].ConnectionsOpened)
		}
		p("  answers:                 %d correct, %d failed, %.0f lookups/s, p50 %.3f ms, p99 %.3f ms, %.0f ms CPU per 10,000\n",
			m.res.ok, m.res.bad, m.res.qps(), ms(m.res.pct(50)), ms(m.res.pct(99)), ms(m.cpu)*10000/float64(max(m.res.ok, 1)))
	}

	if r := b.large; r != nil {
		p("\n== delve serve, %d distinct ~30 KB TXT answers (%d records of %d × 255 bytes) from an in-process DoT server, %d socket clients, cache_size 1000000, default cache_memory (issue 12)\n\n",
			r.names, largeRRs, largeStrings, largeClients)
		p("  peak RSS:     %.1f MiB (VmHWM since start; %.1f MiB idle before the lookups)\n", mib(r.after.hwm), mib(r.idle.rss))
		p("  RSS after:    %.1f MiB (RssAnon %.1f)\n", mib(r.after.rss), mib(r.after.anon))
		if st := r.status; st != nil {
			p("  cache after:  %d entries, %d bytes of a %d-byte budget; Go heap in use %d KiB\n", st.Cache.Entries, st.Cache.Bytes, st.Cache.Memory, st.Process.HeapKiB)
		}
		p("  answers:      %d correct, %d failed in %.1f s\n", r.ok, r.bad, r.took.Seconds())
	}

	if r := b.dead; r != nil && r.status != nil {
		u, u0 := r.status.Upstreams[0], r.before.Upstreams[0]
		p("\n== delve serve, %d lookups of distinct names, every %dth (%d) a dead name, %d socket clients sharing them in order; an in-process DoT server\n",
			deadLookups, deadEvery, deadLookups/deadEvery, deadClients)
		p("answers live names at once and dead ones SERVFAIL, half of them after %v, out of order, half at once with no Extended DNS Error (delve's timeout %d ms) (issue 12)\n\n", deadDelay, r.status.Config.TimeoutMS)
		p("  lookups:          %d made in %.1f s (wall time)\n", r.sent, r.took.Seconds())
		liveLat, deadLat := result{lat: r.liveLat}, result{lat: r.deadLat}
		p("  live names:       %d: %d answered OK, %d failed (%s); latency p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
			r.live, r.liveOK, r.live-r.liveOK, counts(r.liveFailed), ms(liveLat.pct(50)), ms(liveLat.pct(99)), ms(liveLat.pct(100)))
		if r.liveErr != "" {
			p("                    first live failure: %s\n", r.liveErr)
		}
		p("  dead names:       %d: %d failed (%s) after p50 %.2f s, max %.2f s; %d answered (%s)\n",
			r.dead, r.dead-r.deadAnswered, counts(r.deadFailed), deadLat.pct(50).Seconds(), deadLat.pct(100).Seconds(), r.deadAnswered, counts(r.deadAnsweredRcodes))
		p("  TLS connections:  %d opened by delve during the lookups (connections_opened %d before, %d after); the server accepted %d in all\n",
			r.connsDuring(), u0.ConnectionsOpened, u.ConnectionsOpened, r.srv.accepted)
		p("  stalls:           %d (connections delve closed while the server still owed late replies on them)\n", r.srv.closedOwed)
		p("  upstream health:  %s; %d \"upstream down\" log lines, down in %d of %d status samples (every %v; at most %d open connection(s), %d in flight)\n",
			r.downSummary(), r.downLogs, r.downSamples, r.samples, deadSample, r.maxOpen, r.maxInFlight)
		p("  status after:     healthy %v, failures %d, retries %d, unmatched replies %d, upstream queries %d, lookup_failures %d, last_error %q\n",
			u.Healthy, u.Failures, u.Retries, u.Unmatched, u.Queries, r.status.LookupFailures, u.LastError)
		p("  server side:      %d stall probes (. NS) answered, %d late SERVFAILs written, %d not (connection gone)\n", r.srv.probes, r.srv.lateSent, r.srv.lateLost)
		p("  peak RSS:         %.1f MiB (VmHWM since start; %.1f MiB idle before the lookups)\n", mib(r.after.hwm), mib(r.idle.rss))
	}

	if e := b.engine; e != nil {
		p("\n== DoT engine alone (internal/upstream, one Upstream, default options: 1 connection, %d in flight) (issue 2)\n\n", e.pipeInFlight)
		tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "mode\tlookups\tfailed\tlookups/s\tp50 ms\tp99 ms\tcpu ms/10k\t")
		fmt.Fprintf(tw, "one at a time\t%d\t%d\t%.0f\t%.3f\t%.3f\t%.0f\t\n", e.seq.ok, e.seq.bad, e.seq.qps(), ms(e.seq.pct(50)), ms(e.seq.pct(99)), ms(e.seqCPU)*10000/float64(max(e.seq.ok, 1)))
		fmt.Fprintf(tw, "pipelined, %d concurrent\t%d\t%d\t%.0f\t%.3f\t%.3f\t%.0f\t\n", e.pipeDepth, e.pipe.ok, e.pipe.bad, e.pipe.qps(), ms(e.pipe.pct(50)), ms(e.pipe.pct(99)), ms(e.pipeCPU)*10000/float64(max(e.pipe.ok, 1)))
		tw.Flush()
		p("  pipelined / one at a time: %.2f×  (cpu: of the whole bench process, load generator goroutines included)\n", ratio(e.pipe.qps(), e.seq.qps()))
		p("  TLS connections opened for %d lookups (first lookup + both runs): %d (after the one-at-a-time run: %d); unmatched replies %d, retries %d\n",
			e.seq.ok+e.pipe.ok+1, e.conns, e.seqConns, e.unmatched, e.retries)
	}

	if o := b.oneshot; o != nil {
		p("\n== One-shot: whole process, fresh TLS connection, one A lookup of %s; %d runs each, alternating\n\n", o.name, o.runs)
		tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "command\tmedian ms\tmin ms\tmax ms\t")
		for _, x := range []struct {
			name string
			d    []time.Duration
		}{{"delve NAME A", o.delve}, {"kdig +tls NAME A", o.kdig}} {
			fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.1f\t\n", x.name, ms(median(x.d)), ms(minD(x.d)), ms(maxD(x.d)))
		}
		tw.Flush()
		p("  delve: %s\n  kdig:  %s\n", shellJoin(o.delveArgs), shellJoin(o.kdigArgs))
	}

	if b.ubus != nil {
		b.ubus.report(p)
	}

	if len(b.rows) > 0 || b.oneshot != nil {
		p("\n== Targets (issue 6)\n\n")
		for _, t := range b.targets6() {
			p("  %-7s %s\n", t.verdict, t.text)
		}
	}
	if len(b.rows) > 0 {
		p("\n== Targets (issue 24: one client at a time; delve is GOMAXPROCS=1, its default threads '1'; delve-allcpu is threads '0')\n\n")
		for _, t := range b.targets24() {
			p("  %-7s %s\n", t.verdict, t.text)
		}
	}
	return sb.String()
}

// targets24 checks the goals of issue 24 against this run: at 1 and 16 clients, delve over UDP
// (GOMAXPROCS=1, as it ships, and with threads '0') against unbound and stubby over UDP; the largest concurrency's rows
// against the baseline file's; the daemon's memory.
func (b *bench) targets24() []verdict {
	var out []verdict
	add := func(ok bool, format string, args ...any) {
		out = append(out, verdict{met(ok), fmt.Sprintf(format, args...)})
	}
	for _, name := range []string{"delve", "delve" + allCPU} {
		for _, n := range []int{1, 16} {
			for _, mode := range []string{modeMiss, modeHot} {
				d, ub, st := b.find(name, viaUDP, mode, n), b.find("unbound", viaUDP, mode, n), b.find("stubby", viaUDP, mode, n)
				if d == nil || ub == nil {
					continue
				}
				rc := ratio(cpuPer10k(d), cpuPer10k(ub))
				add(rc <= 1, "%s/udp %s, %d client(s): CPU per lookup ≤ unbound's: %.0f vs %.0f ms/10k = %.2f×", name, mode, n, cpuPer10k(d), cpuPer10k(ub), rc)
				switch {
				case mode == modeMiss && st != nil:
					rp := ratio(ms(d.res.pct(50)), ms(st.res.pct(50)))
					add(rp <= 1, "%s/udp miss, %d client(s): p50 ≤ stubby's: %.3f vs %.3f ms = %.2f×", name, n, ms(d.res.pct(50)), ms(st.res.pct(50)), rp)
				case mode == modeHot:
					rq := ratio(d.res.qps(), ub.res.qps())
					add(rq >= 1, "%s/udp hot, %d client(s): lookups/s ≥ unbound's: %.0f vs %.0f = %.2f×", name, n, d.res.qps(), ub.res.qps(), rq)
				}
			}
		}
	}
	n := maxInt(b.cfg.clients)
	if base, file := b.baseline(); base != nil {
		for _, r := range b.rows {
			o, ok := base[baseKey{r.t.label(), r.mode, r.clients}]
			if r.clients != n || r.t.system != "delve" || !ok {
				continue
			}
			rq, rc := ratio(r.res.qps(), o.qps), ratio(cpuPer10k(r), o.cpu)
			add(rq >= 1 && rc <= 1, "%s %s, %d clients, no worse than %s: lookups/s %.0f vs %.0f = %.2f×, cpu %.0f vs %.0f ms/10k = %.2f×",
				r.t.label(), r.mode, n, filepath.Base(file), r.res.qps(), o.qps, rq, cpuPer10k(r), o.cpu, rc)
		}
	}
	var idle, peak int64
	for _, r := range b.rows {
		if r.t.name() == "delve" {
			idle = max(idle, r.idle.rss)
			if r.t.via == viaSocket && r.clients == n {
				peak = max(peak, r.peak)
			}
		}
	}
	if idle > 0 {
		add(idle <= 83<<20/10, "daemon RSS idle ≤ 8.3 MiB: largest idle VmRSS of the delve runs %.1f MiB", mib(idle))
	}
	if peak > 0 {
		add(peak <= 16<<20, "daemon RSS peak ≤ 16 MiB with %d socket clients: largest VmHWM %.1f MiB", n, mib(peak))
	}
	return out
}

// baseKey names a row of the load table.
type baseKey struct {
	label, mode string
	clients     int
}

type baseRow struct{ qps, cpu float64 }

// baseline reads the load table of the newest earlier results file of this machine's kind in the
// results directory (or -baseline): the rows to compare the largest concurrency with.
func (b *bench) baseline() (map[baseKey]baseRow, string) {
	file := b.cfg.baseline
	if file == "" && b.cfg.out != "" {
		suffix := fmt.Sprintf("-%s-%dcpu.txt", runtime.GOARCH, runtime.NumCPU())
		mine := b.start.UTC().Format("2006-01-02") + suffix
		matches, _ := filepath.Glob(filepath.Join(b.cfg.out, "*"+suffix))
		for _, m := range matches { // sorted: the newest date last
			if filepath.Base(m) < mine {
				file = m
			}
		}
	}
	if file == "" {
		return nil, ""
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, ""
	}
	rows := map[baseKey]baseRow{}
	for _, l := range strings.Split(string(data), "\n") {
		// system names clients lookups/s p50 p99 answers failed cpu ...
		f := strings.Fields(l)
		if len(f) < 9 || !strings.Contains(f[0], "/") {
			continue
		}
		var k baseKey
		var r baseRow
		k.label, k.mode = f[0], f[1]
		if _, err := fmt.Sscan(f[2], &k.clients); err != nil {
			continue
		}
		if _, err := fmt.Sscan(f[3], &r.qps); err != nil {
			continue
		}
		if _, err := fmt.Sscan(f[8], &r.cpu); err != nil {
			continue
		}
		if _, dup := rows[k]; !dup {
			rows[k] = r
		}
	}
	return rows, file
}

// find returns the row of system (with its variant: target.name) driven via for a mode and
// concurrency, or nil.
func (b *bench) find(system, via, mode string, clients int) *row {
	for _, r := range b.rows {
		if r.t.name() == system && r.t.via == via && r.mode == mode && r.clients == clients {
			return r
		}
	}
	return nil
}

// peerVia is how the peers are driven when delve is driven via: the same client, or for the
// socket (which they do not have) the same load generator over UDP.
func peerVia(via string) string {
	if via == viaSocket {
		return viaUDP
	}
	return via
}

type verdict struct{ verdict, text string }

func met(ok bool) string {
	if ok {
		return "MET"
	}
	return "MISSED"
}

// targets6 checks the targets of issue 6 against this run.
func (b *bench) targets6() []verdict {
	var out []verdict
	add := func(ok bool, format string, args ...any) {
		out = append(out, verdict{met(ok), fmt.Sprintf(format, args...)})
	}
	n := maxInt(b.cfg.clients)
	for _, via := range []string{viaUDP, viaDnsperf, viaSocket} {
		pv := peerVia(via)
		stubMiss, ubMiss := b.find("stubby", pv, modeMiss, n), b.find("unbound", pv, modeMiss, n)
		ubHot := b.find("unbound", pv, modeHot, n)
		d := b.find("delve", via, modeMiss, n)
		if d == nil || stubMiss == nil || ubMiss == nil {
			continue
		}
		rs, ru := ratio(d.res.qps(), stubMiss.res.qps()), ratio(d.res.qps(), ubMiss.res.qps())
		add(rs >= 2, "cache-miss lookups/s at %d clients ≥ 2× stubby (%s): %.0f vs %.0f = %.2f×", n, vs(via), d.res.qps(), stubMiss.res.qps(), rs)
		add(ru >= 1, "cache-miss lookups/s at %d clients ≥ 1× unbound forwarder (%s): %.0f vs %.0f = %.2f×", n, vs(via), d.res.qps(), ubMiss.res.qps(), ru)
		rc := ratio(cpuPer10k(d), cpuPer10k(ubMiss))
		add(rc <= 1, "CPU per lookup ≤ unbound forwarder's (cache miss, %d clients, %s): %.0f vs %.0f ms/10k = %.2f×", n, vs(via), cpuPer10k(d), cpuPer10k(ubMiss), rc)
		if h := b.find("delve", via, modeHot, n); h != nil && ubHot != nil {
			rh := ratio(h.res.qps(), ubHot.res.qps())
			add(rh >= 1, "cached lookups/s at %d clients ≥ 1× unbound forwarder (%s): %.0f vs %.0f = %.2f×", n, vs(via), h.res.qps(), ubHot.res.qps(), rh)
			rch := ratio(cpuPer10k(h), cpuPer10k(ubHot))
			out = append(out, verdict{"(info)", fmt.Sprintf("CPU per cached lookup, %d clients (%s): %.0f vs %.0f ms/10k = %.2f×", n, vs(via), cpuPer10k(h), cpuPer10k(ubHot), rch)})
		}
		if d1, s1 := b.find("delve", via, modeMiss, 1), b.find("stubby", pv, modeMiss, 1); d1 != nil && s1 != nil {
			r := ratio(ms(d1.res.pct(50)), ms(s1.res.pct(50)))
			add(r <= 1, "sequential (1 client, cache miss) p50 ≤ stubby's (%s): %.3f vs %.3f ms = %.2f×", vs(via), ms(d1.res.pct(50)), ms(s1.res.pct(50)), r)
		}
	}
	maxConns, runs := uint64(0), 0
	for _, r := range b.rows {
		if r.t.system == "delve" {
			maxConns, runs = max(maxConns, r.conns), runs+1
		}
	}
	for _, c := range b.conns {
		if c.t.system == "delve" {
			maxConns, runs = max(maxConns, uint64(c.accepted)), runs+1
		}
	}
	if runs > 0 {
		add(maxConns == 1, "one upstream connection for a whole run: at most %d TLS connection(s) in each of %d delve runs", maxConns, runs)
	}
	if o := b.oneshot; o != nil {
		dm, km := median(o.delve), median(o.kdig)
		add(dm <= km, "`delve NAME` one-shot ≤ kdig +tls: median %.1f vs %.1f ms = %.2f×", ms(dm), ms(km), ratio(ms(dm), ms(km)))
	}
	var idle usage
	var peak, peakAnon int64
	for _, r := range b.rows {
		if r.t.system == "delve" {
			if r.idle.rss > idle.rss {
				idle = r.idle
			}
			if r.clients == n {
				peak = max(peak, r.peak)
				peakAnon = max(peakAnon, r.after.anon)
			}
		}
	}
	if idle.rss > 0 {
		add(idle.rss <= 8<<20, "daemon RSS idle ≤ 8 MiB: largest idle VmRSS of the delve runs %.1f MiB (RssAnon %.1f + RssFile %.1f)",
			mib(idle.rss), mib(idle.anon), mib(idle.file))
		add(peak <= 10<<20, "daemon RSS peak ≤ 10 MiB during the %d-client runs: largest VmHWM %.1f MiB (largest RssAnon after a run %.1f)",
			n, mib(peak), mib(peakAnon))
	}
	return out
}

// vs says which rows a target compares.
func vs(via string) string {
	return "delve/" + via + " vs peers/" + peerVia(via)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func maxInt(v []int) int {
	m := 0
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

func minD(d []time.Duration) time.Duration {
	m := d[0]
	for _, x := range d {
		m = min(m, x)
	}
	return m
}

func maxD(d []time.Duration) time.Duration {
	m := d[0]
	for _, x := range d {
		m = max(m, x)
	}
	return m
}

func shellJoin(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if strings.ContainsAny(a, " #'\"$") {
			a = "'" + a + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "Linux"
	}
	return "Linux " + strings.TrimSpace(string(b))
}

func hotName() string {
	w := workload{mode: modeHot}
	n, _ := w.name(0)
	return n
}
