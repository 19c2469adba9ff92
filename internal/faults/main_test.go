package faults

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/daemon"
	"github.com/delvedns/delve/internal/jsonrpc/ws"
	"github.com/delvedns/delve/internal/testenv"
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
	testenv.RemoveBinaries()
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

// delveBinary is the real binary, built once per build time (see testenv.DelveBinary).
func delveBinary(t testing.TB, buildTime string) string { return testenv.DelveBinary(t, buildTime) }

func unixTime(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
