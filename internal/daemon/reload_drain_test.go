package daemon

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/testenv"
)

// TestReloadDoesNotWaitForDrain: a reload that moves the DNS listener while a TCP client holds a
// connection to the old one, half a query sent, returns its reply, and status answers, without
// waiting for that connection to drain: the old listener is retired outside the daemon's lock,
// after the new one is in place. Before, the reload closed the old listener under the lock and
// waited up to ShutdownGrace for its connections, and every JSON-RPC call waited with it.
func TestReloadDoesNotWaitForDrain(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	c := newConf(t, ub)
	port1, _ := testenv.FreePort("tcp+udp")
	c.extra = "\tlist listen '127.0.0.1:" + strconv.Itoa(port1) + "'\n"
	path := c.write(t)
	start(t, path)
	cl := dial(t, c.socket)

	hold, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port1))
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	if _, err := hold.Write([]byte{0}); err != nil { // the first byte of a length prefix
		t.Fatal(err)
	}

	port2, _ := testenv.FreePort("tcp+udp")
	good, _ := os.ReadFile(path)
	if err := os.WriteFile(path, []byte(strings.Replace(string(good), strconv.Itoa(port1), strconv.Itoa(port2), 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := call(t, cl, "reload", nil, nil); err != nil {
		t.Fatal(err)
	}
	var st Status
	if err := call(t, cl, "status", nil, &st); err != nil {
		t.Fatal(err)
	}
	// The bound is the drain's, not a speed: a reload that waited for the held connection would
	// take ShutdownGrace.
	if took := time.Since(began); took >= ShutdownGrace {
		t.Fatalf("reload and status took %v: they waited for the old listener's drain (%v)", took, ShutdownGrace)
	}
	if l, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port2)); err != nil {
		t.Fatalf("the new listener does not accept: %v", err)
	} else {
		l.Close()
	}
}
