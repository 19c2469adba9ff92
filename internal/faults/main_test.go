package faults

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/daemon"
	"github.com/delvedns/delve/internal/jsonrpc/ws"
	"github.com/delvedns/delve/internal/upstream"
)

// A tuned daemon is this test binary started again with childEnv set to a configuration file:
// it runs `delve serve` as cmd/delve does, plus the daemon's Tune hook with the durations in
// tuneEnv ("idle=500ms,dial=1s"; wsrequest sets the WebSocket's RequestTimeout). The real binary cannot be tuned, and the fault tests need idle
// connections to close in well under the default 20 s to count what is left after the faults.
const (
	childEnv = "DELVE_FAULTS_DAEMON"
	tuneEnv  = "DELVE_FAULTS_TUNE"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		os.Exit(runChild(path, os.Getenv(tuneEnv)))
	}
	code := m.Run()
	binMu.Lock()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	binMu.Unlock()
	os.Exit(code)
}

// runChild is the tuned daemon: cmd/delve's serve with Options.Tune.
func runChild(path, tune string) int {
	var idle, dial, wsRequest time.Duration
	for _, kv := range strings.Split(tune, ",") {
		k, v, _ := strings.Cut(kv, "=")
		d, err := time.ParseDuration(v)
		if err != nil {
			continue
		}
		switch k {
		case "idle":
			idle = d
		case "dial":
			dial = d
		case "wsrequest":
			wsRequest = d
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := daemon.New(daemon.Options{Config: path, Tune: func(o *upstream.Options) {
		if idle > 0 {
			o.IdleTimeout = idle
		}
		if dial > 0 {
			o.DialTimeout = dial
		}
	}, TuneWS: func(o *ws.Options) {
		if wsRequest > 0 {
			o.RequestTimeout = wsRequest
		}
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "delve serve:", err)
		return 2
	}
	if err := d.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "delve serve:", err)
		return 1
	}
	return 0
}

var (
	binMu  sync.Mutex
	binDir string
	bins   = map[string]*binBuild{} // by build time ("" for none)
)

type binBuild struct {
	once sync.Once
	path string
	err  error
}

// delveBinary builds cmd/delve once per build time for the tests that run the real binary.
// buildTime, when set, is stamped as version.BuildTime (Unix seconds).
func delveBinary(t testing.TB, buildTime string) string {
	t.Helper()
	binMu.Lock()
	if binDir == "" {
		dir, err := os.MkdirTemp("", "delve-faults-bin")
		if err != nil {
			binMu.Unlock()
			t.Fatal(err)
		}
		binDir = dir
	}
	b := bins[buildTime]
	if b == nil {
		b = &binBuild{}
		bins[buildTime] = b
	}
	dir := binDir
	binMu.Unlock()
	b.once.Do(func() {
		b.path = filepath.Join(dir, "delve"+buildTime)
		args := []string{"build", "-o", b.path}
		if buildTime != "" {
			args = append(args, "-ldflags", "-X github.com/delvedns/delve/internal/version.BuildTime="+buildTime)
		}
		args = append(args, "github.com/delvedns/delve/cmd/delve")
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func unixTime(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
