package dnsserver

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/resolver"
	"github.com/delvedns/delve/internal/testenv"
	"github.com/delvedns/delve/internal/upstream"
)

// TestDNSPerf measures, when DELVE_DNSPERF=1, the throughput dnsperf gets over UDP from delve's
// listener and from unbound as a DoT forwarder (one thread, cache on), both in front of the same
// test unbound: one hot name (every query a cache hit) and never-repeated names (every query a
// miss). It prints the numbers and asserts nothing about them: it is a benchmark, not a test.
//
//	DELVE_DNSPERF=1 go test -run TestDNSPerf -v -count=1 ./internal/dnsserver
//
// DELVE_DNSPERF_SECONDS (default 10) is the length of each cached run; DELVE_DNSPERF_NAMES
// (default 50000) the number of distinct names each system gets in its uncached run.
func TestDNSPerf(t *testing.T) {
	if os.Getenv("DELVE_DNSPERF") == "" {
		t.Skip("set DELVE_DNSPERF=1 to run the dnsperf benchmark")
	}
	dnsperf := testenv.RequireTool(t, "dnsperf", "dnsperf")
	seconds := envInt("DELVE_DNSPERF_SECONDS", 10)
	names := envInt("DELVE_DNSPERF_NAMES", 50000)
	ub := testenv.UnboundT(t, testenv.UnboundOptions{BenchNames: 2 * names})

	u, err := upstream.New(upstream.Options{Name: "unbound", Address: "127.0.0.1", Port: ub.Port, TLSName: ub.TLSName, RootCAs: ub.CertPool()})
	if err != nil {
		t.Fatal(err)
	}
	res := resolver.New(resolver.Options{CacheSize: 4 * names}, []*upstream.Upstream{u})
	defer func() { res.Close(); _ = u.Close() }()
	s := listen(t, Options{Resolver: res})
	fwdPort := startForwarder(t, ub)

	dir := t.TempDir()
	hot := filepath.Join(dir, "hot.txt")
	if err := os.WriteFile(hot, []byte(testenv.NameA+" A\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cold := func(from int) string {
		p := filepath.Join(dir, fmt.Sprintf("cold%d.txt", from))
		var b strings.Builder
		for i := from; i < from+names; i++ {
			fmt.Fprintf(&b, "%s A\n", testenv.BenchName(i))
		}
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	systems := []struct {
		name string
		port int
		cold string
	}{{"delve listener", port(s), cold(0)}, {"unbound forwarder", fwdPort, cold(names)}}
	// The systems take turns at each step, so that a change in the machine's load (other work
	// on a shared machine) falls on both.
	t.Logf("%-18s %-9s %8s %12s %10s", "system", "run", "clients", "qps", "lost")
	for _, clients := range []int{1, 16, 64} {
		for _, sys := range systems {
			args := []string{"-s", "127.0.0.1", "-p", strconv.Itoa(sys.port), "-T", "1", "-c", strconv.Itoa(clients), "-q", strconv.Itoa(max(clients, 100))}
			qps, lost := runDNSPerf(t, dnsperf, append(args, "-d", hot, "-l", strconv.Itoa(seconds)))
			t.Logf("%-18s %-9s %8d %12.0f %10s", sys.name, "cached", clients, qps, lost)
		}
	}
	for _, sys := range systems {
		qps, lost := runDNSPerf(t, dnsperf, []string{"-s", "127.0.0.1", "-p", strconv.Itoa(sys.port), "-T", "1", "-c", "64", "-q", "100", "-d", sys.cold, "-n", "1", "-l", "120"})
		t.Logf("%-18s %-9s %8d %12.0f %10s", sys.name, "uncached", 64, qps, lost)
	}
	t.Logf("delve listener stats: %+v", s.Stats())
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

var (
	qpsRE  = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	lostRE = regexp.MustCompile(`Queries lost:\s+(\S+ \(\S+\))`)
)

func runDNSPerf(t *testing.T, bin string, args []string) (float64, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("dnsperf %v: %v\n%s", args, err, out)
	}
	m := qpsRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("dnsperf %v: no qps in\n%s", args, out)
	}
	qps, _ := strconv.ParseFloat(string(m[1]), 64)
	lost := "?"
	if l := lostRE.FindSubmatch(out); l != nil {
		lost = string(l[1])
	}
	return qps, lost
}

// startForwarder runs unbound as a one-thread caching DoT forwarder to ub, as a router owner
// would set it up, and returns its plain DNS port.
func startForwarder(t *testing.T, ub *testenv.Unbound) int {
	t.Helper()
	bin := testenv.RequireTool(t, "unbound", "unbound")
	dir := t.TempDir()
	port, err := testenv.FreePort("tcp+udp")
	if err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`server:
	verbosity: 0
	num-threads: 1
	username: ""
	chroot: ""
	directory: "%[1]s"
	pidfile: "%[1]s/unbound.pid"
	logfile: "%[1]s/unbound.log"
	use-syslog: no
	do-daemonize: no
	do-ip6: no
	interface: 127.0.0.1@%[2]d
	port: %[2]d
	so-reuseport: no
	access-control: 127.0.0.0/8 allow
	do-not-query-localhost: no
	tls-cert-bundle: "%[3]s"
	local-zone: "test." nodefault
	module-config: "iterator"
	msg-cache-size: 64m
	rrset-cache-size: 128m
	outgoing-num-tcp: 10
	incoming-num-tcp: 100
remote-control:
	control-enable: no
forward-zone:
	name: "."
	forward-addr: 127.0.0.1@%[4]d#%[5]s
	forward-tls-upstream: yes
`, dir, port, ub.CAFile, ub.Port, ub.TLSName)
	path := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-d", "-c", path)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Logf("forwarder: %s", sc.Text())
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	c := &dns.Client{Timeout: 500 * time.Millisecond}
	for range 40 {
		r, _, err := c.Exchange(question(testenv.NameA, dns.TypeA), fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 {
			return port
		}
		time.Sleep(250 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "unbound.log"))
	t.Fatalf("the unbound forwarder does not answer:\n%s", log)
	return 0
}
