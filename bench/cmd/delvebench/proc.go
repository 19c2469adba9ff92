package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopTimeout bounds how long a child may take to exit after SIGTERM before it is killed.
const stopTimeout = 5 * time.Second

// proc is one long-running child: a daemon under test or the upstream's neighbour.
type proc struct {
	name string
	// grace is how long stop waits after SIGTERM before SIGKILL; zero means stopTimeout.
	grace time.Duration
	cmd   *exec.Cmd
	done  chan struct{}
	out   *lockedBuffer
}

// children are every proc started and not yet stopped, so that an early exit stops them all.
var children = struct {
	sync.Mutex
	m map[*proc]struct{}
}{m: map[*proc]struct{}{}}

// startProc starts argv with its output kept in memory (for error messages).
func startProc(name string, env []string, dir string, argv ...string) (*proc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// The kernel kills the child if the bench dies without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), out: out}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	children.Lock()
	children.m[p] = struct{}{}
	children.Unlock()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, and SIGKILL after the grace period.
func (p *proc) stop() {
	children.Lock()
	delete(children.m, p)
	children.Unlock()
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(cmp.Or(p.grace, stopTimeout)):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// stopAll stops every child still running.
func stopAll() {
	children.Lock()
	ps := make([]*proc, 0, len(children.m))
	for p := range children.m {
		ps = append(ps, p)
	}
	children.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop() }()
	}
	wg.Wait()
}

// output returns the last 2 KB the child printed.
func (p *proc) output() string {
	s := p.out.String()
	if len(s) > 2048 {
		s = s[len(s)-2048:]
	}
	return s
}

// waitReady polls ready until it succeeds, the child exits or the timeout passes.
func (p *proc) waitReady(ctx context.Context, timeout time.Duration, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if last = ready(ctx); last == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %s", p.name, p.output())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v: %v; its output: %s", p.name, timeout, last, p.output())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 {
		l.b.Reset() // a chatty child must not grow the bench's memory
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// usage is what /proc says about a process at one moment.
type usage struct {
	cpu  time.Duration // utime + stime
	rss  int64         // VmRSS, bytes
	anon int64         // RssAnon: the part that is the process's own memory (heap, stacks)
	file int64         // RssFile: the part that is pages of the binary and libraries (clean, shared)
	hwm  int64         // VmHWM, bytes: the peak RSS since start (or since resetPeak)
}

// clkTck is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100 on every Linux
// architecture Go supports.
const clkTck = 100

func readUsage(pid int) (usage, error) {
	var u usage
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// The command name (field 2) may hold spaces: count fields after its closing parenthesis.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return u, errors.New("unexpected /proc/PID/stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return u, errors.New("short /proc/PID/stat")
	}
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	u.cpu = time.Duration(ut+st) * time.Second / clkTck
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch k {
		case "VmRSS":
			u.rss = kB(v)
		case "VmHWM":
			u.hwm = kB(v)
		case "RssAnon":
			u.anon = kB(v)
		case "RssFile":
			u.file = kB(v)
		}
	}
	return u, nil
}

func kB(v string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
	return n * 1024
}

// resetPeak sets VmHWM back to the current RSS (clear_refs value 5, Linux 4.0 and later), so that
// the next reading is the peak of what follows, not of the process's whole life.
func resetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}
