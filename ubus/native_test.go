package ubus_test

import (
	"context"
	stdjson "encoding/json"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/jsonrpc"
	"github.com/delvedns/delve/internal/testenv"
	"github.com/delvedns/delve/ubus"
	"github.com/delvedns/delve/ubus/blob"
	"github.com/delvedns/delve/ubus/ubusd"
	"github.com/delvedns/delve/ubus/ubusd/ubusdtest"
)

// These tests run the real daemon with option ubus 'native' against the stand-in ubusd
// (ubusdtest), which speaks ubusd's protocol as the recorded session in testdata shows it.

func standIn(t *testing.T, dir string) *ubusdtest.Server {
	t.Helper()
	s, err := ubusdtest.Listen(filepath.Join(dir, "ubus.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "dvn") // unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// waitFor polls cond until it holds, for at most 30 s (a hang, not a speed).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30 s", what)
		}
	}
}

// ubusCall calls the native object as `ubus call` does: the JSON arguments become blobmsg
// (blob.AddJSON is held to `ubus call`'s bytes by the recorded session), the reply comes back as
// JSON (as `ubus call` prints it, without the indentation).
func ubusCall(t *testing.T, bus *ubusdtest.Server, method, args string) (string, ubusd.Status) {
	t.Helper()
	var w blob.Buf
	if err := blob.AddJSON(&w, []byte(args)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reply, st, err := bus.Call(ctx, ubus.ObjectName, method, w.Bytes())
	if err != nil {
		t.Fatalf("ubus call delve %s: %v", method, err)
	}
	js, err := blob.AppendJSON(nil, reply, true)
	if err != nil {
		t.Fatalf("ubus call delve %s: reply %x: %v", method, reply, err)
	}
	return string(js), st
}

// viaRPCD is what `ubus call` prints for a bridge call: rpcd turns the plugin's JSON into
// blobmsg (blobmsg_add_object), and `ubus call` that back into JSON.
func viaRPCD(t *testing.T, first []byte) string {
	t.Helper()
	var w blob.Buf
	if err := blob.AddJSON(&w, first); err != nil {
		t.Fatal(err)
	}
	js, err := blob.AppendJSON(nil, w.Bytes(), true)
	if err != nil {
		t.Fatal(err)
	}
	return string(js)
}

// volatile are members that differ from one call to the next whoever answers.
var volatile = map[string]bool{"ttl": true, "rtt_ms": true, "uptime_s": true, "loaded_at": true, "process": true, "time": true}

// normal decodes js and blanks what changes between two calls: volatile members, and in a
// status reply every number (counters).
func normal(t *testing.T, js string, status bool) any {
	t.Helper()
	var v any
	if err := stdjson.Unmarshal([]byte(js), &v); err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if volatile[k] {
					x[k] = "…"
				} else {
					x[k] = walk(e)
				}
			}
		case []any:
			for i, e := range x {
				x[i] = walk(e)
			}
		case float64:
			if status {
				return 0.0
			}
		}
		return v
	}
	return walk(v)
}

// TestConformance is the one test that runs the bridge (`delve rpcd call` as rpcd runs it) and
// the native object against the same cases, every method of the table included, and wants the
// same replies: results, error objects and status 0 alike.
func TestConformance(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	bus := standIn(t, shortDir(t))
	d := startDaemon(t, ub, 3000, [][2]string{{"unbound", ub.Addr()}}, "option ubus 'native'", "option ubus_socket '"+bus.Path+"'")
	waitFor(t, "the object registered", func() bool { return bus.Registered(ubus.ObjectName) })

	cases := []struct{ method, args string }{
		{"lookup", `{"name":"a.delve.test"}`},
		{"lookup", `{"name":"delve.test","type":"MX"}`},
		{"lookup", `{"name":"missing.delve.test","type":"A"}`},
		{"lookup", `{"name":"192.0.2.1"}`},
		{"lookup", `{"name":"big.delve.test","type":"A"}`},
		{"lookup", `{"name":"a.delve.test","upstream":"unbound","ubus_rpc_session":"0123456789abcdef"}`},
		{"lookup", `{"name":"a.delve.test","upstream":"nosuch"}`},
		{"lookup", `{"name":"a..b"}`},
		{"lookup", `{"name":"a.delve.test","type":"AXFR"}`},
		{"lookup", `{"name":"a.delve.test","type":"NOPE"}`},
		{"lookup", `{"name":5}`},
		{"lookup", `{"name":true}`},
		{"lookup", `{"name":1.5}`},
		{"lookup", `{"name":null}`},
		{"lookup", `{"name":["a.delve.test"]}`},
		{"lookup", `{"name":{"x":"y"}}`},
		{"lookup", `{}`},
		{"status", `{}`},
		{"flush", `{}`},
		{"reload", `{}`},
	}
	for _, m := range api.Methods() {
		if !slices.ContainsFunc(cases, func(c struct{ method, args string }) bool { return c.method == m.Name }) {
			cases = append(cases, struct{ method, args string }{m.Name, `{}`})
		}
	}
	for _, c := range cases {
		t.Run(c.method+c.args, func(t *testing.T) {
			// Once first, so that a lookup is a cache hit for both.
			ubusCall(t, bus, c.method, c.args)
			native, st := ubusCall(t, bus, c.method, c.args)
			if st != ubusd.StatusOK {
				t.Fatalf("native status %v; the bridge's is always 0", st)
			}
			// rpcd passes the blobmsg arguments to the plugin as JSON (blobmsg_format_json).
			var w blob.Buf
			_ = blob.AddJSON(&w, []byte(c.args))
			stdin, _ := blob.AppendJSON(nil, w.Bytes(), true)
			bridge := viaRPCD(t, rpcd(t, d.env, stdin, "call", c.method).first)
			status := c.method == api.MethodStatus
			if n, b := normal(t, native, status), normal(t, bridge, status); !reflect.DeepEqual(n, b) {
				t.Fatalf("native:\n%s\nbridge:\n%s", native, bridge)
			}
			t.Logf("%s", native)
		})
	}
	// A method that is not in the table: rpcd registers only the listed ones, so libubus
	// answers Method not found through the bridge, and so does the native object.
	if _, st := ubusCall(t, bus, "nosuch", `{}`); st != ubusd.StatusMethodNotFound {
		t.Fatalf("nosuch: status %v", st)
	}
	// The signature is the bridge's list: every argument a string.
	sig, err := bus.Signature(ubus.ObjectName)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range sig {
		names = append(names, f.Name)
		m, _ := api.FindMethod(f.Name)
		if len(f.List) != len(m.Params) {
			t.Fatalf("%s: %d arguments registered, the table has %d", f.Name, len(f.List), len(m.Params))
		}
		for i, p := range f.List {
			if p.Name != m.Params[i].Name || blob.Type(p.Int) != blob.TypeString {
				t.Fatalf("%s: argument %+v, want %s String", f.Name, p, m.Params[i].Name)
			}
		}
	}
	var want []string
	for _, m := range api.Methods() {
		want = append(want, m.Name)
	}
	if !slices.Equal(names, want) {
		t.Fatalf("registered %v, the table has %v", names, want)
	}
	// With native, the bridge's list declines, so that rpcd leaves the name to the daemon.
	if r := rpcd(t, d.env, nil, "list"); string(r.first) != "{}" {
		t.Fatalf("list with ubus native printed %s", r.first)
	}
}

// TestNativeConcurrentAndEvents: a lookup that waits on a silent upstream holds up no status
// call; a subscriber gets a lookup notification with the WebSocket stream's fields, only while
// subscribed.
func TestNativeConcurrentAndEvents(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	silent := testenv.DiscardConns(t, ln)
	bus := standIn(t, shortDir(t))
	startDaemon(t, ub, 3000, [][2]string{{"unbound", ub.Addr()}, {"silent", "127.0.0.1:" + strconv.Itoa(silent)}},
		"option ubus 'native'", "option ubus_socket '"+bus.Path+"'")
	waitFor(t, "the object registered", func() bool { return bus.Registered(ubus.ObjectName) })

	slow := make(chan string, 1)
	go func() {
		js, _ := ubusCall(t, bus, "lookup", `{"name":"a.delve.test","upstream":"silent"}`)
		slow <- js
	}()
	// Its INVOKE is on the daemon's connection before any status call's.
	waitFor(t, "the slow lookup sent", func() bool { return bus.Pending() == 1 })
	for range 5 {
		js, st := ubusCall(t, bus, "status", `{}`)
		if st != ubusd.StatusOK || !strings.Contains(js, `"version"`) {
			t.Fatalf("status during a slow lookup: %v %s", st, js)
		}
		select {
		case js := <-slow:
			t.Fatalf("the slow lookup ended before the status calls: %s", js)
		default:
		}
	}
	if js := <-slow; !strings.Contains(js, `"code":"timeout"`) && !strings.Contains(js, `"code":"no_upstream"`) {
		t.Fatalf("the lookup through the silent upstream: %s", js)
	}

	// Nobody subscribed: nothing is sent.
	ubusCall(t, bus, "lookup", `{"name":"a.delve.test"}`)
	notes, unsubscribe, err := bus.Subscribe(ubus.ObjectName)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "status showing the subscriber", func() bool {
		js, _ := ubusCall(t, bus, "status", `{}`)
		return strings.Contains(js, `"subscribed":true`)
	})
	ubusCall(t, bus, "lookup", `{"name":"delve.test","type":"MX"}`)
	var n ubusdtest.Notification
	select {
	case n = <-notes:
	case <-time.After(10 * time.Second):
		t.Fatal("no notification")
	}
	js, err := blob.AppendJSON(nil, n.Data, true)
	if err != nil || n.Type != ubus.NotifyType {
		t.Fatalf("notification %q %s: %v", n.Type, js, err)
	}
	var got map[string]any
	if err := stdjson.Unmarshal(js, &got); err != nil {
		t.Fatal(err)
	}
	// The fields of the WebSocket subscribe stream, the same event type.
	wantKeys := map[string]bool{}
	evJS, _ := stdjson.Marshal(jsonrpc.Event{Name: "x"})
	var ev map[string]any
	_ = stdjson.Unmarshal(evJS, &ev)
	for k := range ev {
		wantKeys[k] = true
	}
	for k := range got {
		if !wantKeys[k] {
			t.Errorf("notification member %q is not in the WebSocket event", k)
		}
	}
	for k := range wantKeys {
		if _, ok := got[k]; !ok {
			t.Errorf("notification lacks %q: %s", k, js)
		}
	}
	if got["name"] != "delve.test." || got["from"] != "ubus" || got["rcode"] != "NOERROR" {
		t.Fatalf("notification %s", js)
	}
	unsubscribe()
	waitFor(t, "status showing no subscriber", func() bool {
		js, _ := ubusCall(t, bus, "status", `{}`)
		return strings.Contains(js, `"subscribed":false`) && strings.Contains(js, `"subscribers":0`)
	})
}

// TestNativeReconnects: the object is registered again when ubusd restarts, and when the name
// was taken, once it is free; the log says so once, clearly.
func TestNativeReconnects(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	dir := shortDir(t)
	path := filepath.Join(dir, "ubus.sock")
	bus, err := ubusdtest.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	// Another client has the name (rpcd with the bridge, say).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	other, err := ubusd.Dial(ctx, path, ubusd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Add(ctx, &ubusd.Object{Name: ubus.ObjectName, Handler: func(context.Context, *ubusd.Request) ([]byte, ubusd.Status) { return nil, 0 }}); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, ub, 3000, [][2]string{{"unbound", ub.Addr()}}, "option ubus 'native'", "option ubus_socket '"+path+"'")
	waitFor(t, "the log line about the taken name", func() bool { return strings.Contains(d.log.String(), "name is taken by another client") })
	waitFor(t, "two refused attempts", func() bool { return bus.Adds() >= 3 })
	if n := strings.Count(d.log.String(), "name is taken"); n != 1 {
		t.Fatalf("the taken name was logged %d times:\n%s", n, d.log)
	}
	other.Close()
	// (Registered would still see the other client's object until the stand-in reads its close.)
	waitFor(t, "registered once the name is free", func() bool { return strings.Contains(d.log.String(), "ubus object registered") })
	if js, st := ubusCall(t, bus, "lookup", `{"name":"a.delve.test"}`); st != 0 || !strings.Contains(js, `"rcode":"NOERROR"`) {
		t.Fatalf("lookup: %v %s", st, js)
	}

	// ubusd restarts.
	bus.Close()
	bus2, err := ubusdtest.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer bus2.Close()
	waitFor(t, "registered with the new ubusd", func() bool { return strings.Count(d.log.String(), "ubus object registered") == 2 })
	if js, st := ubusCall(t, bus2, "status", `{}`); st != 0 || !strings.Contains(js, `"registered":true`) {
		t.Fatalf("status: %v %s", st, js)
	}
	if !strings.Contains(d.log.String(), "registering the ubus object again") {
		t.Fatalf("no log line about ubusd going away:\n%s", d.log)
	}
}

// TestNativeReloadSwitchesOff: a reload through the object itself that turns ubus native off
// gets its answer, then the object goes, the daemon goes on serving, and the bridge's list
// declines no more. (The object's Close waits for its calls, and the reload holds the daemon's
// reload lock: closing it in the reload itself would never end.)
func TestNativeReloadSwitchesOff(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	bus := standIn(t, shortDir(t))
	d := startDaemon(t, ub, 3000, [][2]string{{"unbound", ub.Addr()}}, "option ubus 'native'", "option ubus_socket '"+bus.Path+"'")
	waitFor(t, "the object registered", func() bool { return bus.Registered(ubus.ObjectName) })
	conf, err := os.ReadFile(d.config)
	if err != nil {
		t.Fatal(err)
	}
	off := strings.Replace(string(conf), "option ubus 'native'", "option ubus 'rpcd'", 1)
	if err := os.WriteFile(d.config, []byte(off), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reply, st, err := bus.Call(ctx, ubus.ObjectName, "reload", nil)
	js, _ := blob.AppendJSON(nil, reply, true)
	if err != nil || st != ubusd.StatusOK || !strings.Contains(string(js), `"reloaded":true`) {
		t.Fatalf("reload: %v %v %s\n%s", err, st, js, d.log)
	}
	waitFor(t, "the object gone", func() bool { return !bus.Registered(ubus.ObjectName) })
	if r := rpcd(t, d.env, []byte(`{}`), "call", "status"); !strings.Contains(string(r.first), `"version"`) || strings.Contains(string(r.first), `"ubus"`) {
		t.Fatalf("status through the bridge after the switch: %s\n%s", r.first, d.log)
	}
	if r := rpcd(t, d.env, nil, "list"); string(r.first) == "{}" {
		t.Fatal("list still declines with ubus rpcd")
	}
}
