package faults

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/testenv"
)

// TestRedialMethod: the redial method does what SIGUSR1 does, through the socket and the
// WebSocket of the real daemon: every upstream connection is dropped (the next lookup opens a new
// one), and an upstream marked down is forgotten at once, without waiting for its probe.
// ubus.TestRedialThroughRPCD covers the rpcd bridge.
func TestRedialMethod(t *testing.T) {
	t.Parallel()
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	px := newProxy(t, ub.Addr())
	deadPort := testenv.DeadPort(t)
	wsPort, err := testenv.FreePort("tcp")
	if err != nil {
		t.Fatal(err)
	}
	wsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(wsPort))
	c := newConf(t)
	c.main = []string{"option websocket '" + wsAddr + "'"}
	c.ups = []upstreamConf{
		{name: "wan", port: px.port(), tlsName: ub.TLSName, ca: ub.CA.CertPEM},
		{name: "dead", port: deadPort, tlsName: ub.TLSName},
	}
	p := serve(t, c, serveOptions{})
	cl := p.client(t)
	ws := wsDial(t, wsAddr, nil)

	n := 0
	miss := func(via string) error {
		n++
		params := map[string]string{"name": testenv.WildName("redial" + strconv.Itoa(n)), "type": "A"}
		if via != "" {
			params["upstream"] = via
		}
		return call(cl, "lookup", params, nil)
	}
	byName := func(name string) (healthy bool, open int, opened uint64) {
		for _, u := range status(t, cl).Upstreams {
			if u.Name == name {
				return u.Healthy, u.OpenConns, u.ConnsOpened
			}
		}
		t.Fatalf("no upstream %q in status", name)
		return
	}

	redials := []struct {
		via  string
		call func() map[string]any
	}{
		{"socket", func() map[string]any {
			var m map[string]any
			if err := call(cl, "redial", nil, &m); err != nil {
				t.Fatalf("redial: %v", err)
			}
			return m
		}},
		{"websocket", func() map[string]any {
			m := wsCall(t, ws, `{"jsonrpc":"2.0","id":7,"method":"redial"}`)
			if m.Error != nil {
				t.Fatalf("redial over the WebSocket: %+v", m.Error)
			}
			r, _ := m.Result.(map[string]any)
			return r
		}},
	}
	for i, r := range redials {
		// The dead upstream is marked down by two refused connections.
		for range 2 {
			if err := miss("dead"); err == nil {
				t.Fatal("a lookup through a port nobody listens on succeeded")
			}
		}
		if healthy, _, _ := byName("dead"); healthy {
			t.Fatal("two refused connections left the upstream healthy")
		}
		if err := miss(""); err != nil {
			t.Fatalf("lookup before the redial: %v", err)
		}
		_, open, opened := byName("wan")
		if open != 1 || opened != uint64(i+1) {
			t.Fatalf("before redial %d: %d open, %d opened", i+1, open, opened)
		}

		got := r.call()
		if got["redialed"] != float64(2) {
			t.Fatalf("redial over the %s answered %v, want {\"redialed\":2}", r.via, got)
		}
		p.waitCount(t, "reconnecting every upstream (redial method)", i+1)
		if healthy, _, _ := byName("dead"); !healthy {
			t.Fatalf("redial over the %s did not forget the dead upstream's failures", r.via)
		}
		if _, ok := eventually(30*time.Second, func() bool { _, open, _ := byName("wan"); return open == 0 }); !ok {
			t.Fatalf("redial over the %s left a connection open", r.via)
		}
		if err := miss(""); err != nil {
			t.Fatalf("lookup after the redial over the %s: %v", r.via, err)
		}
		if _, _, opened := byName("wan"); opened != uint64(i+2) {
			t.Fatalf("after redial over the %s: %d connections opened, want %d", r.via, opened, i+2)
		}
	}
	if got := p.count("(SIGUSR1)"); got != 0 {
		t.Fatalf("the method was logged as SIGUSR1 %d times", got)
	}
}
