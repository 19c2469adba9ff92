package uci

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// withMain is a file whose main section holds lines, beside a good upstream.
func withMain(lines ...string) string {
	var b strings.Builder
	b.WriteString("config delve 'main'\n")
	for _, l := range lines {
		b.WriteString("\t" + l + "\n")
	}
	b.WriteString("\nconfig upstream 'cloudflare'\n\toption address '1.1.1.1'\n\toption tls_name 'cloudflare-dns.com'\n")
	return b.String()
}

// withUpstream is a file with one upstream section, cloudflare, holding lines.
func withUpstream(lines ...string) string {
	var b strings.Builder
	b.WriteString("config delve 'main'\n\nconfig upstream 'cloudflare'\n")
	for _, l := range lines {
		b.WriteString("\t" + l + "\n")
	}
	return b.String()
}

// good upstream lines to which a test adds one bad one.
var addr, name = "option address '1.1.1.1'", "option tls_name 'cloudflare-dns.com'"

// manyTypes is n list lines of distinct record types, TYPE1000 and up.
func manyTypes(n int) []string {
	var lines []string
	for i := range n {
		lines = append(lines, "list type 'TYPE"+strconv.Itoa(1000+i)+"'")
	}
	return lines
}

func TestLoadBadValues(t *testing.T) {
	const boolWant = "is not a boolean (1, on, true, yes, enabled or 0, off, false, no, disabled)"
	const memWant = "is not a memory size in KiB, or with a unit K, M or G such as 4M (64K-1G)"
	const threadsWant = "is not a number of threads (0-64; 0 is one per CPU)"
	tests := []struct {
		name, text, want string
		line             int // of the (first) error
	}{
		// main
		{"enabled", withMain("option enabled 'maybe'"), `delve.main.enabled: "maybe" ` + boolWant, 2},
		{"enabled is case-sensitive like config_get_bool", withMain("option enabled 'TRUE'"), `delve.main.enabled: "TRUE" ` + boolWant, 2},
		{"type unknown", withMain("list type 'A'", "list type 'AAAAA'"), `delve.main.type: unknown record type "AAAAA"`, 3},
		{"type number", withMain("list type 'TYPE70000'"), `delve.main.type: record type number "TYPE70000" is out of range (1-65535)`, 2},
		{"type zone transfer", withMain("list type 'AXFR'"), `delve.main.type: record type "AXFR" asks for a zone transfer, not a record type a lookup can ask for`, 2},
		{"type pseudo-record", withMain("list type 'A'", "list type 'OPT'"), `delve.main.type: record type "OPT" is the EDNS(0) pseudo-record (RFC 6891), not a record type a lookup can ask for`, 3},
		{"too many types", withMain(manyTypes(17)...), `delve.main.type: lists 17 record types, more than the 16 one lookup may ask for`, 18},
		{"timeout with unit", withMain("option timeout '5s'"), `delve.main.timeout: "5s" is not a timeout in milliseconds (100-60000)`, 2},
		{"timeout too small", withMain("option timeout '99'"), `delve.main.timeout: "99" is not a timeout in milliseconds (100-60000)`, 2},
		{"timeout too large", withMain("option timeout '60001'"), `delve.main.timeout: "60001" is not a timeout in milliseconds (100-60000)`, 2},
		{"timeout negative", withMain("option timeout '-1'"), `delve.main.timeout: "-1" is not a timeout in milliseconds (100-60000)`, 2},
		{"timeout with space", withMain("option timeout ' 3000'"), `delve.main.timeout: " 3000" is not a timeout in milliseconds (100-60000)`, 2},
		{"timeout twice", withMain("list timeout '1000'", "list timeout '2000'"), `delve.main.timeout: has 2 values ("1000", "2000"); want one`, 3},
		{"strategy", withMain("option strategy 'random'"), `delve.main.strategy: "random" is not a strategy (failover, round_robin or fastest)`, 2},
		{"cache_size negative", withMain("option cache_size '-1'"), `delve.main.cache_size: "-1" is not a number of cache entries (0-1000000)`, 2},
		{"cache_size too large", withMain("option cache_size '1000001'"), `delve.main.cache_size: "1000001" is not a number of cache entries (0-1000000)`, 2},
		{"cache_size words", withMain("option cache_size 'lots'"), `delve.main.cache_size: "lots" is not a number of cache entries (0-1000000)`, 2},
		{"cache_memory too small", withMain("option cache_memory '63'"), `delve.main.cache_memory: "63" ` + memWant, 2},
		{"cache_memory zero", withMain("option cache_memory '0'"), `delve.main.cache_memory: "0" is below the smallest cache (64K); cache_size '0' turns the cache off`, 2},
		{"cache_memory too large", withMain("option cache_memory '2G'"), `delve.main.cache_memory: "2G" ` + memWant, 2},
		{"cache_memory unit unknown", withMain("option cache_memory '4T'"), `delve.main.cache_memory: "4T" ` + memWant, 2},
		{"cache_memory fraction", withMain("option cache_memory '1.5M'"), `delve.main.cache_memory: "1.5M" ` + memWant, 2},
		{"cache_memory unit alone", withMain("option cache_memory 'M'"), `delve.main.cache_memory: "M" ` + memWant, 2},
		{"cache_memory with space", withMain("option cache_memory '4 M'"), `delve.main.cache_memory: "4 M" ` + memWant, 2},
		{"cache_memory huge number", withMain("option cache_memory '9999999999G'"), `delve.main.cache_memory: "9999999999G" ` + memWant, 2},
		{"threads too many", withMain("option threads '65'"), `delve.main.threads: "65" ` + threadsWant, 2},
		{"threads negative", withMain("option threads '-1'"), `delve.main.threads: "-1" ` + threadsWant, 2},
		{"threads words", withMain("option threads 'all'"), `delve.main.threads: "all" ` + threadsWant, 2},
		{"threads with space", withMain("option threads '2 '"), `delve.main.threads: "2 " ` + threadsWant, 2},
		{"threads twice", withMain("list threads '1'", "list threads '2'"), `delve.main.threads: has 2 values ("1", "2"); want one`, 3},
		{"socket relative", withMain("option socket 'delve.sock'"), `delve.main.socket: "delve.sock" is not an absolute path`, 2},
		{"socket too long", withMain("option socket '/" + strings.Repeat("s", 107) + "'"),
			`delve.main.socket: "/` + strings.Repeat("s", 107) + `" is too long for a unix socket path (107 bytes at most)`, 2},
		{"websocket host name", withMain("option websocket 'localhost:8053'"),
			`delve.main.websocket: "localhost:8053" is not IP:port (the host must be an IP address, such as 127.0.0.1:8053 or [::1]:8053)`, 2},
		{"websocket without port", withMain("option websocket '127.0.0.1'"),
			`delve.main.websocket: "127.0.0.1" is not IP:port (the host must be an IP address, such as 127.0.0.1:8053 or [::1]:8053)`, 2},
		{"websocket port 0", withMain("option websocket '[::1]:0'"),
			`delve.main.websocket: "[::1]:0" is not IP:port (the host must be an IP address, such as 127.0.0.1:8053 or [::1]:8053)`, 2},
		{"websocket IPv6 without brackets", withMain("option websocket '::1:8053'"),
			`delve.main.websocket: "::1:8053" is not IP:port (the host must be an IP address, such as 127.0.0.1:8053 or [::1]:8053)`, 2},
		{"websocket on the LAN without token", withMain("option websocket '198.51.100.1:8053'"),
			"delve.main.websocket_token: must be set because websocket 198.51.100.1:8053 is not a loopback address (anyone who reaches it could use the resolver)", 1},
		{"websocket_token twice is not quoted", withMain("list websocket_token 'secret1'", "list websocket_token 'secret2'"),
			"delve.main.websocket_token: has 2 values (not shown: it is a secret); want one", 3},
		{"websocket on all addresses without token", withMain("option websocket '[::]:8053'", "option websocket_token ''"),
			"delve.main.websocket_token: must be set because websocket [::]:8053 is not a loopback address (anyone who reaches it could use the resolver)", 1},
		{"listen without port", withMain("list listen '127.0.0.1'"), `delve.main.listen: "127.0.0.1" is not IP:port (such as 127.0.0.1:5453 or [::1]:5453)`, 2},
		{"listen host name", withMain("list listen 'localhost:5453'"), `delve.main.listen: "localhost:5453" is not IP:port (such as 127.0.0.1:5453 or [::1]:5453)`, 2},
		{"listen stubby form", withMain("list listen '127.0.0.1@5453'"), `delve.main.listen: "127.0.0.1@5453" is not IP:port (such as 127.0.0.1:5453 or [::1]:5453)`, 2},
		{"listen port too large", withMain("list listen '127.0.0.1:65536'"), `delve.main.listen: "127.0.0.1:65536" is not IP:port (such as 127.0.0.1:5453 or [::1]:5453)`, 2},
		{"listen none beside an address", withMain("list listen 'none'", "list listen '127.0.0.1:5453'"),
			`delve.main.listen: "none" turns the listener off and cannot stand beside addresses`, 3},
		{"ca_file relative", withMain("option ca_file 'certs.pem'"), `delve.main.ca_file: "certs.pem" is not an absolute path`, 2},
		{"log_level", withMain("option log_level 'verbose'"), `delve.main.log_level: "verbose" is not a log level (debug, info, warn or error)`, 2},
		{"dnsmasq", withMain("option dnsmasq 'sometimes'"), `delve.main.dnsmasq: "sometimes" ` + boolWant, 2},
		{"tolerate_unset_clock", withMain("option tolerate_unset_clock '2'"), `delve.main.tolerate_unset_clock: "2" ` + boolWant, 2},
		{"serve_stale", withMain("option serve_stale 'maybe'"), `delve.main.serve_stale: "maybe" ` + boolWant, 2},
		{"prefetch", withMain("option prefetch 'often'"), `delve.main.prefetch: "often" ` + boolWant, 2},
		{"ubus", withMain("option ubus 'libubus'"), `delve.main.ubus: "libubus" is not how to serve the ubus object (rpcd or native)`, 2},
		{"ubus_socket relative", withMain("option ubus_socket 'ubus.sock'"), `delve.main.ubus_socket: "ubus.sock" is not an absolute path`, 2},
		{"ubus_socket too long", withMain("option ubus_socket '/" + strings.Repeat("u", 107) + "'"),
			`delve.main.ubus_socket: "/` + strings.Repeat("u", 107) + `" is too long for a unix socket path (107 bytes at most)`, 2},
		{"trigger", withMain("list trigger 'wan-6'"), `delve.main.trigger: "wan-6" is not a network interface name (letters, digits and _, as in /etc/config/network)`, 2},

		// upstream
		{"address missing", withUpstream(name), "delve.cloudflare.address: missing (the IPv4 or IPv6 address of the DNS-over-TLS server)", 3},
		{"address host name", withUpstream("option address 'dns.google'", name),
			`delve.cloudflare.address: "dns.google" is not an IP address (delve makes no bootstrap lookups: give the server's IPv4 or IPv6 address)`, 4},
		{"address in brackets", withUpstream("option address '[2606:4700:4700::1111]'", name),
			`delve.cloudflare.address: "[2606:4700:4700::1111]" is not an IP address (delve makes no bootstrap lookups: give the server's IPv4 or IPv6 address)`, 4},
		{"address with port", withUpstream("option address '1.1.1.1:853'", name),
			`delve.cloudflare.address: "1.1.1.1:853" is not an IP address (delve makes no bootstrap lookups: give the server's IPv4 or IPv6 address)`, 4},
		{"port too large", withUpstream(addr, "option port '99999'", name), `delve.cloudflare.port: "99999" is not a port (1-65535)`, 5},
		{"port 0", withUpstream(addr, "option port '0'", name), `delve.cloudflare.port: "0" is not a port (1-65535)`, 5},
		{"port name", withUpstream(addr, "option port 'domain-s'", name), `delve.cloudflare.port: "domain-s" is not a port (1-65535)`, 5},
		{"port 53", withUpstream(addr, "option port '53'", name),
			`delve.cloudflare.port: "53" is plain DNS's port; DNS-over-TLS must not use it (RFC 7858 §3.1), its port is 853`, 5},
		{"tls_name underscore", withUpstream(addr, "option tls_name 'dns_server.example'"),
			`delve.cloudflare.tls_name: "dns_server.example" is not a valid DNS name (letters, digits and hyphens in dot-separated labels)`, 5},
		{"tls_name empty label", withUpstream(addr, "option tls_name 'dns..example'"),
			`delve.cloudflare.tls_name: "dns..example" is not a valid DNS name (letters, digits and hyphens in dot-separated labels)`, 5},
		{"tls_name leading hyphen", withUpstream(addr, "option tls_name '-dns.example'"),
			`delve.cloudflare.tls_name: "-dns.example" is not a valid DNS name (letters, digits and hyphens in dot-separated labels)`, 5},
		{"tls_name long label", withUpstream(addr, "option tls_name '"+strings.Repeat("a", 64)+".example'"),
			`delve.cloudflare.tls_name: "` + strings.Repeat("a", 64) + `.example" is not a valid DNS name (letters, digits and hyphens in dot-separated labels)`, 5},
		{"tls_name URL", withUpstream(addr, "option tls_name 'tls://dns.example'"),
			`delve.cloudflare.tls_name: "tls://dns.example" is not a valid DNS name (letters, digits and hyphens in dot-separated labels)`, 5},
		{"tls_name IP address", withUpstream(addr, "option tls_name '1.1.1.1'"),
			`delve.cloudflare.tls_name: "1.1.1.1" is an IP address; tls_name is the name in the server's certificate, such as cloudflare-dns.com`, 5},
		{"pin bad characters", withUpstream(addr, name, "list pin 'pin!'"),
			`delve.cloudflare.pin: "pin!" is not base64 (a pin is the base64 SHA-256 digest of the server's public key, optionally written sha256/<base64>)`, 6},
		{"pin too short", withUpstream(addr, name, "list pin 'sha256/AAAA'"),
			`delve.cloudflare.pin: "sha256/AAAA" decodes to 3 bytes, not the 32 of a SHA-256 digest`, 6},
		{"pin of another hash", withUpstream(addr, name, "list pin 'sha512/"+pinA+"'"),
			`delve.cloudflare.pin: "sha512/` + pinA + `" is not base64 (a pin is the base64 SHA-256 digest of the server's public key, optionally written sha256/<base64>)`, 6},
		{"enabled", withUpstream(addr, name, "option enabled '2'"), `delve.cloudflare.enabled: "2" ` + boolWant, 6},
		{"neither tls_name nor pin", withUpstream(addr, "list pin ''"),
			"delve.cloudflare: has neither tls_name nor pin: delve uses the strict privacy profile (RFC 8310) and needs one of them to authenticate the server", 3},
		{"no enabled upstream", withUpstream(addr, name, "option enabled '0'"),
			"delve: no enabled upstream (add a config upstream section with an address and a tls_name)", 0},
		{"no upstream section", "config delve 'main'\n\toption timeout '1000'\n",
			"delve: no enabled upstream (add a config upstream section with an address and a tls_name)", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeConfig(t, tt.text))
			if err == nil {
				t.Fatalf("loaded %+v", c)
			}
			if err.Error() != tt.want {
				t.Errorf("error %q\nwant  %q", err, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not an *Error", err)
			}
			if e.Line != tt.line {
				t.Errorf("line %d, want %d", e.Line, tt.line)
			}
		})
	}
}

// TestLoadReportsAllErrors checks that one load names every bad value, each on its own line.
func TestLoadReportsAllErrors(t *testing.T) {
	text := `config delve 'main'
	option timeout 'soon'
	option strategy 'random'

config upstream 'a'
	option address 'dns.example'
	option port '853'

config upstream
	option address '9.9.9.9'
	option port '53'
	option tls_name 'dns.quad9.net'
`
	_, err := Load(writeConfig(t, text))
	if err == nil {
		t.Fatal("loaded")
	}
	want := []string{
		`delve.main.timeout: "soon" is not a timeout in milliseconds (100-60000)`,
		`delve.main.strategy: "random" is not a strategy (failover, round_robin or fastest)`,
		`delve.a.address: "dns.example" is not an IP address (delve makes no bootstrap lookups: give the server's IPv4 or IPv6 address)`,
		"delve.a: has neither tls_name nor pin: delve uses the strict privacy profile (RFC 8310) and needs one of them to authenticate the server",
		`delve.@upstream[1].port: "53" is plain DNS's port; DNS-over-TLS must not use it (RFC 7858 §3.1), its port is 853`,
	}
	if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors\n%s\nwant\n%s", err, strings.Join(want, "\n"))
	}
}

// TestLoadNormalizesValues checks the canonical forms the Config holds.
func TestLoadNormalizesValues(t *testing.T) {
	c, err := Load(writeConfig(t, `config delve 'main'
	list type 'a'
	list type 'aaaa A'
	list type 'TYPE28'
	list listen '127.0.0.1:5453 [::1]:5453'

config upstream 'u'
	option address '2606:4700:4700:0:0:0:0:1111'
	option tls_name 'Cloudflare-DNS.com.'
	list pin 'sha256/`+pinA+`'
	list pin '`+strings.TrimRight(pinA, "=")+`'
	list pin '`+pinB+`'
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Types, " "); got != "A AAAA" {
		t.Errorf("types %q, want A AAAA", got)
	}
	if got := strings.Join(c.Listen, " "); got != "127.0.0.1:5453 [::1]:5453" {
		t.Errorf("listen %q", got)
	}
	u := c.Upstreams[0]
	if u.Address != "2606:4700:4700::1111" || u.TLSName != "cloudflare-dns.com" {
		t.Errorf("address %q tls_name %q", u.Address, u.TLSName)
	}
	if got := strings.Join(u.Pins, " "); got != pinA+" "+pinB {
		t.Errorf("pins %q, want %q", got, pinA+" "+pinB)
	}
}

// TestDisabledNeedsNoUpstream: with enabled 0 the daemon only says so and exits, so a file with
// no upstream at all must load.
func TestDisabledNeedsNoUpstream(t *testing.T) {
	path := filepath.Join(t.TempDir(), "delve")
	if err := os.WriteFile(path, []byte("config delve 'main'\n\toption enabled '0'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Enabled || len(c.Upstreams) != 0 {
		t.Fatalf("enabled %v, %d upstreams", c.Enabled, len(c.Upstreams))
	}
}

// TestCacheMemoryUnits: a bare number is KiB, and K, M and G are binary in all their spellings.
func TestCacheMemoryUnits(t *testing.T) {
	for v, want := range map[string]int{
		"4096": 4 << 20, "4096K": 4 << 20, "4096k": 4 << 20, "4096KiB": 4 << 20, "4M": 4 << 20, "4m": 4 << 20,
		"4MB": 4 << 20, "4MiB": 4 << 20, "64": 64 << 10, "64K": 64 << 10, "1G": 1 << 30, "1gib": 1 << 30, "1024M": 1 << 30,
	} {
		c, err := Load(writeConfig(t, withMain("option cache_memory '"+v+"'")))
		if err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		if c.CacheMemory != want {
			t.Errorf("cache_memory %q: %d bytes, want %d", v, c.CacheMemory, want)
		}
	}
}
