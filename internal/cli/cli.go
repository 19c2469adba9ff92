// Package cli is the `delve NAME [TYPE...]` command: dig/kdig-style arguments, one lookup over
// DoT, the records on stdout and an exit status a script can test.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/daemon"
	"github.com/delvedns/delve/internal/engine"
	"github.com/delvedns/delve/internal/json"
	"github.com/delvedns/delve/internal/resolver"
	"github.com/delvedns/delve/internal/upstream"
	"github.com/delvedns/delve/uci"
)

// Exit statuses (README.md, "The `delve` command").
const (
	ExitOK       = 0 // answers printed
	ExitNoData   = 1 // NXDOMAIN or no records of the types asked
	ExitUsage    = 2 // usage or configuration error
	ExitUpstream = 3 // no upstream could answer: network, TLS, timeout, SERVFAIL
)

// Usage is the command's help text.
const Usage = `usage: delve [flags] NAME [TYPE...]
       delve status|flush|reload|redial [--socket PATH] [--config FILE] [--json]
       delve serve [-c FILE | --config FILE]
       delve rpcd list | delve rpcd call METHOD
       delve version | delve help

Looks NAME up over DNS-over-TLS and prints one record's data per line. An IP address as NAME
asks for its PTR record. TYPE is any record type (A, AAAA, MX, TXT, SRV, HTTPS, ...); default:
the configured types (A and AAAA).

  @ADDR[:PORT][#TLSNAME]  upstream, dig/kdig style (repeatable); same as -s/--server
  --ca FILE               PEM bundle to verify upstream certificates (default: system roots)
  --pin BASE64            SHA-256 SPKI pin (RFC 7858 §4.2), repeatable
  --json                  print the JSON object of the lookup method
  --config FILE           UCI file to take upstreams and types from
                          (default /etc/config/delve when present)
  --timeout DURATION      whole-lookup deadline, e.g. 2s or 500ms (default 3s)

Without an upstream and a config file: Cloudflare, 1.1.1.1 and 1.0.0.1 port 853,
name cloudflare-dns.com.

status, flush, reload and redial talk to the running daemon on its socket (--socket, else
main.socket of the UCI file, else /var/run/delve/delve.sock): its state as a table, empty the
cache, re-read the UCI file, reconnect to the upstreams (see delve status --help). A name
spelled like a command (status, flush, reload, redial, serve, rpcd, version, help) is looked up
with a trailing dot or after --: delve status. or delve -- status.

Exit status: 0 answers printed (a command done), 1 no such records (NXDOMAIN or NODATA),
2 usage or configuration error (a reload refused), 3 no upstream could answer (no daemon
answered a command).
`

// Args are the parsed command line of a lookup.
type Args struct {
	Name      string
	Types     []uint16
	Servers   []uci.Upstream
	CAFile    string
	Pins      []string
	JSON      bool
	Config    string // empty: DefaultConfig when it exists
	Timeout   time.Duration
	Help      bool
	configSet bool
}

// DefaultConfig is read when --config is not given and the file exists.
var DefaultConfig = uci.DefaultPath

// UsageError is a command line that cannot be run.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, a ...any) error { return &UsageError{fmt.Sprintf(format, a...)} }

// Parse reads a lookup command line (without the program name). Flags and positional arguments
// may come in any order, as with dig.
func Parse(argv []string) (*Args, error) {
	a := &Args{}
	var pos []string
	for i := 0; i < len(argv); i++ {
		arg := argv[i]
		if strings.HasPrefix(arg, "@") {
			s, err := ParseServer(arg[1:])
			if err != nil {
				return nil, err
			}
			a.Servers = append(a.Servers, s)
			continue
		}
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			pos = append(pos, arg)
			continue
		}
		if arg == "--" {
			pos = append(pos, argv[i+1:]...)
			break
		}
		name, value := flagAt(argv, &i)
		var err error
		var v string
		switch name {
		case "h", "help":
			a.Help = true
		case "json":
			a.JSON = true
		case "s", "server":
			if v, err = value(); err == nil {
				var s uci.Upstream
				if s, err = ParseServer(strings.TrimPrefix(v, "@")); err == nil {
					a.Servers = append(a.Servers, s)
				}
			}
		case "ca":
			a.CAFile, err = value()
		case "pin":
			if v, err = value(); err == nil {
				if _, err = engine.ParsePin(v); err != nil {
					err = &UsageError{err.Error()}
				}
				a.Pins = append(a.Pins, v)
			}
		case "config", "c":
			a.Config, err = value()
			a.configSet = true
		case "timeout", "t":
			if v, err = value(); err == nil {
				a.Timeout, err = parseTimeout(v)
			}
		default:
			return nil, usagef("unknown flag %s (see delve --help)", arg)
		}
		if err != nil {
			return nil, err
		}
	}
	if a.Help {
		return a, nil
	}
	if len(pos) == 0 {
		return nil, usagef("no name to look up (see delve --help)")
	}
	a.Name = pos[0]
	for _, t := range pos[1:] {
		qt, err := api.ParseType(t)
		if err != nil {
			return nil, &UsageError{err.Error()}
		}
		if !slices.Contains(a.Types, qt) {
			a.Types = append(a.Types, qt)
		}
		if len(a.Types) > api.MaxTypes {
			return nil, usagef("more than %d record types in one lookup", api.MaxTypes)
		}
	}
	return a, nil
}

// flagAt reads the flag argv[*i]: its name without dashes, and a function that returns its
// value, after "=" or else the next argument (which it then consumes by advancing *i).
func flagAt(argv []string, i *int) (name string, value func() (string, error)) {
	arg := argv[*i]
	name, val, hasVal := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	return name, func() (string, error) {
		if hasVal {
			return val, nil
		}
		if *i+1 >= len(argv) {
			return "", usagef("the flag %s needs a value", arg)
		}
		*i++
		return argv[*i], nil
	}
}

func parseTimeout(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		// A bare number is seconds, as kdig's +time=N.
		n, err2 := strconv.ParseFloat(v, 64)
		if err2 != nil {
			return 0, usagef("--timeout %q is not a duration such as 2s or 500ms", v)
		}
		d = time.Duration(n * float64(time.Second))
	}
	if d <= 0 || d > 10*time.Minute {
		return 0, usagef("--timeout %q is out of range (more than 0, at most 10m)", v)
	}
	return d, nil
}

// ParseServer reads ADDR[:PORT][#TLSNAME]: an IPv4 or IPv6 address (IPv6 with a port in
// brackets), port 853 by default. Without a TLS name the certificate must be valid for the
// address itself (an IP SAN), unless pins are given.
func ParseServer(spec string) (uci.Upstream, error) {
	u := uci.Upstream{Port: upstream.DefaultPort, Enabled: true}
	hostport, name, _ := strings.Cut(spec, "#")
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		// No port: the whole of it is the address (an IPv6 one may be bracketed).
		host, port = strings.Trim(hostport, "[]"), ""
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return u, usagef("server address %q is not an IP address (delve does not look up server names)", host)
	}
	u.Address = ip.String()
	if port != "" {
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 {
			return u, usagef("server port %q is not a port (1-65535)", port)
		}
		if p == 53 {
			return u, usagef("server port 53 is plain DNS; DNS-over-TLS uses 853 (RFC 7858)")
		}
		u.Port = p
	}
	if name != "" {
		if _, ok := dns.IsDomainName(name); !ok {
			return u, usagef("TLS name %q is not a domain name", name)
		}
		u.TLSName = strings.TrimSuffix(name, ".")
	}
	u.Name = net.JoinHostPort(u.Address, strconv.Itoa(u.Port))
	return u, nil
}

// Run performs the lookup described by argv and returns the exit status.
func Run(ctx context.Context, argv []string, stdout, stderr io.Writer) int {
	a, err := Parse(argv)
	if err != nil {
		fmt.Fprintln(stderr, "delve:", err)
		return ExitUsage
	}
	if a.Help {
		fmt.Fprint(stdout, Usage)
		return ExitOK
	}
	return a.run(ctx, stdout, stderr)
}

func (a *Args) run(ctx context.Context, stdout, stderr io.Writer) int {
	name, reverse, err := api.ParseName(a.Name)
	if err != nil {
		fmt.Fprintln(stderr, "delve:", err)
		return ExitUsage
	}
	cfg, err := a.config()
	if err != nil {
		fmt.Fprintln(stderr, "delve:", err)
		return ExitUsage
	}
	types := a.Types
	if len(types) == 0 {
		if reverse {
			types = []uint16{dns.TypePTR}
		} else {
			for _, t := range cfg.Types {
				qt, _ := api.ParseType(t)
				types = append(types, qt)
			}
		}
	}
	var warnMu sync.Mutex // the types of a lookup run in parallel
	eng, err := engine.New(cfg, engine.Options{OnClockTolerance: func(upstream string, now, checkedAt time.Time) {
		warnMu.Lock()
		defer warnMu.Unlock()
		fmt.Fprintf(stderr, "delve: warning: accepted the certificate of upstream %s although it is not valid yet at the system clock's %s, which is earlier than this build of delve: tolerate_unset_clock is on, so it was checked as at %s instead; set the clock with NTP\n",
			upstream, now.UTC().Format(time.RFC3339), checkedAt.UTC().Format(time.RFC3339))
	}})
	if err != nil {
		fmt.Fprintln(stderr, "delve:", err)
		return ExitUsage
	}
	defer eng.Close()

	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	res, err := eng.Resolver().Lookup(ctx, name, types, "")
	if err != nil {
		if errors.Is(err, resolver.ErrTimeout) {
			fmt.Fprintf(stderr, "delve: no answer within %s: %v\n", cfg.Timeout, err)
		} else {
			fmt.Fprintln(stderr, "delve:", err)
		}
		return ExitUpstream
	}
	if a.JSON {
		// The lookup method's object, capped as the daemon caps it; the text below has every answer.
		b, _ := json.MarshalIndent(daemon.LookupResult(res), "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		for _, rr := range res.Answers {
			fmt.Fprintln(stdout, api.RecordData(rr))
		}
	}
	switch {
	case res.Rcode == dns.RcodeNameError:
		fmt.Fprintf(stderr, "delve: %s does not exist (NXDOMAIN)\n", name)
		return ExitNoData
	case res.Rcode != dns.RcodeSuccess:
		fmt.Fprintf(stderr, "delve: upstream %s answered %s for %s\n", res.Upstream, api.RcodeName(res.Rcode), name)
		return ExitUpstream
	case len(res.Answers) == 0:
		types := make([]string, len(res.Types))
		for i, t := range res.Types {
			types[i] = api.TypeName(t)
		}
		fmt.Fprintf(stderr, "delve: %s has no %s records\n", name, strings.Join(types, " or "))
		return ExitNoData
	}
	return ExitOK
}

// config is the configuration of this lookup: the UCI file when there is one (or the built-in
// defaults), with the command line's servers, CA file, pins and timeout on top.
func (a *Args) config() (*uci.Config, error) {
	cfg := uci.Default()
	path := a.Config
	if !a.configSet {
		if _, err := os.Stat(DefaultConfig); err == nil {
			path = DefaultConfig
		}
	}
	if path != "" {
		c, err := uci.Load(path)
		if err != nil {
			return nil, err
		}
		cfg = c
	}
	if len(a.Servers) > 0 {
		cfg.Upstreams = a.Servers
	}
	if a.CAFile != "" {
		cfg.CAFile = a.CAFile
	}
	if a.Timeout > 0 {
		cfg.Timeout = a.Timeout
	}
	// The lookups of one command share nothing: no cache to fill.
	cfg.CacheSize = 0
	for i := range cfg.Upstreams {
		u := &cfg.Upstreams[i]
		if len(a.Pins) > 0 {
			u.Pins = a.Pins
		}
		if u.TLSName == "" && len(u.Pins) == 0 {
			// An address given without a name is authenticated by the address itself: the
			// certificate must carry it as an IP SAN (Cloudflare's and Quad9's do).
			u.TLSName = u.Address
		}
	}
	return cfg, nil
}
