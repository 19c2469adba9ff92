package uci

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	gouci "github.com/digineo/go-uci/v2"

	"github.com/delvedns/delve/internal/api"
)

// knownOptions are the options of each section type, in the order of the documentation.
var knownOptions = map[string][]string{
	"delve": {"enabled", "type", "timeout", "strategy", "cache_size", "cache_memory", "threads", "socket", "websocket",
		"websocket_token", "listen", "ca_file", "log_level", "dnsmasq", "trigger", "tolerate_unset_clock", "serve_stale", "prefetch", "ubus", "ubus_socket"},
	"upstream": {"address", "port", "tls_name", "pin", "enabled"},
}

// secretOptions hold values that no message quotes: messages end up in the log (a reload's
// refusal is logged), which may be read by more people than the file.
var secretOptions = map[string]bool{"websocket_token": true}

// otherNames are option names that other DNS packages use for what delve calls differently,
// so that the warning can say so.
var otherNames = map[string]string{
	"tls_auth_name":  "tls_name",
	"tls_port":       "port",
	"spki":           "pin",
	"listen_address": "listen",
}

// Limits of the numeric options.
const (
	minTimeoutMS = 100
	maxTimeoutMS = 60000
	maxCacheSize = 1000000
	minCacheKiB  = 64      // below this the largest answer cached (1/16 of it) is 4 KiB
	maxCacheKiB  = 1 << 20 // 1 GiB
	maxThreads   = 64      // more than any router has CPUs; 0 means one per CPU
	maxSocketLen = 107     // sun_path is 108 bytes on Linux, with the terminating NUL
)

// builder turns a loaded tree into a Config, collecting every error.
type builder struct {
	name string // config name: "delve"
	tree gouci.Tree
	raw  map[string]*rawSection // by ref
	errs []error
	warn []string
}

func build(name string, tree gouci.Tree, raw *rawFile) (*Config, error) {
	b := &builder{name: name, tree: tree, raw: map[string]*rawSection{}}
	for _, s := range raw.sections {
		b.raw[s.ref] = s
	}
	c := Default()
	c.Upstreams = nil

	// Warnings first, in file order: they come from raw, since go-uci cannot list options.
	for _, s := range raw.sections {
		known, ok := knownOptions[s.typ]
		if !ok {
			b.warn = append(b.warn, fmt.Sprintf("%s.%s: unknown section type %q, ignored", name, s.ref, s.typ))
			continue
		}
		for _, o := range s.opts {
			if slices.Contains(known, o.name) {
				continue
			}
			msg := fmt.Sprintf("%s.%s.%s: unknown option, ignored", name, s.ref, o.name)
			if alt, ok := otherNames[o.name]; ok && slices.Contains(known, alt) {
				msg += " (delve calls it " + alt + ")"
			}
			b.warn = append(b.warn, msg)
		}
	}

	// The main section: named main, else the first delve section when it is anonymous.
	mains, err := tree.GetSections(name, "delve")
	if err != nil {
		return nil, &Error{Place: name, Msg: err.Error()}
	}
	main := ""
	switch {
	case slices.Contains(mains, "main"):
		main = "main"
	case len(mains) > 0 && strings.HasPrefix(mains[0], "@"):
		main = mains[0]
	}
	for _, ref := range mains {
		switch {
		case ref == main:
		case main == "":
			b.warn = append(b.warn, fmt.Sprintf("%s.%s: delve section not named main, ignored (the settings go in config delve 'main')", name, ref))
		default:
			b.warn = append(b.warn, fmt.Sprintf("%s.%s: second delve section, ignored (the settings go in config delve 'main')", name, ref))
		}
	}
	if main != "" {
		b.main(c, main)
	}

	ups, err := tree.GetSections(name, "upstream")
	if err != nil {
		return nil, &Error{Place: name, Msg: err.Error()}
	}
	for _, ref := range ups {
		c.Upstreams = append(c.Upstreams, b.upstream(ref))
	}
	// A disabled delve needs no upstream: `delve serve` only says it is disabled and exits.
	if c.Enabled && len(c.EnabledUpstreams()) == 0 {
		b.fail(name, "", "no enabled upstream (add a config upstream section with an address and a tls_name)")
	}

	if len(b.errs) > 0 {
		return nil, errors.Join(b.errs...)
	}
	c.Warnings = b.warn
	return c, nil
}

// fail records an error at section sec (empty: the whole config) and option opt.
func (b *builder) fail(sec, opt, format string, args ...any) {
	e := &Error{Place: b.name, Msg: fmt.Sprintf(format, args...)}
	if s := b.raw[sec]; s != nil {
		e.Place += "." + sec
		e.Line = s.line
		if o := s.option(opt); o != nil {
			e.Line = o.line
		}
	}
	if opt != "" {
		e.Place += "." + opt
	}
	b.errs = append(b.errs, e)
}

// values returns the non-empty values of an option; lists may also be given as one
// space-separated value (`option type 'A AAAA'`), as uci's shell functions allow.
func (b *builder) values(sec, opt string, split bool) []string {
	vals, _ := b.tree.Get(b.name, sec, opt)
	vals = cleanValues(vals)
	if !split {
		return vals
	}
	var out []string
	for _, v := range vals {
		for _, f := range strings.Fields(v) {
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	return out
}

// scalar returns the value of a single-valued option, and whether it is set.
func (b *builder) scalar(sec, opt string) (string, bool) {
	vals := b.values(sec, opt, false)
	switch len(vals) {
	case 0:
		return "", false
	case 1:
		return vals[0], true
	}
	if secretOptions[opt] {
		b.fail(sec, opt, "has %d values (not shown: it is a secret); want one", len(vals))
		return "", false
	}
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = strconv.Quote(v)
	}
	b.fail(sec, opt, "has %d values (%s); want one", len(vals), strings.Join(q, ", "))
	return "", false
}

func (b *builder) boolean(sec, opt string, def bool) bool {
	v, ok := b.scalar(sec, opt)
	if !ok {
		return def
	}
	switch v {
	case "1", "on", "true", "yes", "enabled":
		return true
	case "0", "off", "false", "no", "disabled":
		return false
	}
	b.fail(sec, opt, "%q is not a boolean (1, on, true, yes, enabled or 0, off, false, no, disabled)", v)
	return def
}

// number parses a decimal integer in [min, max]; what says what it is for the message.
func (b *builder) number(sec, opt string, def, min, max int, what string) int {
	v, ok := b.scalar(sec, opt)
	if !ok {
		return def
	}
	n, ok := parseDecimal(v)
	if !ok || n < min || n > max {
		b.fail(sec, opt, "%q is not %s (%d-%d)", v, what, min, max)
		return def
	}
	return n
}

// parseKiB parses a memory size: a bare number is in KiB; a unit K, M or G (also written KB,
// KiB, MB, MiB, GB, GiB, in any case) means 1024, 1024² or 1024³ bytes, as in unbound's and
// dnsmasq's sizes. The result is in KiB; ok is false for anything else, or above 2 TiB.
func parseKiB(s string) (int, bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	n, ok := parseDecimal(s[:i])
	if !ok {
		return 0, false
	}
	switch strings.ToLower(s[i:]) {
	case "", "k", "kb", "kib":
		return n, true
	case "m", "mb", "mib":
		return n << 10, n < 1<<21
	case "g", "gb", "gib":
		return n << 20, n < 1<<11
	}
	return 0, false
}

// parseDecimal accepts digits only: no sign, no spaces, no units.
func parseDecimal(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

func (b *builder) main(c *Config, sec string) {
	c.Enabled = b.boolean(sec, "enabled", c.Enabled)

	if vals := b.values(sec, "type", true); len(vals) > 0 {
		var types []string
		for _, v := range vals {
			t, err := api.ParseType(v)
			if err != nil {
				b.fail(sec, "type", "%s", err.Error())
				continue
			}
			if name := api.TypeName(t); !slices.Contains(types, name) {
				types = append(types, name)
			}
		}
		if len(types) > api.MaxTypes {
			b.fail(sec, "type", "lists %d record types, more than the %d one lookup may ask for", len(types), api.MaxTypes)
		}
		c.Types = types
	}

	c.Timeout = time.Duration(b.number(sec, "timeout", int(c.Timeout/time.Millisecond), minTimeoutMS, maxTimeoutMS,
		"a timeout in milliseconds")) * time.Millisecond

	if v, ok := b.scalar(sec, "strategy"); ok {
		switch v {
		case StrategyFailover, StrategyRoundRobin, StrategyFastest:
			c.Strategy = v
		default:
			b.fail(sec, "strategy", "%q is not a strategy (failover, round_robin or fastest)", v)
		}
	}

	c.CacheSize = b.number(sec, "cache_size", c.CacheSize, 0, maxCacheSize, "a number of cache entries")
	if v, ok := b.scalar(sec, "cache_memory"); ok {
		switch kib, ok := parseKiB(v); {
		case ok && kib >= minCacheKiB && kib <= maxCacheKiB:
			c.CacheMemory = kib << 10
		case ok && kib == 0:
			b.fail(sec, "cache_memory", "%q is below the smallest cache (64K); cache_size '0' turns the cache off", v)
		default:
			b.fail(sec, "cache_memory", "%q is not a memory size in KiB, or with a unit K, M or G such as 4M (64K-1G)", v)
		}
	}

	if v, ok := b.scalar(sec, "threads"); ok {
		if n, ok := parseDecimal(v); ok && n <= maxThreads {
			c.Threads = n
		} else {
			b.fail(sec, "threads", "%q is not a number of threads (0-%d; 0 is one per CPU)", v, maxThreads)
		}
	}

	b.socketPath(sec, "socket", &c.Socket)

	if v, ok := b.scalar(sec, "ubus"); ok {
		switch v {
		case UbusRPCD, UbusNative:
			c.Ubus = v
		default:
			b.fail(sec, "ubus", "%q is not how to serve the ubus object (rpcd or native)", v)
		}
	}
	b.socketPath(sec, "ubus_socket", &c.UbusSocket)

	wsLoopback := true
	if v, ok := b.scalar(sec, "websocket"); ok {
		if ap, ok := parseHostPort(v); ok {
			c.WebSocket = v
			wsLoopback = ap.Addr().Unmap().IsLoopback()
		} else {
			b.fail(sec, "websocket", "%q is not IP:port (the host must be an IP address, such as 127.0.0.1:8053 or [::1]:8053)", v)
		}
	}
	if v, ok := b.scalar(sec, "websocket_token"); ok {
		c.WebSocketToken = v
	}
	if c.WebSocket != "" && !wsLoopback && c.WebSocketToken == "" {
		b.fail(sec, "websocket_token", "must be set because websocket %s is not a loopback address (anyone who reaches it could use the resolver)", c.WebSocket)
	}

	if vals := b.values(sec, "listen", true); len(vals) > 0 {
		c.Listen = nil
		for _, v := range vals {
			if v == "none" {
				if len(vals) > 1 {
					b.fail(sec, "listen", `"none" turns the listener off and cannot stand beside addresses`)
				}
				continue
			}
			if _, ok := parseHostPort(v); !ok {
				b.fail(sec, "listen", "%q is not IP:port (such as 127.0.0.1:5453 or [::1]:5453)", v)
				continue
			}
			c.Listen = append(c.Listen, v)
		}
	}

	if v, ok := b.scalar(sec, "ca_file"); ok {
		if filepath.IsAbs(v) {
			c.CAFile = v
		} else {
			b.fail(sec, "ca_file", "%q is not an absolute path", v)
		}
	}

	if v, ok := b.scalar(sec, "log_level"); ok {
		switch v {
		case "debug":
			c.LogLevel = slog.LevelDebug
		case "info":
			c.LogLevel = slog.LevelInfo
		case "warn", "warning":
			c.LogLevel = slog.LevelWarn
		case "error":
			c.LogLevel = slog.LevelError
		default:
			b.fail(sec, "log_level", "%q is not a log level (debug, info, warn or error)", v)
		}
	}

	c.DNSMasq = b.boolean(sec, "dnsmasq", c.DNSMasq)
	c.TolerateUnsetClock = b.boolean(sec, "tolerate_unset_clock", c.TolerateUnsetClock)
	c.ServeStale = b.boolean(sec, "serve_stale", c.ServeStale)
	c.Prefetch = b.boolean(sec, "prefetch", c.Prefetch)

	for _, v := range b.values(sec, "trigger", true) {
		if validName(v) {
			c.Triggers = append(c.Triggers, v)
		} else {
			b.fail(sec, "trigger", "%q is not a network interface name (letters, digits and _, as in /etc/config/network)", v)
		}
	}
}

// parseHostPort accepts IP:port and [IPv6]:port with a port in 1-65535.
func parseHostPort(s string) (netip.AddrPort, bool) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, false
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, false
	}
	p, ok := parseDecimal(port)
	if !ok || p < 1 || p > 65535 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(addr, uint16(p)), true
}

func (b *builder) upstream(sec string) Upstream {
	u := Upstream{Name: sec, Port: 853, Enabled: true}

	if v, ok := b.scalar(sec, "address"); !ok {
		b.fail(sec, "address", "missing (the IPv4 or IPv6 address of the DNS-over-TLS server)")
	} else if addr, err := netip.ParseAddr(v); err != nil {
		b.fail(sec, "address", "%q is not an IP address (delve makes no bootstrap lookups: give the server's IPv4 or IPv6 address)", v)
	} else {
		u.Address = addr.String()
	}

	if v, ok := b.scalar(sec, "port"); ok {
		n, ok := parseDecimal(v)
		switch {
		case !ok || n < 1 || n > 65535:
			b.fail(sec, "port", "%q is not a port (1-65535)", v)
		case n == 53:
			b.fail(sec, "port", "%q is plain DNS's port; DNS-over-TLS must not use it (RFC 7858 §3.1), its port is 853", v)
		default:
			u.Port = n
		}
	}

	tlsName, hasName := b.scalar(sec, "tls_name")
	if hasName {
		if name, why := dnsName(tlsName); why != "" {
			b.fail(sec, "tls_name", "%q %s", tlsName, why)
		} else {
			u.TLSName = name
		}
	}

	pins := b.values(sec, "pin", true)
	for _, v := range pins {
		pin, why := parsePin(v)
		if why != "" {
			b.fail(sec, "pin", "%q %s", v, why)
			continue
		}
		if !slices.Contains(u.Pins, pin) {
			u.Pins = append(u.Pins, pin)
		}
	}

	u.Enabled = b.boolean(sec, "enabled", u.Enabled)

	if !hasName && len(pins) == 0 {
		b.fail(sec, "", "has neither tls_name nor pin: delve uses the strict privacy profile (RFC 8310) and needs one of them to authenticate the server")
	}
	return u
}

// dnsName checks a TLS authentication name: letters, digits and hyphens in dot-separated
// labels, the last not all digits (that would be an IPv4 address). It returns the name in
// lower case without a final dot, or why it is not one.
func dnsName(s string) (string, string) {
	if _, err := netip.ParseAddr(s); err == nil {
		return "", "is an IP address; tls_name is the name in the server's certificate, such as cloudflare-dns.com"
	}
	name := strings.TrimSuffix(s, ".")
	const why = "is not a valid DNS name (letters, digits and hyphens in dot-separated labels)"
	if name == "" || len(name) > 253 {
		return "", why
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", why
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
				return "", why
			}
		}
	}
	if _, err := strconv.Atoi(labels[len(labels)-1]); err == nil {
		return "", why
	}
	return strings.ToLower(name), ""
}

// parsePin decodes a SHA-256 SPKI pin, plain base64 or stubby's "sha256/<base64>", and returns
// it as padded standard base64, or why it is not one.
func parsePin(s string) (string, string) {
	b64 := strings.TrimPrefix(s, "sha256/")
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		raw, err = base64.RawStdEncoding.DecodeString(b64)
	}
	if err != nil {
		return "", "is not base64 (a pin is the base64 SHA-256 digest of the server's public key, optionally written sha256/<base64>)"
	}
	if len(raw) != 32 {
		return "", fmt.Sprintf("decodes to %d bytes, not the 32 of a SHA-256 digest", len(raw))
	}
	return base64.StdEncoding.EncodeToString(raw), ""
}

// socketPath sets *dst to the unix socket path in option opt of sec, when it is set and valid:
// absolute, and short enough for a socket address.
func (b *builder) socketPath(sec, opt string, dst *string) {
	v, ok := b.scalar(sec, opt)
	switch {
	case !ok:
	case !filepath.IsAbs(v):
		b.fail(sec, opt, "%q is not an absolute path", v)
	case len(v) > maxSocketLen:
		b.fail(sec, opt, "%q is too long for a unix socket path (%d bytes at most)", v, maxSocketLen)
	default:
		*dst = v
	}
}
