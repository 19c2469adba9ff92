package uci

import (
	"log/slog"
	"time"
)

// DefaultPath is where OpenWrt keeps delve's configuration.
const DefaultPath = "/etc/config/delve"

// DefaultSocket is the daemon's JSON-RPC socket when main.socket is not set.
const DefaultSocket = "/var/run/delve/delve.sock"

// Config is the validated, typed form of /etc/config/delve. Every field holds a usable value:
// options missing from the file get the defaults of Default.
type Config struct {
	File     string    // the file it was loaded from; empty for built-in defaults
	LoadedAt time.Time // when it was loaded

	Enabled        bool
	Types          []string      // record types asked when a lookup names none, upper case ("A", "AAAA")
	Timeout        time.Duration // whole-lookup deadline
	Strategy       string        // StrategyFailover, StrategyRoundRobin or StrategyFastest
	CacheSize      int           // entries; 0 = no cache
	CacheMemory    int           // bytes all cached answers may hold (cache_memory, given in KiB)
	Threads        int           // threads running delve's Go code at once (GOMAXPROCS); 0 = one per CPU
	Socket         string        // JSON-RPC unix socket path
	WebSocket      string        // host:port of the WebSocket transport; empty = off
	WebSocketToken string        // required when WebSocket is not on a loopback address
	Listen         []string      // host:port addresses of the plain DNS listener; empty = off
	CAFile         string        // PEM bundle for upstream certificates; empty = system roots
	LogLevel       slog.Level
	DNSMasq        bool // the init script points dnsmasq at the listener
	// TolerateUnsetClock accepts upstream certificates whose only fault is "not valid yet" while
	// the system clock is earlier than the build of delve: a router without a real-time clock
	// boots in the past, and NTP may need DNS to set the clock. Off by default; logged loudly.
	TolerateUnsetClock bool
	// ServeStale (serve_stale, default on) answers from an expired cached answer, with TTL 30, when
	// no upstream answers within 1.8 s, for up to a day past its expiry (RFC 8767): the LAN keeps
	// its names through a WAN outage.
	ServeStale bool
	// Prefetch (prefetch, default on) refreshes a popular cached answer in the background when
	// it is asked in the last tenth of its TTL, so that it does not expire into a miss.
	Prefetch bool
	// Triggers are the network interfaces (netifd names, e.g. "wan") whose up/down events make
	// the init script have the daemon redial its upstreams; empty = the init script's default.
	Triggers []string
	// Ubus is how the ubus object delve is served: UbusRPCD (rpcd runs `delve rpcd call` for
	// each call) or UbusNative (the daemon registers it with ubusd itself).
	Ubus string
	// UbusSocket is ubusd's socket for UbusNative; empty: /var/run/ubus/ubus.sock, else
	// /var/run/ubus.sock (older releases).
	UbusSocket string

	Upstreams []Upstream // in file order, disabled ones included

	// Warnings are problems that do not stop the configuration from loading, such as unknown
	// options, each naming its place ("delve.main.foo: unknown option").
	Warnings []string
}

// Upstream is one `config upstream` section.
type Upstream struct {
	// Name is the section name; anonymous sections are named the way `uci show` prints them,
	// "@upstream[0]".
	Name    string
	Address string // an IP address literal, IPv4 or IPv6
	Port    int
	TLSName string   // the authentication domain name; may be empty when Pins is not
	Pins    []string // base64 SHA-256 SPKI pins (each decodes to 32 bytes)
	Enabled bool
}

// Strategies.
const (
	StrategyFailover   = "failover"
	StrategyRoundRobin = "round_robin"
	StrategyFastest    = "fastest"
)

// Values of Config.Ubus (option ubus).
const (
	UbusRPCD   = "rpcd"
	UbusNative = "native"
)

// Default returns the configuration delve uses when there is no file: Cloudflare's DoT servers,
// A and AAAA, failover, the default socket, no WebSocket and no DNS listener.
func Default() *Config {
	return &Config{
		Enabled:     true,
		Types:       []string{"A", "AAAA"},
		Timeout:     3 * time.Second,
		Strategy:    StrategyFailover,
		CacheSize:   1024,
		CacheMemory: 4 << 20,
		Threads:     1,
		ServeStale:  true,
		Prefetch:    true,
		Ubus:        UbusRPCD,
		Socket:      DefaultSocket,
		LogLevel:    slog.LevelInfo,
		Upstreams: []Upstream{
			{Name: "cloudflare", Address: "1.1.1.1", Port: 853, TLSName: "cloudflare-dns.com", Enabled: true},
			{Name: "cloudflare2", Address: "1.0.0.1", Port: 853, TLSName: "cloudflare-dns.com", Enabled: true},
		},
	}
}

// EnabledUpstreams returns the upstreams that are switched on, in order.
func (c *Config) EnabledUpstreams() []Upstream {
	var out []Upstream
	for _, u := range c.Upstreams {
		if u.Enabled {
			out = append(out, u)
		}
	}
	return out
}
