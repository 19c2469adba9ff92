package faults

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/daemon"
	"github.com/delvedns/delve/internal/json"
	"github.com/delvedns/delve/internal/testenv"
	"github.com/delvedns/delve/uci"
)

// The control commands (delve status, flush, reload) of the real binary against a real daemon.

// runDelve runs the real binary with args and returns what it printed and its exit status.
func runDelve(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, delveBinary(t, ""), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("delve %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), e.String(), code
}

// controlDaemon is a daemon on one test unbound, with its socket and UCI file.
func controlDaemon(t *testing.T, opts testenv.UnboundOptions) (*proc, *conf, *testenv.Unbound) {
	t.Helper()
	ub := testenv.UnboundT(t, opts)
	c := newConf(t)
	c.addUnbound("loop", ub)
	return serve(t, c, serveOptions{}), c, ub
}

// tableLine returns the line of out that starts with prefix.
func tableLine(t *testing.T, out, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	t.Fatalf("no line starting with %q in:\n%s", prefix, out)
	return ""
}

// TestControlStatusTable: the table of `delve status` shows the numbers of the status object,
// which `delve status --json` prints, right after it with no lookup in between, and those are
// the lookups this test made.
func TestControlStatusTable(t *testing.T) {
	p, c, ub := controlDaemon(t, testenv.UnboundOptions{})
	cl := p.client(t)
	for _, name := range []string{"a.delve.test", "a.delve.test", "missing.delve.test"} {
		if _, _, err := lookup(cl, name, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := call(cl, "lookup", map[string]string{"name": "a.delve.test", "upstream": "nope"}, nil); codeOf(err) != "bad_request" {
		t.Fatalf("lookup via an unknown upstream: %v, want bad_request", err)
	}

	table, stderr, code := runDelve(t, "status", "--socket", c.socket)
	if code != 0 || stderr != "" {
		t.Fatalf("delve status: exit %d, stderr %q", code, stderr)
	}
	js, stderr, code := runDelve(t, "status", "--socket", c.socket, "--json")
	if code != 0 || stderr != "" {
		t.Fatalf("delve status --json: exit %d, stderr %q", code, stderr)
	}
	var st daemon.Status
	if err := json.Unmarshal([]byte(js), &st); err != nil {
		t.Fatalf("delve status --json: %v\n%s", err, js)
	}
	t.Logf("delve status:\n%s", table)

	// What this test did: 4 lookups, the one via an unknown upstream failed; a.delve.test
	// missed, then hit; missing.delve.test missed. Both misses are cached.
	if st.Lookups != 4 || st.Failures != 1 || st.Cache.Hits != 1 || st.Cache.Misses != 2 || st.Cache.Entries != 2 {
		t.Fatalf("status: lookups %d (%d failed), cache hits %d misses %d entries %d; want 4 (1), 1, 2, 2",
			st.Lookups, st.Failures, st.Cache.Hits, st.Cache.Misses, st.Cache.Entries)
	}
	if got := tableLine(t, table, "delve "); !strings.HasPrefix(got, "delve "+st.Version+", up ") {
		t.Errorf("header %q does not name version %q", got, st.Version)
	}
	if got := tableLine(t, table, "config "); !strings.Contains(got, c.path()) || !strings.Contains(got, "strategy failover") || !strings.Contains(got, "timeout 2000 ms") {
		t.Errorf("config line %q: want the file %s, strategy failover, timeout 2000 ms", got, c.path())
	}
	if len(st.Upstreams) != 1 {
		t.Fatalf("status has %d upstreams, want 1", len(st.Upstreams))
	}
	u := st.Upstreams[0]
	cols := regexp.MustCompile(`\s{2,}`).Split(tableLine(t, table, "loop "), -1)
	want := []string{"loop", ub.Addr(), "up", strconv.FormatFloat(u.SRTTms, 'f', -1, 64) + " ms",
		strconv.FormatUint(u.Queries, 10), strconv.FormatUint(u.Failures, 10), "-"}
	if strings.Join(cols, "|") != strings.Join(want, "|") {
		t.Errorf("upstream row %q, want %q", cols, want)
	}
	if u.Queries != 2 || u.Failures != 0 || !u.Healthy {
		t.Errorf("upstream: queries %d, failures %d, healthy %v; want 2, 0, true", u.Queries, u.Failures, u.Healthy)
	}
	cache := tableLine(t, table, "cache ")
	for _, s := range []string{
		"2 entries (at most " + strconv.Itoa(st.Cache.Size) + ")",
		"hit rate 33.3 % (1 hits, 2 misses)",
		strconv.FormatUint(st.Cache.Prefetches, 10) + " prefetches",
	} {
		if !strings.Contains(cache, s) {
			t.Errorf("cache line %q lacks %q", cache, s)
		}
	}
	m := regexp.MustCompile(`, ([0-9.]+) KiB \(at most 4\.0 MiB\)`).FindStringSubmatch(cache)
	if m == nil {
		t.Fatalf("cache line %q: no bytes in KiB of at most 4.0 MiB", cache)
	}
	if kib, _ := strconv.ParseFloat(m[1], 64); st.Cache.Memory != 4<<20 || kib*1024 < float64(st.Cache.Bytes)-52 || kib*1024 > float64(st.Cache.Bytes)+52 {
		t.Errorf("cache line says %s KiB of 4.0 MiB, status says %d of %d bytes", m[1], st.Cache.Bytes, st.Cache.Memory)
	}
	if got := tableLine(t, table, "lookups "); got != "lookups   4 (1 failed)" {
		t.Errorf("lookups line %q, want %q", got, "lookups   4 (1 failed)")
	}
	threads := strconv.Itoa(st.Process.Threads) + " thread"
	if st.Process.Threads != 1 {
		threads += "s"
	}
	if got := tableLine(t, table, "memory "); !regexp.MustCompile(`^memory +[0-9.]+ MiB RSS \(peak [0-9.]+ MiB\), [0-9.]+ [KM]iB Go heap, \d+ goroutines on ` + threads + `, \d+ open files$`).MatchString(got) {
		t.Errorf("memory line %q, want %s", got, threads)
	}
}

// TestControlFlush: delve flush says how many answers it dropped, and the cache is empty after.
func TestControlFlush(t *testing.T) {
	p, c, _ := controlDaemon(t, testenv.UnboundOptions{})
	cl := p.client(t)
	for _, name := range []string{"a.delve.test", "missing.delve.test", "multi.delve.test"} {
		if _, _, err := lookup(cl, name, ""); err != nil {
			t.Fatal(err)
		}
	}
	if n := status(t, cl).Cache.Entries; n != 3 {
		t.Fatalf("%d cache entries before the flush, want 3", n)
	}
	out, stderr, code := runDelve(t, "flush", "--socket", c.socket)
	if code != 0 || out != "flushed 3 cached answers\n" || stderr != "" {
		t.Fatalf("delve flush: exit %d, stdout %q, stderr %q; want 0, %q", code, out, stderr, "flushed 3 cached answers\n")
	}
	table, _, code := runDelve(t, "status", "--socket", c.socket)
	if code != 0 || !strings.HasPrefix(tableLine(t, table, "cache "), "cache     0 entries") {
		t.Fatalf("delve status after the flush: exit %d\n%s", code, table)
	}
	l, _, err := lookup(cl, "a.delve.test", "")
	if err != nil || l.Cached {
		t.Fatalf("a.delve.test after the flush: cached %v, %v; want a miss", l.Cached, err)
	}
}

// TestControlRedial: delve redial drops the upstream's connection; the next lookup opens another.
func TestControlRedial(t *testing.T) {
	p, c, _ := controlDaemon(t, testenv.UnboundOptions{})
	cl := p.client(t)
	if _, _, err := lookup(cl, "a.delve.test", ""); err != nil {
		t.Fatal(err)
	}
	before := status(t, cl).Upstreams[0]
	if before.ConnsOpened != 1 {
		t.Fatalf("%d connections opened before the redial, want 1", before.ConnsOpened)
	}
	out, stderr, code := runDelve(t, "redial", "--socket", c.socket)
	if want := "redialed 1 upstream: connections dropped, failures forgotten\n"; code != 0 || out != want || stderr != "" {
		t.Fatalf("delve redial: exit %d, stdout %q, stderr %q; want 0, %q", code, out, stderr, want)
	}
	if _, _, err := lookup(cl, "multi.delve.test", ""); err != nil {
		t.Fatal(err)
	}
	if after := status(t, cl).Upstreams[0]; after.ConnsOpened != 2 {
		t.Fatalf("%d connections opened after the redial and a lookup, want 2", after.ConnsOpened)
	}
}

// TestControlReload: a good file is reloaded (the socket taken from it); a bad one is refused
// with its error and exit 2, and the daemon keeps serving with what it ran before.
func TestControlReload(t *testing.T) {
	p, c, _ := controlDaemon(t, testenv.UnboundOptions{})
	cl := p.client(t)
	c.main = []string{"option cache_size '77'"}
	c.write(t)
	out, stderr, code := runDelve(t, "reload", "--config", c.path())
	if want := "reloaded " + c.path() + ": 1 upstream\n"; code != 0 || out != want || stderr != "" {
		t.Fatalf("delve reload: exit %d, stdout %q, stderr %q; want 0, %q", code, out, stderr, want)
	}
	if n := status(t, cl).Cache.Size; n != 77 {
		t.Fatalf("cache size %d after the reload, want 77", n)
	}

	bad := strings.Replace(c.text(t), "option port '", "option port '99999", 1)
	if err := os.WriteFile(c.path(), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	// The socket is taken from the file that no longer loads (uci.MainSocket).
	out, stderr, code = runDelve(t, "reload", "--config", c.path())
	if code != 2 || out != "" || !strings.HasPrefix(stderr, "delve: reload refused, the running configuration stays: ") || !strings.Contains(stderr, `is not a port (1-65535)`) {
		t.Fatalf("delve reload of a bad file: exit %d, stdout %q, stderr %q; want 2 and the refusal", code, out, stderr)
	}
	if strings.Count(stderr, "\n") != 1 {
		t.Errorf("the refusal is not one line: %q", stderr)
	}
	l, _, err := lookup(cl, "a.delve.test", "A")
	if err != nil || len(l.Addresses) != 1 || l.Addresses[0] != testenv.AddrA {
		t.Fatalf("lookup after the refused reload: %+v, %v", l, err)
	}
	table, _, _ := runDelve(t, "status", "--socket", c.socket)
	if got := tableLine(t, table, "last reload refused: "); !strings.Contains(got, "is not a port") {
		t.Errorf("status after the refused reload: %q", got)
	}
}

// TestControlNoDaemon: without a daemon each command says so, naming the socket and how to
// start it, and exits 3: no socket file, a socket file nobody accepts on (left by a crash),
// and the socket named in the UCI file.
func TestControlNoDaemon(t *testing.T) {
	dir := shortDir(t)
	none := filepath.Join(dir, "none.sock")
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	conf := filepath.Join(dir, "delve")
	if err := os.WriteFile(conf, []byte("config delve 'main'\n\toption socket '"+none+"'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"status", "flush", "reload", "redial"} {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--socket", none}, "delve: the delve daemon is not running (there is no socket " + none + "): start it with /etc/init.d/delve start\n"},
			{[]string{"--config", conf}, "delve: the delve daemon is not running (there is no socket " + none + "): start it with /etc/init.d/delve start\n"},
			{[]string{"--socket", stale}, "delve: the delve daemon is not running (nothing accepts connections on " + stale + "): start it with /etc/init.d/delve start\n"},
		} {
			out, stderr, code := runDelve(t, append([]string{cmd}, tc.args...)...)
			if code != 3 || out != "" || stderr != tc.want {
				t.Errorf("delve %s %s: exit %d, stdout %q, stderr %q; want 3 and %q", cmd, strings.Join(tc.args, " "), code, out, stderr, tc.want)
			}
		}
	}
	// No flag: the socket of /etc/config/delve, else the default one.
	if _, err := os.Stat(uci.DefaultPath); err == nil {
		t.Logf("%s exists: not checking the default socket", uci.DefaultPath)
	} else if _, err := os.Stat(uci.DefaultSocket); err == nil {
		t.Logf("%s exists: not checking the default socket", uci.DefaultSocket)
	} else {
		_, stderr, code := runDelve(t, "status")
		if want := "delve: the delve daemon is not running (there is no socket " + uci.DefaultSocket + "): start it with /etc/init.d/delve start\n"; code != 3 || stderr != want {
			t.Errorf("delve status: exit %d, stderr %q; want 3 and %q", code, stderr, want)
		}
	}
	// Usage errors are 2, without asking any daemon.
	for _, args := range [][]string{{"status", "extra"}, {"flush", "--bogus"}, {"reload", "--config", filepath.Join(dir, "missing")}, {"status", "--socket"}} {
		_, stderr, code := runDelve(t, args...)
		if code != 2 || !strings.HasPrefix(stderr, "delve: ") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("delve %s: exit %d, stderr %q; want 2 and one line", strings.Join(args, " "), code, stderr)
		}
	}
}

// TestCommandWordsAreLookedUp: a name spelled like a command is looked up when written with a
// trailing dot or after --; help prints the usage.
func TestCommandWordsAreLookedUp(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{ExtraLocalData: []string{
		"status. 300 IN A 192.0.2.71",
		"flush. 300 IN A 192.0.2.72",
	}})
	server := "@" + ub.Addr() + "#" + ub.TLSName
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"status.", server, "--ca", ub.CAFile, "A"}, "192.0.2.71\n"},
		{[]string{"--ca", ub.CAFile, server, "--", "flush", "A"}, "192.0.2.72\n"},
	} {
		out, stderr, code := runDelve(t, tc.args...)
		if code != 0 || out != tc.want {
			t.Errorf("delve %s: exit %d, stdout %q, stderr %q; want 0 and %q", strings.Join(tc.args, " "), code, out, stderr, tc.want)
		}
	}
	usage, _, code := runDelve(t, "help")
	if code != 0 || !strings.HasPrefix(usage, "usage: delve [flags] NAME [TYPE...]\n") || !strings.Contains(usage, "delve status|flush|reload") {
		t.Errorf("delve help: exit %d\n%s", code, usage)
	}
	if out, _, code := runDelve(t, "--help"); code != 0 || out != usage {
		t.Errorf("delve --help: exit %d, not the same as delve help:\n%s", code, out)
	}
	if out, _, code := runDelve(t, "status", "--help"); code != 0 || !strings.HasPrefix(out, "usage: delve status|flush|reload") {
		t.Errorf("delve status --help: exit %d\n%s", code, out)
	}
}
