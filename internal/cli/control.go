package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/daemon"
	"github.com/delvedns/delve/internal/json"
	"github.com/delvedns/delve/ubus"
	"github.com/delvedns/delve/uci"
)

// ExitDaemon is the status of a control command that no daemon answered (not running, the
// socket cannot be opened, no reply in time) or that the daemon failed. It is ExitUpstream's
// number: in both cases the part that should have answered did not.
const ExitDaemon = ExitUpstream

// IsControl tells whether word, as the first argument, is a control command: status, flush,
// reload or redial, each one call on the daemon's socket. A name spelled like one is looked up with a
// trailing dot (delve status.) or after --.
func IsControl(word string) bool {
	switch word {
	case api.MethodStatus, api.MethodFlush, api.MethodReload, api.MethodRedial:
		return true
	}
	return false
}

// ControlUsage is the help of the control commands.
const ControlUsage = `usage: delve status|flush|reload|redial [--socket PATH] [--config FILE] [--json]

Talks to the running daemon (delve serve) on its JSON-RPC socket:
  status   its state as a table: upstreams, cache, lookups, uptime, memory
  flush    empties the cache
  reload   re-reads the UCI file; a bad file is refused (the refusal is printed, exit 2)
           and the daemon keeps its running configuration
  redial   drops every upstream connection and forgets their failures (as SIGUSR1)

  --socket PATH    the daemon's socket (default: main.socket of the UCI file, else
                   /var/run/delve/delve.sock)
  --config FILE    the UCI file to take main.socket from (default /etc/config/delve)
  --json           print the method's JSON result instead (as ubus call delve METHOD)

Exit status: 0 done, 2 usage error or a refused reload, 3 no daemon answered.
`

type controlArgs struct {
	_              [0]func() // never compared: no equality function in the binary
	socket, config string
	json, help     bool
}

func parseControl(cmd string, argv []string) (*controlArgs, error) {
	a := &controlArgs{}
	for i := 0; i < len(argv); i++ {
		arg := argv[i]
		if !strings.HasPrefix(arg, "-") || arg == "-" || arg == "--" {
			return nil, usagef("delve %s takes no argument %q (to look up the name %s, write %s. or -- %s)", cmd, arg, cmd, cmd, cmd)
		}
		name, value := flagAt(argv, &i)
		var err error
		switch name {
		case "h", "help":
			a.help = true
		case "json":
			a.json = true
		case "socket":
			a.socket, err = value()
		case "config", "c":
			a.config, err = value()
			if err == nil {
				// Only the socket is read from the file, and a broken file still names one
				// (the daemon may run with what it loaded before), but a file that is not
				// there at all is a typo.
				if _, serr := os.Stat(a.config); errors.Is(serr, fs.ErrNotExist) {
					err = usagef("--config %s: no such file", a.config)
				}
			}
		default:
			return nil, usagef("unknown flag %s for delve %s (see delve %s --help)", arg, cmd, cmd)
		}
		if err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Control runs `delve status|flush|reload|redial [flags]` (argv are the words after the command) and
// returns the exit status.
func Control(ctx context.Context, cmd string, argv []string, stdout, stderr io.Writer) int {
	if !IsControl(cmd) {
		fmt.Fprintf(stderr, "delve: %q is not a control command (status, flush, reload, redial)\n", cmd)
		return ExitUsage
	}
	a, err := parseControl(cmd, argv)
	if err != nil {
		fmt.Fprintln(stderr, "delve:", err)
		return ExitUsage
	}
	if a.help {
		fmt.Fprint(stdout, ControlUsage)
		return ExitOK
	}
	o := ubus.Options{Socket: a.socket, Config: a.config}
	if o.Config == "" {
		if _, err := os.Stat(DefaultConfig); err == nil {
			o.Config = DefaultConfig
		}
	}
	if o.Socket == "" && o.Config != "" {
		// Not through ubus.Options, which needs a file that loads: the file may be broken
		// (that may be why it is being reloaded) while its daemon runs with an earlier version.
		// A file that cannot even be parsed leaves the default socket.
		if s, err := uci.MainSocket(o.Config); err == nil {
			o.Socket = s
		}
	}
	res, err := ubus.Forward(ctx, o, cmd, nil)
	if err != nil {
		fmt.Fprintln(stderr, "delve:", err)
		if api.CodeOf(err) == api.CodeConfig {
			return ExitUsage
		}
		return ExitDaemon
	}
	if a.json {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			fmt.Fprintln(stderr, "delve: the daemon's reply is not JSON:", err)
			return ExitDaemon
		}
		fmt.Fprintf(stdout, "%s\n", b)
		return ExitOK
	}
	decode := func(v any) bool {
		if err := json.Unmarshal(res, v); err != nil {
			fmt.Fprintf(stderr, "delve: reading the daemon's reply to %s: %v\n", cmd, err)
			return false
		}
		return true
	}
	switch cmd {
	case api.MethodStatus:
		var st daemon.Status
		if !decode(&st) {
			return ExitDaemon
		}
		WriteStatus(stdout, &st)
	case api.MethodFlush:
		var r struct {
			Flushed int `json:"flushed"`
		}
		if !decode(&r) {
			return ExitDaemon
		}
		fmt.Fprintf(stdout, "flushed %d cached %s\n", r.Flushed, plural(r.Flushed, "answer", "answers"))
	case api.MethodRedial:
		var r struct {
			Redialed int `json:"redialed"`
		}
		if !decode(&r) {
			return ExitDaemon
		}
		fmt.Fprintf(stdout, "redialed %d %s: connections dropped, failures forgotten\n", r.Redialed, plural(r.Redialed, "upstream", "upstreams"))
	case api.MethodReload:
		var r struct {
			File      string   `json:"file"`
			Upstreams int      `json:"upstreams"`
			Warnings  []string `json:"warnings"`
		}
		if !decode(&r) {
			return ExitDaemon
		}
		fmt.Fprintf(stdout, "reloaded %s: %d %s\n", r.File, r.Upstreams, plural(r.Upstreams, "upstream", "upstreams"))
		for _, w := range r.Warnings {
			fmt.Fprintln(stdout, "warning:", w)
		}
	}
	return ExitOK
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// WriteStatus prints st for people: a header, one row per upstream, then the cache, the
// lookups, the DNS listener and the process. Every number is the status object's, as it is.
func WriteStatus(w io.Writer, st *daemon.Status) {
	uptime := time.Duration(st.UptimeS) * time.Second
	fmt.Fprintf(w, "delve %s, up %s (since %s)\n", st.Version, uptime, st.Started)
	c := st.Config
	fmt.Fprintf(w, "config %s, loaded %s, strategy %s, timeout %d ms\n", orDash(c.File), c.LoadedAt, c.Strategy, c.TimeoutMS)
	if c.LastReload != "" {
		fmt.Fprintf(w, "last reload refused: %s\n", c.LastReload)
	}
	fmt.Fprintln(w)

	rows := [][]string{{"UPSTREAM", "ADDRESS", "HEALTH", "SRTT", "QUERIES", "FAILURES", "LAST ERROR"}}
	for _, u := range st.Upstreams {
		health := "up"
		if !u.Healthy {
			health = "down"
			if u.DownSince != "" {
				health += " since " + u.DownSince
			}
		}
		addr := u.Address + ":" + strconv.Itoa(u.Port)
		if strings.Contains(u.Address, ":") {
			addr = "[" + u.Address + "]:" + strconv.Itoa(u.Port)
		}
		srtt := "-"
		if u.SRTTms > 0 {
			srtt = strconv.FormatFloat(u.SRTTms, 'f', -1, 64) + " ms"
		}
		rows = append(rows, []string{u.Name, addr, health, srtt, strconv.FormatUint(u.Queries, 10),
			strconv.FormatUint(u.Failures, 10), orDash(u.LastError)})
	}
	writeTable(w, rows)
	fmt.Fprintln(w)

	ch := st.Cache
	hitRate := "-"
	if n := ch.Hits + ch.Misses; n > 0 {
		hitRate = strconv.FormatFloat(float64(ch.Hits)*100/float64(n), 'f', 1, 64) + " %"
	}
	fmt.Fprintf(w, "cache     %d entries (at most %d), %s (at most %s), hit rate %s (%d hits, %d misses), %d prefetches\n",
		ch.Entries, ch.Size, kib(int64(ch.Bytes)), kib(int64(ch.Memory)), hitRate, ch.Hits, ch.Misses, ch.Prefetches)
	fmt.Fprintf(w, "lookups   %d (%d failed)\n", st.Lookups, st.Failures)
	if d := st.DNS; d != nil {
		n := d.UDPQueries + d.TCPQueries
		fmt.Fprintf(w, "dns       %d %s (%d udp, %d tcp) on %s: %d answered, %d from the cache, %d servfail, %d refused, %d rate limited\n",
			n, plural(int(n), "query", "queries"), d.UDPQueries, d.TCPQueries, strings.Join(c.Listen, " "), d.Answered, d.Cached, d.ServFail, d.Refused, d.RateLimited)
	}
	p := st.Process
	fds := "-" // no /proc
	if p.OpenFDs >= 0 {
		fds = strconv.Itoa(p.OpenFDs)
	}
	fmt.Fprintf(w, "memory    %s RSS (peak %s), %s Go heap, %d goroutines on %d %s, %s open files\n",
		kibOrDash(p.RSSKiB), kibOrDash(p.PeakRSSKiB), kibOrDash(p.HeapKiB), p.Goroutines, p.Threads, plural(p.Threads, "thread", "threads"), fds)
}

// writeTable prints rows in columns two spaces apart; the last column is not padded.
func writeTable(w io.Writer, rows [][]string) {
	var widths []int
	for _, r := range rows {
		for i, cell := range r {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], len(cell)) // ASCII: names, addresses, numbers
		}
	}
	for _, r := range rows {
		for i, cell := range r[:len(r)-1] {
			fmt.Fprintf(w, "%-*s  ", widths[i], cell)
		}
		fmt.Fprintln(w, r[len(r)-1])
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// kib is n bytes for people: bytes below 1 KiB, else KiB or MiB with one decimal.
func kib(n int64) string {
	switch {
	case n < 1<<10:
		return strconv.FormatInt(n, 10) + " B"
	case n < 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
	}
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
}

// kibOrDash is a KiB count (-1: unknown, no /proc) for people.
func kibOrDash(n int64) string {
	if n < 0 {
		return "-"
	}
	return kib(n << 10)
}
