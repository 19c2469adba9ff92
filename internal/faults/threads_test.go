package faults

import (
	"flag"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/testenv"
)

// cpuDefault is the GOMAXPROCS Go gives a process of this machine by default (one per CPU,
// within a cgroup's CPU limit): this test process's own, unless -test.cpu or GOMAXPROCS changed
// it, else the CPU count.
func cpuDefault() int {
	if f := flag.Lookup("test.cpu"); os.Getenv("GOMAXPROCS") == "" && (f == nil || f.Value.String() == "") {
		return runtime.GOMAXPROCS(0)
	}
	return runtime.NumCPU()
}

// TestThreads: the real daemon runs Go code on main.threads threads (GOMAXPROCS), as status
// says: one by default, one per CPU for '0', changed by a reload, kept when a reload brings a
// bad value; and GOMAXPROCS in the environment wins over the option, with one log line.
func TestThreads(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	c := newConf(t)
	c.addUnbound("loop", ub)
	p := serve(t, c, serveOptions{env: []string{"GOMAXPROCS="}})
	cl := p.client(t)
	threads := func() int { t.Helper(); return status(t, cl).Process.Threads }
	if n := threads(); n != 1 {
		t.Fatalf("threads %d with main.threads unset, want 1", n)
	}
	table, _, _ := runDelve(t, "status", "--socket", c.socket)
	if got := tableLine(t, table, "memory "); !strings.Contains(got, " goroutines on 1 thread, ") {
		t.Errorf("delve status: %q does not say 1 thread", got)
	}
	reload := func(value string) error {
		t.Helper()
		c.main = nil
		if value != "" {
			c.main = []string{"option threads '" + value + "'"}
		}
		c.write(t)
		return call(cl, "reload", nil, nil)
	}
	for _, tc := range []struct {
		value string
		want  int
	}{{"2", 2}, {"0", cpuDefault()}, {"1", 1}, {"2", 2}} {
		if err := reload(tc.value); err != nil {
			t.Fatalf("reload to threads %q: %v", tc.value, err)
		}
		if n := threads(); n != tc.want {
			t.Fatalf("threads %d after a reload to threads %q, want %d", n, tc.value, tc.want)
		}
		if _, _, err := lookup(cl, "a.delve.test", "A"); err != nil {
			t.Fatalf("lookup on %d threads: %v", tc.want, err)
		}
	}
	const refusal = `delve.main.threads: "65" is not a number of threads (0-64; 0 is one per CPU)`
	if err := reload("65"); codeOf(err) != api.CodeConfig || !strings.Contains(err.Error(), refusal) {
		t.Fatalf("reload to threads '65': %v, want a config error saying %q", err, refusal)
	}
	if st := status(t, cl); st.Process.Threads != 2 || !strings.Contains(st.Config.LastReload, refusal) {
		t.Fatalf("after the refused reload: threads %d, last reload error %q; want 2 and the refusal", st.Process.Threads, st.Config.LastReload)
	}
	if p.count("GOMAXPROCS in the environment") != 0 {
		t.Errorf("the daemon says GOMAXPROCS is in its environment, where it is not:\n%s", p.log.String())
	}

	// A developer's or a benchmark's GOMAXPROCS wins at the start and at every reload.
	c2 := newConf(t)
	c2.addUnbound("loop", ub)
	c2.main = []string{"option threads '2'"}
	p2 := serve(t, c2, serveOptions{env: []string{"GOMAXPROCS=3"}})
	cl2 := p2.client(t)
	if n := status(t, cl2).Process.Threads; n != 3 {
		t.Fatalf("threads %d with GOMAXPROCS=3 and threads '2', want 3", n)
	}
	const wins = "GOMAXPROCS in the environment wins over main.threads"
	if n := p2.count(wins); n != 1 {
		t.Errorf("the log says %q %d times at the start, want once:\n%s", wins, n, p2.log.String())
	}
	c2.main = []string{"option threads '1'"}
	c2.write(t)
	if err := call(cl2, "reload", nil, nil); err != nil {
		t.Fatal(err)
	}
	if n := status(t, cl2).Process.Threads; n != 3 {
		t.Fatalf("threads %d after a reload to threads '1' with GOMAXPROCS=3, want 3", n)
	}
	if n := p2.count(wins); n != 2 {
		t.Errorf("the log says %q %d times after a reload that changed threads, want twice", wins, n)
	}
	if !strings.Contains(p2.log.String(), "threads="+strconv.Itoa(3)) {
		t.Errorf("the log does not name the threads in use (3):\n%s", p2.log.String())
	}
}
