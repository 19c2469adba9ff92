package daemon

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/json"
	"github.com/delvedns/delve/internal/testenv"
)

func dig(t *testing.T, port int, name, typ string, tcp bool) *testenv.KdigResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := testenv.Dig(ctx, testenv.DigQuery{Port: port, Name: name, Type: typ, TCP: tcp})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestDNSListener: with main.listen set, dig gets answers over UDP and TCP from the same resolver
// and cache as the JSON-RPC lookups; they count in status and reach WebSocket subscribers; a
// reload moves the listener, and one that cannot bind keeps the old one serving.
func TestDNSListener(t *testing.T) {
	testenv.RequireTool(t, "dig", "bind9-dnsutils")
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	c := newConf(t, ub)
	port1, _ := testenv.FreePort("tcp+udp")
	wsPort, _ := testenv.FreePort("tcp")
	c.websocket = "127.0.0.1:" + strconv.Itoa(wsPort)
	c.extra = "\tlist listen '127.0.0.1:" + strconv.Itoa(port1) + "'\n"
	path := c.write(t)
	start(t, path)
	cl := dial(t, c.socket)

	sub := wsDial(t, c.websocket)
	if err := sub.WriteJSON(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "subscribe"}); err != nil {
		t.Fatal(err)
	}
	var m rpcMsg
	if err := sub.ReadJSON(&m); err != nil || m.Error != nil {
		t.Fatalf("subscribe: %+v %v", m, err)
	}

	for _, tcp := range []bool{false, true} {
		res := dig(t, port1, "a.delve.test", "A", tcp)
		if res.Rcode != "NOERROR" || strings.Join(res.Data("A"), ",") != "192.0.2.1" {
			t.Fatalf("dig (tcp=%v): %s %v", tcp, res.Rcode, res.Data("A"))
		}
	}
	if res := dig(t, port1, "missing.delve.test", "A", false); res.Rcode != "NXDOMAIN" {
		t.Fatalf("NXDOMAIN: %s", res.Rcode)
	}
	// The JSON-RPC lookup shares the cache the listener filled.
	var l api.Lookup
	if err := call(t, cl, "lookup", map[string]any{"name": "a.delve.test", "type": "A"}, &l); err != nil || !l.Cached {
		t.Fatalf("lookup after dig: %+v %v", l, err)
	}
	var st Status
	if err := call(t, cl, "status", nil, &st); err != nil {
		t.Fatal(err)
	}
	if st.DNS == nil || st.DNS.UDPQueries != 2 || st.DNS.TCPQueries != 1 || st.DNS.Answered != 3 {
		t.Fatalf("status dns %+v", st.DNS)
	}
	var ev struct {
		Name string `json:"name"`
		From string `json:"from"`
	}
	for ev.From != "dns" {
		if err := sub.ReadJSON(&m); err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal(m.Params, &ev)
	}

	// Reload onto another port: the old one stops answering, the new one answers.
	port2, _ := testenv.FreePort("tcp+udp")
	good, _ := os.ReadFile(path)
	moved := strings.Replace(string(good), strconv.Itoa(port1), strconv.Itoa(port2), 1)
	_ = os.WriteFile(path, []byte(moved), 0o600)
	if err := call(t, cl, "reload", nil, nil); err != nil {
		t.Fatal(err)
	}
	if res := dig(t, port2, "a.delve.test", "AAAA", false); strings.Join(res.Data("AAAA"), ",") != "2001:db8::1" {
		t.Fatalf("after moving: %v", res.Data("AAAA"))
	}
	if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port1)); err == nil {
		c.Close()
		t.Fatal("the old listener still accepts")
	}
	if err := call(t, cl, "status", nil, &st); err != nil || st.DNS.UDPQueries != 3 {
		t.Fatalf("counters across the reload: %+v %v", st.DNS, err)
	}

	// A port someone else holds: the reload is refused and port2 keeps answering.
	held, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	busy := strings.Replace(moved, strconv.Itoa(port2), strconv.Itoa(held.LocalAddr().(*net.UDPAddr).Port), 1)
	_ = os.WriteFile(path, []byte(busy), 0o600)
	err = call(t, cl, "reload", nil, nil)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeConfig || !strings.Contains(ae.Message, "address already in use") {
		t.Fatalf("reload onto a busy port: %v", err)
	}
	if res := dig(t, port2, "a.delve.test", "A", true); strings.Join(res.Data("A"), ",") != "192.0.2.1" {
		t.Fatalf("after the refused reload: %v", res.Data("A"))
	}
}
