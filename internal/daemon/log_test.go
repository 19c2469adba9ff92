package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/testenv"
)

// TestLogLevelsByStream: procd logs a daemon's stdout as daemon.info and its stderr as
// daemon.err, so info lines go to Stdout and warnings and errors to Stderr, each line whole on
// its own stream: `logread -e delve` on a healthy router shows no err line.
func TestLogLevelsByStream(t *testing.T) {
	// A port nobody listens on: every dial is refused, and two failures mark it down (a warning).
	port := testenv.DeadPort(t)
	dir := t.TempDir()
	socket := filepath.Join(dir, "delve.sock")
	path := filepath.Join(dir, "delve")
	text := fmt.Sprintf("config delve 'main'\n\toption timeout '500'\n\toption socket '%s'\n\n"+
		"config upstream 'refused'\n\toption address '127.0.0.1'\n\toption port '%d'\n\toption tls_name 'dot.delve.test'\n", socket, port)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr testenv.SyncBuffer
	d, err := New(Options{Config: path, Stdout: &stdout, Stderr: &stderr, Signals: make(chan os.Signal, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	cl := dial(t, socket)
	for i := range 3 {
		if err := call(t, cl, "lookup", map[string]any{"name": fmt.Sprintf("n%d.delve.test", i)}, nil); err == nil {
			t.Fatal("a lookup through a refused upstream succeeded")
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the daemon did not stop")
	}
	out, errs := stdout.String(), stderr.String()
	if !strings.Contains(out, `level=INFO msg="delve serving"`) || !strings.Contains(out, `msg="shutting down"`) {
		t.Errorf("stdout lacks the info lines:\n%s", out)
	}
	if !strings.Contains(errs, `level=WARN msg="upstream down"`) {
		t.Errorf("stderr lacks the upstream-down warning:\n%s", errs)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(line, "level=INFO ") && !strings.HasPrefix(line, "level=DEBUG ") {
			t.Errorf("stdout has a line that is not info or debug: %q", line)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(errs), "\n") {
		if !strings.HasPrefix(line, "level=WARN ") && !strings.HasPrefix(line, "level=ERROR ") {
			t.Errorf("stderr has a line that is not a warning or error: %q", line)
		}
	}
}
