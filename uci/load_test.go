package uci

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeConfig writes text as a file named delve in a fresh directory and returns its path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "delve")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Two SHA-256 SPKI pins: of an empty key, and all zero bytes.
const (
	pinA = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
	pinB = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
)

// designExample is the example of DESIGN.md, comments and empty values included.
const designExample = `config delve 'main'
	option enabled '1'
	list type 'A'
	list type 'AAAA'
	option timeout '3000'            # ms for a whole lookup
	option strategy 'failover'       # failover | round_robin | fastest
	option cache_size '1024'         # entries; 0 = no cache
	option socket '/var/run/delve/delve.sock'
	option websocket ''              # host:port, empty = off
	option websocket_token ''        # required when websocket is not on loopback
	list listen '127.0.0.1:5453'     # plain DNS for dnsmasq (UDP+TCP); none = off
	option ca_file ''                # empty = system roots
	option log_level 'info'

config upstream 'cloudflare'
	option address '1.1.1.1'
	option port '853'
	option tls_name 'cloudflare-dns.com'
	list pin ''                      # optional sha256 SPKI pins, base64
	option enabled '1'
`

// afterUCISet is designExample after
//
//	uci set delve.main.strategy='round_robin'
//	uci add_list delve.main.listen='[::1]:5453'
//	uci del_list delve.main.type='AAAA'
//	uci add delve upstream
//	uci set delve.@upstream[-1].address='9.9.9.9'
//	uci set delve.@upstream[-1].tls_name='dns.quad9.net'
//	uci set delve.main.websocket_token="it's-a-secret"
//	uci commit delve
//
// as libuci writes it (uci_export_package): comments gone, the empty options gone (libuci never
// stored them), an updated option moved to the end of its section, the empty pin kept, the new
// section anonymous, an embedded quote as '\”.
const afterUCISet = `
config delve 'main'
	option enabled '1'
	list type 'A'
	option timeout '3000'
	option cache_size '1024'
	option socket '/var/run/delve/delve.sock'
	list listen '127.0.0.1:5453'
	list listen '[::1]:5453'
	option log_level 'info'
	option strategy 'round_robin'
	option websocket_token 'it'\''s-a-secret'

config upstream 'cloudflare'
	option address '1.1.1.1'
	option port '853'
	option tls_name 'cloudflare-dns.com'
	list pin ''
	option enabled '1'

config upstream
	option address '9.9.9.9'
	option tls_name 'dns.quad9.net'

`

// builtByUCI is what an empty file becomes after
//
//	uci set delve.main=delve
//	uci set delve.main.timeout='2000'
//	uci add_list delve.main.listen='127.0.0.1:5453'
//	uci add delve upstream
//	uci set delve.@upstream[0].address='9.9.9.9'
//	uci set delve.@upstream[0].tls_name='dns.quad9.net'
//	uci add_list delve.@upstream[0].pin='sha256/<pinA>'
//	uci add delve upstream
//	uci set delve.@upstream[1].address='2620:fe::fe'
//	uci set delve.@upstream[1].port='853'
//	uci add_list delve.@upstream[1].pin='<pinB>'
//	uci set delve.@upstream[1].enabled='0'
//	uci commit delve
const builtByUCI = `
config delve 'main'
	option timeout '2000'
	list listen '127.0.0.1:5453'

config upstream
	option address '9.9.9.9'
	option tls_name 'dns.quad9.net'
	list pin 'sha256/` + pinA + `'

config upstream
	option address '2620:fe::fe'
	option port '853'
	list pin '` + pinB + `'
	option enabled '0'

`

// handWritten uses what a person may type: double quotes, bare words, short keywords, `;`,
// escapes, an anonymous main section, stubby's pin form and odd spacing.
const handWritten = `# my resolver
package delve

c delve
  o timeout 1500 ; o strategy "fastest"
  option type "a aaaa mx"      # one value, split like uci's shell functions do
  list listen 127.0.0.1:5453
  list listen "[::1]:5453"
  option log_level warning
  option websocket 198.51.100.1:8053
  option websocket_token "s3cr\"et"

config upstream quad9
	option address 2620:fe:0:0:0:0:0:fe
	option tls_name DNS.Quad9.NET.
	l pin sha256/` + pinA + `
	l pin ` + pinA + `
`

func TestLoadGoodFiles(t *testing.T) {
	cloudflare := Upstream{Name: "cloudflare", Address: "1.1.1.1", Port: 853, TLSName: "cloudflare-dns.com", Enabled: true}
	tests := []struct {
		name   string
		text   string
		copied bool // go-uci needs the normalized copy
		want   func(c *Config)
	}{
		{name: "DESIGN.md example", text: designExample, copied: true, want: func(c *Config) {
			c.Listen = []string{"127.0.0.1:5453"}
			c.Upstreams = []Upstream{cloudflare}
		}},
		{name: "after uci set, add_list, del_list, add", text: afterUCISet, copied: true, want: func(c *Config) {
			c.Types = []string{"A"}
			c.Strategy = StrategyRoundRobin
			c.Listen = []string{"127.0.0.1:5453", "[::1]:5453"}
			c.WebSocketToken = "it's-a-secret"
			c.Upstreams = []Upstream{cloudflare,
				{Name: "@upstream[1]", Address: "9.9.9.9", Port: 853, TLSName: "dns.quad9.net", Enabled: true}}
		}},
		{name: "built by uci commands", text: builtByUCI, want: func(c *Config) {
			c.Timeout = 2 * time.Second
			c.Listen = []string{"127.0.0.1:5453"}
			c.Upstreams = []Upstream{
				{Name: "@upstream[0]", Address: "9.9.9.9", Port: 853, TLSName: "dns.quad9.net", Pins: []string{pinA}, Enabled: true},
				{Name: "@upstream[1]", Address: "2620:fe::fe", Port: 853, Pins: []string{pinB}, Enabled: false},
			}
		}},
		{name: "hand-written", text: handWritten, copied: true, want: func(c *Config) {
			c.Timeout = 1500 * time.Millisecond
			c.Strategy = StrategyFastest
			c.Types = []string{"A", "AAAA", "MX"}
			c.Listen = []string{"127.0.0.1:5453", "[::1]:5453"}
			c.LogLevel = slog.LevelWarn
			c.WebSocket = "198.51.100.1:8053"
			c.WebSocketToken = `s3cr"et`
			c.Upstreams = []Upstream{{Name: "quad9", Address: "2620:fe::fe", Port: 853, TLSName: "dns.quad9.net", Pins: []string{pinA}, Enabled: true}}
		}},
		{name: "minimal: one upstream, main's defaults", text: "config upstream 'u'\n\toption address '1.1.1.1'\n\toption tls_name 'one.one.one.one'\n", want: func(c *Config) {
			c.Upstreams = []Upstream{{Name: "u", Address: "1.1.1.1", Port: 853, TLSName: "one.one.one.one", Enabled: true}}
		}},
		{name: "every option", text: `
config delve 'main'
	option enabled 'no'
	list type 'TYPE65'
	list type 'aaaa'
	list type 'A'
	list type 'AAAA'
	option timeout '100'
	option strategy 'round_robin'
	option cache_size '0'
	option threads '0'
	option socket '/tmp/d.sock'
	option websocket '[::1]:8053'
	list listen 'none'
	option ca_file '/etc/ssl/certs/ca-certificates.crt'
	option log_level 'debug'
	option dnsmasq 'enabled'
	list trigger 'wan'
	list trigger 'wan6'
	option ubus 'native'
	option ubus_socket '/tmp/ubus.sock'

config upstream 'a'
	option address '127.0.0.1'
	option port '10853'
	list pin '` + pinA + `'
	option enabled 'on'
`, want: func(c *Config) {
			c.Enabled = false
			c.Types = []string{"HTTPS", "AAAA", "A"}
			c.Timeout = 100 * time.Millisecond
			c.Strategy = StrategyRoundRobin
			c.CacheSize = 0
			c.Threads = 0
			c.Socket = "/tmp/d.sock"
			c.WebSocket = "[::1]:8053"
			c.CAFile = "/etc/ssl/certs/ca-certificates.crt"
			c.LogLevel = slog.LevelDebug
			c.DNSMasq = true
			c.Triggers = []string{"wan", "wan6"}
			c.Ubus = UbusNative
			c.UbusSocket = "/tmp/ubus.sock"
			c.Upstreams = []Upstream{{Name: "a", Address: "127.0.0.1", Port: 10853, Pins: []string{pinA}, Enabled: true}}
		}},
		{name: "upper limits", text: "config delve 'main'\n\toption timeout '60000'\n\toption cache_size '1000000'\n\toption cache_memory '1G'\n\toption threads '64'\n" +
			"config upstream 'u'\n\toption address '::1'\n\toption port '65535'\n\toption tls_name 'localhost'\n", want: func(c *Config) {
			c.Timeout = time.Minute
			c.CacheSize = 1000000
			c.CacheMemory = 1 << 30
			c.Threads = 64
			c.Upstreams = []Upstream{{Name: "u", Address: "::1", Port: 65535, TLSName: "localhost", Enabled: true}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.text)
			before := time.Now()
			got, err := Load(path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got.File != path || got.LoadedAt.Before(before) {
				t.Errorf("File %q LoadedAt %v; want %q, after %v", got.File, got.LoadedAt, path, before)
			}
			if len(got.Warnings) > 0 {
				t.Errorf("warnings: %q", got.Warnings)
			}
			want := Default()
			tt.want(want)
			want.File, want.LoadedAt, want.Warnings = got.File, got.LoadedAt, got.Warnings
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", *got, *want)
			}

			// Which way go-uci read it: the file itself, or the normalized copy.
			raw, err := parseUCI([]byte(tt.text))
			if err != nil {
				t.Fatal(err)
			}
			_, copied, cleanup, err := loadTree(path, "delve", raw)
			if err != nil {
				t.Fatal(err)
			}
			cleanup()
			if copied != tt.copied {
				t.Errorf("normalized copy used: %v, want %v", copied, tt.copied)
			}
		})
	}
}

// TestLoadShippedConfig loads the configuration the package installs.
func TestLoadShippedConfig(t *testing.T) {
	path := filepath.Join("..", "files", "delve.config")
	if _, err := os.Stat(path); err != nil {
		t.Skip("no files/delve.config:", err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(c.Warnings) > 0 {
		t.Errorf("warnings (options the loader does not know): %q", c.Warnings)
	}
	if len(c.EnabledUpstreams()) == 0 {
		t.Errorf("no enabled upstream")
	}
}

func TestLoadWarnings(t *testing.T) {
	const up = "\nconfig upstream 'u'\n\toption address '1.1.1.1'\n\toption tls_name 'one.one.one.one'\n"
	tests := []struct {
		name, text string
		want       []string
	}{
		{name: "unknown option", text: "config delve 'main'\n\toption foo 'bar'\n\tlist baz ''\n" + up,
			want: []string{"delve.main.foo: unknown option, ignored", "delve.main.baz: unknown option, ignored"}},
		{name: "unknown option in an anonymous section", text: "config delve\n\toption foo 'bar'\n" + up,
			want: []string{"delve.@delve[0].foo: unknown option, ignored"}},
		{name: "stubby's option names", text: up + "\toption tls_auth_name 'x.example'\n\toption tls_port '853'\n\tlist spki 'x'\n",
			want: []string{
				"delve.u.tls_auth_name: unknown option, ignored (delve calls it tls_name)",
				"delve.u.tls_port: unknown option, ignored (delve calls it port)",
				"delve.u.spki: unknown option, ignored (delve calls it pin)",
			}},
		{name: "unknown section types", text: "config resolver\n\toption address '1.1.1.1'\nconfig stubby 'global'\n" + up,
			want: []string{`delve.@resolver[0]: unknown section type "resolver", ignored`, `delve.global: unknown section type "stubby", ignored`}},
		{name: "second delve section", text: "config delve 'main'\nconfig delve 'other'\n" + up,
			want: []string{"delve.other: second delve section, ignored (the settings go in config delve 'main')"}},
		{name: "named delve section that is not main", text: "config delve 'settings'\n\toption timeout '99'\n" + up,
			want: []string{"delve.settings: delve section not named main, ignored (the settings go in config delve 'main')"}},
		{name: "anonymous delve section after main", text: "config delve 'main'\nconfig delve\n" + up,
			want: []string{"delve.@delve[1]: second delve section, ignored (the settings go in config delve 'main')"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeConfig(t, tt.text))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !reflect.DeepEqual(c.Warnings, tt.want) {
				t.Errorf("warnings\n%q\nwant\n%q", c.Warnings, tt.want)
			}
		})
	}
}

func TestLoadFileErrors(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	garbage := make([]byte, 512)
	for i := range garbage {
		garbage[i] = byte(i * 7)
	}
	tests := []struct {
		name, path, want string
		is               error
	}{
		{name: "missing", path: filepath.Join(dir, "missing"), want: filepath.Join(dir, "missing") + ": no such file", is: fs.ErrNotExist},
		{name: "empty", path: write("empty", nil), want: filepath.Join(dir, "empty") + ": is empty"},
		{name: "only comments", path: write("comments", []byte("# delve\n\n")), want: filepath.Join(dir, "comments") + ": holds no config section (only comments or blank lines)"},
		{name: "binary", path: write("binary", garbage), want: filepath.Join(dir, "binary") + ": is not a UCI text file (it holds binary data)"},
		{name: "text garbage", path: write("text", []byte("{\"json\": true}\n")), want: filepath.Join(dir, "text") + `:1: invalid command "{\"json\":" (a line starts with config, option, list or package)`},
		{name: "too large", path: write("large", []byte(strings.Repeat("# x\n", maxFileSize/4+1))), want: filepath.Join(dir, "large") + ": is too large for a UCI file (over 64 KiB)"},
		{name: "too many sections", path: write("sections", []byte(strings.Repeat("config upstream\n", maxSections+1))), want: filepath.Join(dir, "sections") + ": has 257 sections, more than the 256 delve reads"},
		{name: "directory", path: dir, want: dir + ": is a directory, not a UCI file"},
		{name: "fifo", path: fifo, want: fifo + ": is not a regular file"},
		{name: "syntax error names the line", path: write("syntax", []byte("config delve 'main'\n\toption timeout '3000\n")), want: filepath.Join(dir, "syntax") + ":2: the ' quote opened on this line is never closed"},
		{name: "value go-uci cannot take", path: write("multiline", []byte("config delve 'main'\n\toption websocket_token 'a\nb'\nconfig upstream 'u'\n\toption address '1.1.1.1'\n\toption tls_name 'x.example'\n")),
			want: "multiline.main.websocket_token: the value on line 2 cannot be passed to go-uci, the UCI library delve uses (it spans lines)"},
	}
	if os.Geteuid() != 0 { // root reads a file whatever its mode
		tests = append(tests, struct {
			name, path, want string
			is               error
		}{name: "unreadable", path: write("unreadable", []byte("config delve 'main'\n")), want: filepath.Join(dir, "unreadable") + ": cannot be read (permission denied)", is: fs.ErrPermission})
		if err := os.Chmod(filepath.Join(dir, "unreadable"), 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.path)
			if err == nil {
				t.Fatalf("loaded %+v", c)
			}
			if err.Error() != tt.want {
				t.Errorf("error %q\nwant  %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("error %T is not an *Error", err)
			}
		})
	}
}
