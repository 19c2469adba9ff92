package ubus

import (
	"os"
	"path/filepath"
	"testing"
)

// TestFirstSocket: /var/run/ubus/ubus.sock where it exists (21.02 and later), else
// /var/run/ubus.sock where that exists (older releases), else the first, for the error to name.
func TestFirstSocket(t *testing.T) {
	dir := t.TempDir()
	newer, older := filepath.Join(dir, "ubus", "ubus.sock"), filepath.Join(dir, "ubus.sock")
	paths := []string{newer, older}
	if got := firstSocket(paths); got != newer {
		t.Fatalf("neither exists: %s", got)
	}
	if err := os.WriteFile(older, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := firstSocket(paths); got != older {
		t.Fatalf("only the older exists: %s", got)
	}
	if err := os.MkdirAll(filepath.Dir(newer), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(newer, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := firstSocket(paths); got != newer {
		t.Fatalf("both exist: %s", got)
	}
	if len(DefaultSockets) != 2 || DefaultSockets[0] != "/var/run/ubus/ubus.sock" || DefaultSockets[1] != "/var/run/ubus.sock" {
		t.Fatalf("DefaultSockets %q", DefaultSockets)
	}
}
