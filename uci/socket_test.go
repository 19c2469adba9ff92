package uci

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestMainSocket: the socket of a file that loads is Load's; a file that fails validation still
// gives its main.socket; without one, or with main elsewhere, DefaultSocket.
func TestMainSocket(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, text, want string
	}{
		{"loads", "config delve 'main'\n\toption socket '/tmp/a.sock'\n\nconfig upstream 'u'\n\toption address '1.1.1.1'\n\toption tls_name 'x.example'\n", "/tmp/a.sock"},
		{"invalid", "config delve 'main'\n\toption socket '/tmp/b.sock'\n\toption timeout 'soon'\n", "/tmp/b.sock"},
		{"anonymous", "config delve\n\toption socket '/tmp/c.sock'\n", "/tmp/c.sock"},
		{"main wins", "config delve 'other'\n\toption socket '/tmp/no.sock'\nconfig delve 'main'\n\toption socket '/tmp/d.sock'\n", "/tmp/d.sock"},
		{"named not main", "config delve 'other'\n\toption socket '/tmp/no.sock'\n", DefaultSocket},
		{"none", "config delve 'main'\n\toption timeout '1000'\n", DefaultSocket},
		{"upstreams only", "config upstream 'u'\n\toption address '1.1.1.1'\n", DefaultSocket},
	}
	for _, tc := range cases {
		path := filepath.Join(dir, tc.name)
		if err := os.WriteFile(path, []byte(tc.text), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := MainSocket(path)
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
		if c, err := Load(path); err == nil && c.Socket != got {
			t.Errorf("%s: Load says socket %q, MainSocket %q", tc.name, c.Socket, got)
		}
	}
	if _, err := MainSocket(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	bad := filepath.Join(dir, "syntax")
	if err := os.WriteFile(bad, []byte("config delve 'main'\n\toption socket 'unterminated\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := MainSocket(bad); err == nil {
		t.Errorf("a syntax error gave no error")
	}
}
