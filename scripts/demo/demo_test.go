package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/json"
	"github.com/delvedns/delve/internal/testenv"
)

// childEnv makes the test binary the demo program: the arguments after "--" are its own.
const childEnv = "DELVE_DEMO_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		args := os.Args[1:]
		for i, a := range args {
			if a == "--" {
				args = args[i+1:]
				break
			}
		}
		os.Exit(run(args, os.Stdout, os.Stderr))
	}
	code := m.Run()
	testenv.RemoveBinaries()
	os.Exit(code)
}

// delveBinary is the real binary, built once (see testenv.DelveBinary).
func delveBinary(t *testing.T) string { return testenv.DelveBinary(t, "") }

// demoCmd is the demo program (this test binary) with args.
func demoCmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatal(err)
	return -1
}

// started is what the demo said it started.
type started struct {
	unboundPID, daemonPID int
	dir                   string
}

var (
	unboundRE = regexp.MustCompile(`(?m)^unbound \(pid (\d+)\) answers DoT on (127\.0\.0\.1:(\d+)); its certificate names dot\.delve\.test and is issued by the CA in (\S+)$`)
	daemonRE  = regexp.MustCompile(`(?m)^delve serve \(pid (\d+)\) answers JSON-RPC on (\S+) and DNS on (127\.0\.0\.1:(\d+))$`)
	stoppedRE = regexp.MustCompile(`(?m)^stopped (?:delve serve \(pid (\d+)\) and )?unbound \(pid (\d+)\); removed (\S+)$`)
)

// checkStopped: every process the demo named is gone and its directory removed.
func checkStopped(t *testing.T, out string, s started) {
	t.Helper()
	m := stoppedRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the demo did not say what it stopped:\n%s", out)
	}
	if m[2] != strconv.Itoa(s.unboundPID) || (s.daemonPID != 0 && m[1] != strconv.Itoa(s.daemonPID)) || m[3] != s.dir {
		t.Errorf("stopped %q, want unbound %d, delve serve %d, dir %s", m[0], s.unboundPID, s.daemonPID, s.dir)
	}
	for _, p := range []struct {
		pid  int
		name string
	}{{s.unboundPID, "unbound"}, {s.daemonPID, "delve"}} {
		if p.pid != 0 && running(p.pid, p.name) {
			t.Errorf("%s (pid %d) is still running after the demo", p.name, p.pid)
		}
	}
	if _, err := os.Stat(s.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there after the demo: %v", s.dir, err)
	}
}

// running tells whether pid is a live (not zombie) process whose command line holds name.
func running(pid int, name string) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return bytes.Contains(cmdline, []byte(name))
}

// linesAfter returns the n lines of out that follow the line want, which must be there.
func linesAfter(t *testing.T, out, want string, n int) []string {
	t.Helper()
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if l == want {
			if i+n >= len(lines) {
				break
			}
			return lines[i+1 : i+1+n]
		}
	}
	t.Fatalf("no line %q followed by %d more in:\n%s", want, n, out)
	return nil
}

// runDemo runs the demo program with args to its end (at most 2 minutes).
func runDemo(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var o, e bytes.Buffer
	cmd := demoCmd(ctx, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	code = exitCode(t, cmd.Run())
	return o.String(), e.String(), code
}

// startedIn reads what the demo said it started; withDaemon: it must have started delve serve.
func startedIn(t *testing.T, out string, withDaemon bool) started {
	t.Helper()
	um := unboundRE.FindStringSubmatch(out)
	dm := daemonRE.FindStringSubmatch(out)
	if um == nil || (withDaemon && dm == nil) {
		t.Fatalf("the demo did not name unbound and the daemon:\n%s", out)
	}
	var s started
	s.unboundPID, _ = strconv.Atoi(um[1])
	s.dir = filepath.Dir(filepath.Dir(um[4]))
	if withDaemon {
		s.daemonPID, _ = strconv.Atoi(dm[1])
	}
	return s
}

// TestDemo runs the demo to its end and checks that each step showed the loopback server's
// data, that the daemon answered from that server, and that nothing is left running.
func TestDemo(t *testing.T) {
	testenv.RequireTool(t, "unbound", "unbound")
	testenv.RequireTool(t, "dig", "bind9-dnsutils")
	bin := delveBinary(t)
	out, stderr, code := runDemo(t, "-delve", bin)
	if code != 0 || stderr != "" {
		t.Fatalf("demo: exit %d, stderr:\n%s\nstdout:\n%s", code, stderr, out)
	}
	t.Logf("demo output:\n%s", out)

	s := startedIn(t, out, true)
	um, dm := unboundRE.FindStringSubmatch(out), daemonRE.FindStringSubmatch(out)
	ubAddr, ubPort, ca := um[2], um[3], um[4]
	socket, listen, listenPort := dm[2], dm[3], dm[4]
	if filepath.Dir(socket) != s.dir {
		t.Errorf("the socket %s is not in the demo's directory %s", socket, s.dir)
	}

	// 1. The delve command, straight to unbound: a.delve.test's A and AAAA.
	got := linesAfter(t, out, "$ "+bin+" @"+ubAddr+"#dot.delve.test --ca "+ca+" a.delve.test", 2)
	if got[0] != testenv.AddrA || got[1] != testenv.AddrAAAA {
		t.Errorf("delve a.delve.test printed %q, want %s and %s", got, testenv.AddrA, testenv.AddrAAAA)
	}

	// 2. The UCI file points the daemon at that unbound, with the listener it reported.
	for _, want := range []string{"\toption port '" + ubPort + "'", "\tlist listen '" + listen + "'", "\toption ca_file '" + ca + "'", "\toption socket '" + socket + "'"} {
		if !strings.Contains(out, "\n"+want+"\n") {
			t.Errorf("the UCI file shown lacks %q", want)
		}
	}

	// 3. JSON-RPC: the reply is delve.test's MX, answered by the loopback upstream.
	var reply struct {
		ID     int        `json:"id"`
		Result api.Lookup `json:"result"`
	}
	req := linesAfter(t, out, "> "+`{"jsonrpc":"2.0","id":1,"method":"lookup","params":{"name":"delve.test","type":"MX"}}`, 1)[0]
	if err := json.Unmarshal([]byte(strings.TrimPrefix(req, "< ")), &reply); err != nil || !strings.HasPrefix(req, "< ") {
		t.Fatalf("JSON-RPC reply %q: %v", req, err)
	}
	l := reply.Result
	if reply.ID != 1 || l.Rcode != "NOERROR" || l.Upstream != upstreamName || l.Cached || len(l.Answers) != 1 || l.Answers[0].Data != testenv.MXData {
		t.Errorf("JSON-RPC lookup: %+v, want the MX %q from %s, not cached", reply, testenv.MXData, upstreamName)
	}

	// 4. dig through the listener: multi.delve.test's four A records, in the zone's order.
	got = linesAfter(t, out, "$ dig @127.0.0.1 -p "+listenPort+" +noall +answer multi.delve.test", len(testenv.MultiAddrs))
	for i, line := range got {
		f := strings.Fields(line)
		if len(f) != 5 || f[0] != testenv.NameMulti || f[2] != "IN" || f[3] != "A" || f[4] != testenv.MultiAddrs[i] {
			t.Errorf("dig line %d: %q, want multi.delve.test. TTL IN A %s", i, line, testenv.MultiAddrs[i])
		}
	}

	// 5. delve status: the loopback upstream, up, asked twice (the MX and the A above; the
	// first step went around the daemon), one JSON-RPC lookup and one DNS query.
	status := out[strings.Index(out, "$ "+bin+" status --config "+filepath.Join(s.dir, "delve")):]
	row := regexp.MustCompile(`(?m)^loopback +` + regexp.QuoteMeta(ubAddr) + ` +up +[0-9.]+ ms +2 +0 +-$`)
	for _, re := range []*regexp.Regexp{row, regexp.MustCompile(`(?m)^lookups +1 \(0 failed\)$`),
		regexp.MustCompile(`(?m)^dns +1 query \(1 udp, 0 tcp\) on ` + regexp.QuoteMeta(listen) + `: 1 answered`)} {
		if !re.MatchString(status) {
			t.Errorf("delve status does not match %s:\n%s", re, status)
		}
	}
	checkStopped(t, out, s)
}

// TestDemoInterrupted: Ctrl-C (SIGINT) while everything runs (-wait) stops it all.
func TestDemoInterrupted(t *testing.T) {
	testenv.RequireTool(t, "unbound", "unbound")
	bin := delveBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := demoCmd(ctx, "-delve", bin, "-wait")
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sc := bufio.NewScanner(pipe)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "Ctrl-C stops both") {
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
		}
	}
	code := exitCode(t, cmd.Wait())
	if code != 130 || !strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("demo after SIGINT: exit %d, stderr %q; want 130\n%s", code, stderr.String(), out.String())
	}
	s := startedIn(t, out.String(), true)
	checkStopped(t, out.String(), s)
}

// TestDemoFailureStopsUnbound: a step that fails (a delve that cannot run) ends the demo with
// exit 1 and the command that failed, and unbound is stopped all the same.
func TestDemoFailureStopsUnbound(t *testing.T) {
	testenv.RequireTool(t, "unbound", "unbound")
	broken := filepath.Join(t.TempDir(), "delve")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\necho 'this delve is broken' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runDemo(t, "-delve", broken)
	if code != 1 || !strings.Contains(stderr, "demo: running "+broken+" @127.0.0.1:") || !strings.Contains(stdout, "this delve is broken") {
		t.Fatalf("demo with a broken delve: exit %d, stderr %q\n%s", code, stderr, stdout)
	}
	s := startedIn(t, stdout, false)
	checkStopped(t, stdout, s)
}
