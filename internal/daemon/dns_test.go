package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

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

// slowNamesDoT is a DoT server that answers every question at once with 192.0.2.9, except names
// whose first label starts with "slow", which it reads and never answers: a recursive resolver
// with some dead authorities, whose connection keeps answering everything else.
func slowNamesDoT(t *testing.T) (int, string) {
	t.Helper()
	ln, caFile := loopbackTLS(t, "slow.delve.test")
	srv := &dns.Server{Listener: ln, Net: "tcp-tls", Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		if len(q.Question) == 1 && strings.HasPrefix(q.Question[0].Name, "slow") {
			return // read, never answered
		}
		r := new(dns.Msg).SetReply(q)
		if len(q.Question) == 1 && q.Question[0].Qtype == dns.TypeA {
			rr, _ := dns.NewRR(q.Question[0].Name + " 60 IN A 192.0.2.9")
			r.Answer = append(r.Answer, rr)
		}
		_ = w.WriteMsg(r)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().(*net.TCPAddr).Port, caFile
}

// TestDNSListenerTakesTheReloadedTimeout: a DNS listener query the upstream never answers gets
// SERVFAIL after the configured lookup timeout, and after a reload that changes only the timeout
// (the listener stays bound), after the new one: the listener sets no deadline of its own, the
// resolver applies the running configuration's.
func TestDNSListenerTakesTheReloadedTimeout(t *testing.T) {
	port, caFile := slowNamesDoT(t)
	dnsPort, _ := testenv.FreePort("tcp+udp")
	dnsAddr := "127.0.0.1:" + strconv.Itoa(dnsPort)
	dir := t.TempDir()
	socket := filepath.Join(dir, "delve.sock")
	path := filepath.Join(dir, "delve")
	write := func(timeoutMS int) {
		text := fmt.Sprintf("config delve 'main'\n\toption timeout '%d'\n\toption socket '%s'\n\toption ca_file '%s'\n\tlist listen '%s'\n"+
			"\nconfig upstream 'slow'\n\toption address '127.0.0.1'\n\toption port '%d'\n\toption tls_name 'slow.delve.test'\n",
			timeoutMS, socket, caFile, dnsAddr, port)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(500)
	start(t, path)
	cl := dial(t, socket)
	dc := &dns.Client{Timeout: 10 * time.Second}
	ask := func(name string) (time.Duration, *dns.Msg) {
		t.Helper()
		began := time.Now()
		r, _, err := dc.Exchange(new(dns.Msg).SetQuestion(name, dns.TypeA), dnsAddr)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return time.Since(began), r
	}
	if _, r := ask("fast.delve.test."); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("fast name: %v", r)
	}
	took, r := ask("slow1.delve.test.")
	// 1900 ms parts the two timeouts: a busy machine may add to 500 ms, nothing takes from 2 s.
	if r.Rcode != dns.RcodeServerFailure || took >= 1900*time.Millisecond {
		t.Fatalf("timeout 500 ms: %s after %v, want SERVFAIL after about 500 ms, before the 2 s the reload sets", dns.RcodeToString[r.Rcode], took)
	}
	first := took

	write(2000)
	if err := call(t, cl, "reload", nil, nil); err != nil {
		t.Fatal(err)
	}
	took, r = ask("slow2.delve.test.")
	if r.Rcode != dns.RcodeServerFailure || took < 1900*time.Millisecond {
		t.Fatalf("timeout 2000 ms after the reload: %s after %v, want SERVFAIL after about 2 s", dns.RcodeToString[r.Rcode], took)
	}
	if _, r := ask("fast2.delve.test."); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("the upstream after two slow names: %v", r)
	}
	t.Logf("SERVFAIL after %v with timeout 500 ms, after %v with 2000 ms", first.Round(time.Millisecond), took.Round(time.Millisecond))
}
