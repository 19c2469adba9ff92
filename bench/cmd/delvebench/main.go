// Command delvebench compares delve with stubby, unbound as a DNS-over-TLS forwarder and kdig,
// all on one loopback DoT upstream in one run, and writes the table to bench/results. `make
// bench` runs it; see bench/README.md. Nothing leaves 127.0.0.1, every load is bounded in count
// and in time, and every process it starts is stopped before it returns.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/delvedns/delve/internal/testenv"
)

func main() {
	os.Exit(run())
}

type config struct {
	out     string
	dur     time.Duration
	maxMiss int
	maxHot  int
	clients []int
	// dnsperfClients are the concurrencies dnsperf runs at: at 1 client it paces itself (it
	// waits for a timer, not for the answer, when its one query is outstanding).
	dnsperfClients []int
	delve          string
	delveEnv       string
	oneShots       int
	rssLook        int
	only           string
	keep           bool
	version        string
	profile        string
	cpuprof        string
	systems        string
	baseline       string
	repeat         int
	memEnvs        []string
}

func run() int {
	var c config
	var clients, dnsperfClients string
	flag.StringVar(&c.out, "out", "bench/results", "directory for the results file (empty: print only)")
	flag.DurationVar(&c.dur, "duration", 3*time.Second, "time limit of each load run")
	flag.IntVar(&c.repeat, "repeat", 2, "runs of each load cell; the best is kept")
	memEnvs := flag.String("mem-envs", "default;GOGC=50", "semicolon-separated environments (comma-separated K=V, or default) of the daemon memory runs")
	flag.IntVar(&c.maxMiss, "max-miss", 200000, "lookup limit of each cache-miss run")
	flag.IntVar(&c.maxHot, "max-hot", 300000, "lookup limit of each cached run")
	flag.StringVar(&clients, "clients", "1,16,64", "concurrent clients of the load runs")
	flag.StringVar(&dnsperfClients, "dnsperf-clients", "16,64", "concurrent clients of the dnsperf runs (a subset of -clients)")
	flag.StringVar(&c.delve, "delve", "", "delve binary to test (default: build ./cmd/delve as `make build` does)")
	flag.StringVar(&c.delveEnv, "delve-env", "", "environment for `delve serve`, comma-separated K=V (e.g. GOGC=50)")
	flag.IntVar(&c.oneShots, "oneshots", 20, "runs of each one-shot command")
	flag.IntVar(&c.rssLook, "rss-lookups", 100000, "lookups of the daemon memory run")
	flag.StringVar(&c.only, "only", "", "comma-separated sections to run: load,conns,rss,large,dead,engine,oneshot,ubus (default all)")
	flag.BoolVar(&c.keep, "keep", false, "keep the scratch directory")
	flag.StringVar(&c.version, "version", "", "version string to build delve with")
	flag.StringVar(&c.systems, "systems", "delve,stubby,unbound", "systems of the load and connection tables")
	flag.StringVar(&c.baseline, "baseline", "", "earlier results file whose load rows the largest -clients rows are compared with (default: the newest earlier one in -out)")
	flag.StringVar(&c.cpuprof, "cpuprofile", "", "write a CPU profile of delvebench itself (the engine section runs internal/upstream in this process)")
	flag.StringVar(&c.profile, "profile", "", "only profile delve's daemon (bench/cmd/delveprof) at the largest -clients and leave the profiles in this directory")
	flag.Parse()
	for _, e := range strings.Split(*memEnvs, ";") {
		if e == "default" {
			e = ""
		}
		c.memEnvs = append(c.memEnvs, e)
	}
	var err error
	if c.repeat < 1 {
		c.repeat = 1
	}
	if c.clients, err = parseClients(clients); err != nil {
		fmt.Fprintln(os.Stderr, "delvebench: -clients:", err)
		return 2
	}
	if c.dnsperfClients, err = parseClients(dnsperfClients); err != nil {
		fmt.Fprintln(os.Stderr, "delvebench: -dnsperf-clients:", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if c.cpuprof != "" {
		f, err := os.Create(c.cpuprof)
		if err != nil {
			fmt.Fprintln(os.Stderr, "delvebench:", err)
			return 1
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "delvebench:", err)
			return 1
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	b := &bench{cfg: c, start: time.Now(), loadStart: loadavg()}
	err = b.run(ctx)
	stopAll() // whatever happened, no child outlives the bench
	b.cleanup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "delvebench:", err)
		return 1
	}
	return 0
}

// splitEnv splits comma-separated K=V pairs.
func splitEnv(s string) []string {
	var out []string
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv != "" {
			out = append(out, kv)
		}
	}
	return out
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func parseClients(list string) ([]int, error) {
	var out []int
	for _, s := range strings.Split(list, ",") {
		if s == "" {
			continue
		}
		var n int
		if _, err := fmt.Sscan(s, &n); err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a number of clients", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// bench is one run of every measurement.
type bench struct {
	cfg   config
	start time.Time
	env   *env
	up    *testenv.Unbound
	tools map[string]string
	info  []string // machine and versions
	vers  map[string]string

	loadStart   string // /proc/loadavg when the run began: other work on the machine shows here
	hasListener bool
	rows        []*row
	conns       []connRow
	mem         []memRow
	large       *largeRow
	dead        *deadRow
	engine      *engineResult
	oneshot     *oneShot
	ubus        *ubusResult
	notes       []string
}

func (b *bench) want(section string) bool {
	if b.cfg.only == "" {
		return true
	}
	for _, s := range strings.Split(b.cfg.only, ",") {
		if strings.TrimSpace(s) == section {
			return true
		}
	}
	return false
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%5.1fs] %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, args...))
}

func (b *bench) cleanup() {
	if b.up != nil {
		_ = b.up.Close()
	}
	if b.env != nil && !b.cfg.keep {
		_ = os.RemoveAll(b.env.dir)
	}
}

func (b *bench) run(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "delvebench-")
	if err != nil {
		return err
	}
	b.env = &env{dir: dir, upAddr: "127.0.0.1"}
	b.env.delveEnv = splitEnv(b.cfg.delveEnv)
	if err := b.findTools(ctx); err != nil {
		return err
	}
	b.logf("starting the upstream: unbound serving DoT, 1 thread, TLS tickets off, 10000 bench names")
	upDir := filepath.Join(dir, "upstream")
	if err := os.MkdirAll(upDir, 0o755); err != nil {
		return err
	}
	b.up, err = testenv.StartUnbound(upDir, testenv.UnboundOptions{BenchNames: 10000, Threads: 1})
	if err != nil {
		return err
	}
	b.env.upPort, b.env.caFile = b.up.Port, b.up.CAFile
	b.env.unbound, b.env.stubby = b.tools["unbound"], b.tools["stubby"]

	// Does this delve serve plain DNS? (internal/dnsserver, UCI list listen)
	s, err := startDelve(ctx, b.env, "probe")
	if err != nil {
		return err
	}
	b.hasListener = s.dnsAddr != ""
	b.env.listener = b.hasListener
	s.stop()
	if b.hasListener {
		b.logf("delve serves plain DNS: it is driven by dnsperf as well as through its socket")
	} else {
		b.notes = append(b.notes, "This delve does not serve plain DNS (no `list listen`): it is measured through its JSON-RPC socket only.")
	}

	if b.cfg.profile != "" {
		return b.profileRuns(ctx, b.cfg.profile)
	}
	steps := []struct {
		name string
		f    func(context.Context) error
	}{
		{"load", b.loadTable},
		{"conns", b.connTable},
		{"rss", b.memTable},
		{"large", b.largeRun},
		{"dead", b.deadRun},
		{"engine", b.engineRun},
		{"oneshot", b.oneShotRun},
		{"ubus", b.ubusRun},
	}
	for _, st := range steps {
		if !b.want(st.name) {
			continue
		}
		if err := st.f(ctx); err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	report := b.report()
	fmt.Print(report)
	if b.cfg.out != "" {
		if err := os.MkdirAll(b.cfg.out, 0o755); err != nil {
			return err
		}
		file := filepath.Join(b.cfg.out, fmt.Sprintf("%s-%s-%dcpu.txt", b.start.UTC().Format("2006-01-02"), runtime.GOARCH, runtime.NumCPU()))
		if err := os.WriteFile(file, []byte(report), 0o644); err != nil {
			return err
		}
		b.logf("wrote %s", file)
	}
	return nil
}

func (b *bench) findTools(ctx context.Context) error {
	b.tools = map[string]string{}
	for _, t := range []struct{ cmd, pkg string }{
		{"unbound", "unbound"}, {"stubby", "stubby"}, {"dnsperf", "dnsperf"}, {"kdig", "knot-dnsutils"},
	} {
		p, err := testenv.LookTool(t.cmd)
		if err != nil {
			return fmt.Errorf("%w: install the Debian package %s (make bench does, as root)", err, t.pkg)
		}
		b.tools[t.cmd] = p
	}
	b.env.delve = b.cfg.delve
	if b.env.delve == "" {
		b.env.delve = filepath.Join(b.env.dir, "delve")
		b.logf("building delve")
		ldflags := "-s -w"
		if b.cfg.version != "" {
			ldflags += " -X github.com/delvedns/delve/internal/version.Version=" + b.cfg.version
		}
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", b.env.delve, "./cmd/delve")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building delve: %w: %s", err, out)
		}
	}
	b.vers = map[string]string{
		"delve":   firstLine(ctx, b.env.delve, "version"),
		"unbound": firstLine(ctx, b.tools["unbound"], "-V"),
		"stubby":  firstLine(ctx, b.tools["stubby"], "-V"),
		"dnsperf": grepLine(ctx, "Version", b.tools["dnsperf"], "-h"),
		"kdig":    firstLine(ctx, b.tools["kdig"], "-V"),
		"go":      runtime.Version(),
	}
	return nil
}

func firstLine(ctx context.Context, argv ...string) string {
	return grepLine(ctx, "", argv...)
}

// grepLine returns the first line of argv's output that contains substr.
func grepLine(ctx context.Context, substr string, argv ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" && strings.Contains(l, substr) {
			return l
		}
	}
	return "?"
}
