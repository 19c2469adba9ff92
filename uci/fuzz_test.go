package uci

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gouci "github.com/digineo/go-uci/v2"
)

// FuzzLoad feeds Load arbitrary files. It must never panic; an error must name its place on
// every line and never be one of the "bug in delve" cross-checks; a loaded Config must hold
// only valid values. It also checks, for every file libuci would accept, that go-uci reads the
// normalized copy exactly as libuci reads the original.
func FuzzLoad(f *testing.F) {
	for _, s := range []string{
		designExample, afterUCISet, builtByUCI, handWritten,
		withMain("option websocket '198.51.100.1:8053'", "option websocket_token 'x'"),
		withUpstream(addr, name, "list pin 'sha256/"+pinA+"'", "option port '53'"),
		"config delve\n\to timeout 1000;o strategy fastest\nconfig upstream\n\toption address ::1\n\toption tls_name a.b\n",
		"config x m\n\toption a 'it'\\''s' \"q\\\"r\" \\\n\tb\n",
		"config upstream u\n\toption address '1.1.1.1'\n\toption tls_name 'a\nb'\n",
		"package delve\r\nconfig upstream 'u'\r\n\tlist pin ''\r\n",
		"\x89PNG\r\n\x1a\n\x00\x00",
		"",
		"c",
		"config delve main\n\toption a v;option b w\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "delve")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path)
		if err != nil {
			msg := err.Error()
			if strings.Contains(msg, "a bug in delve") {
				t.Fatalf("cross-check failed: %v", err)
			}
			for _, line := range strings.Split(msg, "\n") {
				if !strings.HasPrefix(line, path+":") && !strings.HasPrefix(line, "delve") {
					t.Fatalf("error line %q names no place", line)
				}
			}
		} else {
			checkConfig(t, c)
		}

		raw, err := parseUCI(data)
		if err != nil {
			return
		}
		text, err := normalized("delve", raw)
		if err != nil {
			return // a value go-uci cannot hold: Load says so
		}
		copyDir := filepath.Join(dir, "copy")
		if err := os.Mkdir(copyDir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(copyDir, "delve"), text, 0o600); err != nil {
			t.Fatal(err)
		}
		tree := gouci.NewTree(copyDir)
		if err := tree.LoadConfig("delve", true); err != nil {
			t.Fatalf("go-uci refuses the normalized copy: %v\n%s", err, text)
		}
		if diff := compareTree(tree, "delve", raw); diff != "" {
			t.Fatalf("go-uci reads the normalized copy differently: %s\n%s", diff, text)
		}
	})
}

// checkConfig checks what a loaded Config promises.
func checkConfig(t *testing.T, c *Config) {
	t.Helper()
	if c.Enabled && len(c.EnabledUpstreams()) == 0 {
		t.Fatal("enabled without an enabled upstream")
	}
	for _, u := range c.Upstreams {
		if _, err := netip.ParseAddr(u.Address); err != nil {
			t.Fatalf("upstream %s address %q", u.Name, u.Address)
		}
		if u.Port < 1 || u.Port > 65535 || u.Port == 53 {
			t.Fatalf("upstream %s port %d", u.Name, u.Port)
		}
		if u.TLSName == "" && len(u.Pins) == 0 {
			t.Fatalf("upstream %s has neither name nor pins", u.Name)
		}
	}
	if c.Timeout.Milliseconds() < minTimeoutMS || c.Timeout.Milliseconds() > maxTimeoutMS {
		t.Fatalf("timeout %v", c.Timeout)
	}
	if c.CacheSize < 0 || c.CacheSize > maxCacheSize {
		t.Fatalf("cache size %d", c.CacheSize)
	}
	if len(c.Types) == 0 {
		t.Fatal("no types")
	}
	if !filepath.IsAbs(c.Socket) {
		t.Fatalf("socket %q", c.Socket)
	}
	for _, l := range c.Listen {
		if _, ok := parseHostPort(l); !ok {
			t.Fatalf("listen %q", l)
		}
	}
	if c.WebSocket != "" {
		ap, ok := parseHostPort(c.WebSocket)
		if !ok || (!ap.Addr().Unmap().IsLoopback() && c.WebSocketToken == "") {
			t.Fatalf("websocket %q token %q", c.WebSocket, c.WebSocketToken)
		}
	}
}
