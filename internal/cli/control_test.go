package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/delvedns/delve/internal/daemon"
	"github.com/delvedns/delve/internal/dnsserver"
	"github.com/delvedns/delve/internal/resolver"
)

// TestWriteStatusDownUpstream: what the daemon tests cannot make on demand: an upstream down
// with its error, IPv6 addresses, no /proc, an empty cache, the DNS listener.
func TestWriteStatusDownUpstream(t *testing.T) {
	st := &daemon.Status{
		Version: "0.1.0-r9", UptimeS: 3725, Started: "2026-12-07T10:00:00Z",
		Config: daemon.ConfigSummary{File: "/etc/config/delve", LoadedAt: "2026-12-07T10:00:00Z", Strategy: "fastest",
			TimeoutMS: 3000, Listen: []string{"127.0.0.1:5453", "[::1]:5453"}, LastReload: "delve.q.port: \"0\" is not a port (1-65535)"},
		Upstreams: []resolver.UpstreamStatus{
			{Name: "cloudflare", Address: "1.1.1.1", Port: 853, Healthy: true, SRTTms: 12.25, Queries: 1500, Failures: 1},
			{Name: "quad9", Address: "2620:fe::fe", Port: 853, Healthy: false, Queries: 7, Failures: 5,
				DownSince: "2026-12-07T10:59:00Z", LastError: "connecting: connection refused"},
		},
		Cache:   resolver.CacheStatus{Size: 1024, Memory: 4 << 20},
		Lookups: 20, Failures: 2,
		DNS:     &dnsserver.Stats{UDPQueries: 9, TCPQueries: 1, Answered: 10, Cached: 4},
		Process: daemon.Process{Threads: 2, Goroutines: 12, OpenFDs: -1, RSSKiB: -1, PeakRSSKiB: -1, HeapKiB: 900},
	}
	var b bytes.Buffer
	WriteStatus(&b, st)
	want := `delve 0.1.0-r9, up 1h2m5s (since 2026-12-07T10:00:00Z)
config /etc/config/delve, loaded 2026-12-07T10:00:00Z, strategy fastest, timeout 3000 ms
last reload refused: delve.q.port: "0" is not a port (1-65535)

UPSTREAM    ADDRESS            HEALTH                           SRTT      QUERIES  FAILURES  LAST ERROR
cloudflare  1.1.1.1:853        up                               12.25 ms  1500     1         -
quad9       [2620:fe::fe]:853  down since 2026-12-07T10:59:00Z  -         7        5         connecting: connection refused

cache     0 entries (at most 1024), 0 B (at most 4.0 MiB), hit rate - (0 hits, 0 misses), 0 prefetches
lookups   20 (2 failed)
dns       10 queries (9 udp, 1 tcp) on 127.0.0.1:5453 [::1]:5453: 10 answered, 4 from the cache, 0 servfail, 0 refused, 0 rate limited
memory    - RSS (peak -), 900.0 KiB Go heap, 12 goroutines on 2 threads, - open files
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestControlUsage: control commands refuse words and unknown flags before asking any daemon,
// and print their help.
func TestControlUsage(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-file")
	for _, tc := range []struct {
		args []string
		code int
		out  string // prefix of stdout, or of stderr when code != 0
	}{
		{[]string{"status", "--help"}, ExitOK, "usage: delve status|flush|reload"},
		{[]string{"flush", "-h"}, ExitOK, "usage: delve status|flush|reload"},
		{[]string{"status", "x"}, ExitUsage, `delve: delve status takes no argument "x" (to look up the name status, write status. or -- status)`},
		{[]string{"reload", "--force"}, ExitUsage, "delve: unknown flag --force for delve reload"},
		{[]string{"status", "--config", missing}, ExitUsage, "delve: --config " + missing + ": no such file"},
		{[]string{"status", "--socket"}, ExitUsage, "delve: the flag --socket needs a value"},
		{[]string{"lookup"}, ExitUsage, `delve: "lookup" is not a control command`},
	} {
		var o, e bytes.Buffer
		code := Control(context.Background(), tc.args[0], tc.args[1:], &o, &e)
		got := o.String()
		if tc.code != ExitOK {
			got = e.String()
		}
		if code != tc.code || !strings.HasPrefix(got, tc.out) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d and %q", tc.args, code, o.String(), e.String(), tc.code, tc.out)
		}
	}
}
