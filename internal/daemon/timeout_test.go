package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/testenv"
	"github.com/delvedns/delve/internal/upstream"
)

// silentTCP accepts connections and reads them without ever answering: a DoT port behind which
// the TLS handshake never completes.
func silentTCP(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return testenv.DiscardConns(t, ln)
}

// TestTimeoutErrorsNameTheirDeadline: a lookup whose upstream never finishes the TLS handshake
// fails with an error naming the deadline that expired: the dial timeout when it is the shorter,
// the lookup's own timeout when that is.
func TestTimeoutErrorsNameTheirDeadline(t *testing.T) {
	port := silentTCP(t)
	cases := []struct {
		name            string
		timeout, dialTO time.Duration
		code            api.Code
		want, notWant   string
	}{
		{"the dial timeout expires first", 2 * time.Second, 300 * time.Millisecond, api.CodeNoUpstream,
			"the TLS handshake did not finish within the dial timeout (300ms)", "2s"},
		{"the lookup timeout expires first", 400 * time.Millisecond, 5 * time.Second, api.CodeTimeout,
			"timed out after 400ms (upstream silent (127.0.0.1:", "5s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			socket := filepath.Join(dir, "delve.sock")
			path := filepath.Join(dir, "delve")
			text := fmt.Sprintf("config delve 'main'\n\toption timeout '%d'\n\toption socket '%s'\n\n"+
				"config upstream 'silent'\n\toption address '127.0.0.1'\n\toption port '%d'\n\toption tls_name 'dot.delve.test'\n",
				tc.timeout.Milliseconds(), socket, port)
			if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			startWith(t, Options{Config: path, Tune: func(o *upstream.Options) { o.DialTimeout = tc.dialTO }})
			cl := dial(t, socket)
			began := time.Now()
			err := call(t, cl, "lookup", map[string]any{"name": "a.delve.test", "type": "A"}, nil)
			took := time.Since(began)
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code != tc.code || !strings.Contains(ae.Message, tc.want) || strings.Contains(ae.Message, tc.notWant) {
				t.Fatalf("after %v: err = %v, want %s %q and no %q", took, err, tc.code, tc.want, tc.notWant)
			}
			if limit := min(tc.timeout, tc.dialTO); took < limit {
				t.Fatalf("failed after %v, before the %v deadline", took, limit)
			}
			t.Logf("after %v: %v", took.Round(time.Millisecond), ae.Message)
		})
	}
}
