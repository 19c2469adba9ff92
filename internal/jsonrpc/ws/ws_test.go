package ws

import (
	"bytes"
	"context"
	stdjson "encoding/json"
	"errors"
	"net"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/json"
	"github.com/delvedns/delve/internal/jsonrpc"
)

type fake struct {
	mu    sync.Mutex
	gates map[string]chan struct{}
}

func (f *fake) gate(name string) chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gates == nil {
		f.gates = map[string]chan struct{}{}
	}
	g, ok := f.gates[name]
	if !ok {
		g = make(chan struct{})
		f.gates[name] = g
	}
	return g
}

func (f *fake) handle(ctx context.Context, method string, params json.RawMessage, from string) (any, error) {
	switch method {
	case "echo":
		if params == nil {
			return nil, nil
		}
		return params, nil
	case "from":
		return from, nil
	case "block":
		var p struct {
			Gate string `json:"gate"`
		}
		if err := jsonrpc.DecodeParams(params, &p); err != nil {
			return nil, err
		}
		select {
		case <-f.gate(p.Gate):
			return p.Gate, nil
		case <-ctx.Done():
			return nil, api.NewError(api.CodeTimeout, "canceled")
		}
	}
	return nil, api.NewError(api.CodeMethodNotFound, "there is no method "+method)
}

type testServer struct {
	srv  *Server
	url  string
	addr string
	fake *fake
	hub  *jsonrpc.Hub
}

func startWS(t *testing.T, o Options) *testServer {
	t.Helper()
	ts := &testServer{fake: &fake{}}
	if o.Handler == nil {
		o.Handler = ts.fake.handle
	}
	ts.hub = o.Hub
	ts.srv = NewServer(o)
	l, err := ts.srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = l.Addr().String()
	ts.url = "ws://" + ts.addr + "/"
	served := make(chan error, 1)
	go func() { served <- ts.srv.Serve(l) }()
	t.Cleanup(func() {
		ts.srv.Close()
		if err := <-served; !errors.Is(err, jsonrpc.ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return ts
}

func dial(t *testing.T, url string, h http.Header) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial: %v (HTTP %d)", err, status)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dialStatus dials and returns the HTTP status of a refused handshake with its body.
func dialStatus(url string, h http.Header) (int, string) {
	c, resp, err := websocket.DefaultDialer.Dial(url, h)
	if err == nil {
		c.Close()
		return http.StatusSwitchingProtocols, ""
	}
	if resp == nil {
		return 0, err.Error()
	}
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, strings.TrimSpace(b.String())
}

func call(t *testing.T, c *websocket.Conn, msg string) string {
	t.Helper()
	send(t, c, msg)
	return recv(t, c)
}

func send(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

func recv(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func match(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("%q: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad test %q: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func goroutines(t *testing.T) func() {
	before := runtime.NumGoroutine()
	return func() {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				var b bytes.Buffer
				pprof.Lookup("goroutine").WriteTo(&b, 1)
				t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), b.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func TestMessages(t *testing.T) {
	ts := startWS(t, Options{})
	c := dial(t, ts.url, nil)
	tests := []struct {
		name, in, want string
	}{
		{"call", `{"jsonrpc":"2.0","id":1,"method":"echo","params":{"a":1}}`, `{"jsonrpc":"2.0","id":1,"result":{"a":1}}`},
		{"transport name", `{"jsonrpc":"2.0","id":"f","method":"from"}`, `{"jsonrpc":"2.0","id":"f","result":"websocket"}`},
		{"batch", `[{"jsonrpc":"2.0","id":1,"method":"echo"},{"jsonrpc":"2.0","method":"echo"},{"jsonrpc":"2.0","id":2,"method":"nope"}]`,
			`[{"jsonrpc":"2.0","id":1,"result":null},{"jsonrpc":"2.0","id":2,"error":{"code":-32601,"message":"there is no method nope","data":{"code":"method_not_found"}}}]`},
		{"method not found", `{"jsonrpc":"2.0","id":3,"method":"nope"}`, `{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"there is no method nope","data":{"code":"method_not_found"}}}`},
		{"subscribe without a hub", `{"jsonrpc":"2.0","id":4,"method":"subscribe"}`, `{"jsonrpc":"2.0","id":4,"error":{"code":-32601,"message":"there is no method \"subscribe\": this server publishes no events","data":{"code":"method_not_found"}}}`},
		{"invalid UTF-8", "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"echo\",\"params\":[\"\xff\"]}", `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"the request is not valid UTF-8","data":{"code":"parse_error"}}}`},
		{"truncated", `{"jsonrpc":"2.0","id":6,`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"the request is not valid JSON: unexpected end of JSON input (at byte 24)","data":{"code":"parse_error"}}}`},
		{"duplicate key", `{"jsonrpc":"2.0","id":7,"id":8,"method":"echo"}`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"the request is not valid: member \"id\" appears twice","data":{"code":"invalid_request"}}}`},
		{"nested 10,000 deep", strings.Repeat("[", 10000) + strings.Repeat("]", 10000), `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"the request nests arrays and objects deeper than 32 levels","data":{"code":"invalid_request"}}}`},
		{"batch of 10,000", "[" + strings.Repeat("1,", 9999) + "1]", `{"jsonrpc":"2.0","id":null,"error":{"code":-32004,"message":"the batch has more than 100 members","data":{"code":"too_large"}}}`},
		{"params of the wrong type", `{"jsonrpc":"2.0","id":10,"method":"block","params":{"gate":1}}`, `{"jsonrpc":"2.0","id":10,"error":{"code":-32602,"message":"params member \"gate\" must be a string, not a number","data":{"code":"bad_request"}}}`},
		{"empty batch", `[]`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"an empty batch is not a request","data":{"code":"invalid_request"}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			match(t, call(t, c, tt.in), tt.want)
		})
	}
	t.Run("notifications get nothing", func(t *testing.T) {
		send(t, c, `{"jsonrpc":"2.0","method":"echo"}`)
		send(t, c, `[{"jsonrpc":"2.0","method":"echo"},{"jsonrpc":"2.0","method":"nope"}]`)
		match(t, call(t, c, `{"jsonrpc":"2.0","id":"s","method":"echo"}`), `{"jsonrpc":"2.0","id":"s","result":null}`)
	})
	t.Run("binary frames are read alike", func(t *testing.T) {
		c.WriteMessage(websocket.BinaryMessage, []byte(`{"jsonrpc":"2.0","id":9,"method":"echo"}`))
		match(t, recv(t, c), `{"jsonrpc":"2.0","id":9,"result":null}`)
	})
	t.Run("out of order", func(t *testing.T) {
		send(t, c, `{"jsonrpc":"2.0","id":"slow","method":"block","params":{"gate":"g"}}`)
		match(t, call(t, c, `{"jsonrpc":"2.0","id":"fast","method":"echo"}`), `{"jsonrpc":"2.0","id":"fast","result":null}`)
		close(ts.fake.gate("g"))
		match(t, recv(t, c), `{"jsonrpc":"2.0","id":"slow","result":"g"}`)
	})
}

func TestOversizedFrame(t *testing.T) {
	ts := startWS(t, Options{})
	for _, tt := range []struct {
		name string
		size int
	}{
		{"one byte over", jsonrpc.DefaultMaxMessage + 1},
		{"100 KiB", 100 << 10},
		{"10 MiB", 10 << 20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, ts.url, nil)
			head, tail := `{"jsonrpc":"2.0","id":1,"method":"echo","params":["`, `"]}`
			send(t, c, head+strings.Repeat("a", tt.size-len(head)-len(tail))+tail)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _, err := c.ReadMessage()
			if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
				t.Fatalf("got %v, want close 1009", err)
			}
			other := dial(t, ts.url, nil)
			match(t, call(t, other, `{"jsonrpc":"2.0","id":2,"method":"echo"}`), `{"jsonrpc":"2.0","id":2,"result":null}`)
		})
	}

	at := dial(t, ts.url, nil) // a frame of exactly 64 KiB is fine
	head, tail := `{"jsonrpc":"2.0","id":3,"method":"echo","params":["`, `"]}`
	pad := strings.Repeat("b", jsonrpc.DefaultMaxMessage-len(head)-len(tail))
	match(t, call(t, at, head+pad+tail), `{"jsonrpc":"2.0","id":3,"result":["`+pad+`"]}`)
}

func TestSubscribe(t *testing.T) {
	hub := &jsonrpc.Hub{}
	ts := startWS(t, Options{Hub: hub})
	c := dial(t, ts.url, nil)
	match(t, call(t, c, `{"jsonrpc":"2.0","id":1,"method":"subscribe"}`), `{"jsonrpc":"2.0","id":1,"result":true}`)
	match(t, call(t, c, `{"jsonrpc":"2.0","id":2,"method":"subscribe"}`), `{"jsonrpc":"2.0","id":2,"result":true}`)
	if n := hub.Subscribers(); n != 1 {
		t.Fatalf("%d subscriptions, want 1", n)
	}
	when := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	hub.Publish(jsonrpc.Event{Name: "openwrt.org.", Types: []string{"A"}, Rcode: "NOERROR", Upstream: "cloudflare", RTTms: 12.5, From: "ubus", Time: when})
	match(t, recv(t, c), `{"jsonrpc":"2.0","method":"lookup","params":{"name":"openwrt.org.","types":["A"],"rcode":"NOERROR","upstream":"cloudflare","rtt_ms":12.5,"cached":false,"from":"ubus","time":"2025-01-02T03:04:05Z"}}`)
	hub.Publish(jsonrpc.Event{Name: "x.", Rcode: "SERVFAIL", Error: "no_upstream", Time: when})
	match(t, recv(t, c), `{"jsonrpc":"2.0","method":"lookup","params":{"name":"x.","types":null,"rcode":"SERVFAIL","upstream":"","rtt_ms":0,"cached":false,"from":"","time":"2025-01-02T03:04:05Z","error":"no_upstream"}}`)

	// Calls still work beside the events.
	match(t, call(t, c, `{"jsonrpc":"2.0","id":3,"method":"echo"}`), `{"jsonrpc":"2.0","id":3,"result":null}`)

	match(t, call(t, c, `{"jsonrpc":"2.0","id":4,"method":"unsubscribe"}`), `{"jsonrpc":"2.0","id":4,"result":true}`)
	if n := hub.Subscribers(); n != 0 {
		t.Fatalf("%d subscriptions after unsubscribe", n)
	}
	hub.Publish(jsonrpc.Event{Name: "not sent"})
	match(t, call(t, c, `{"jsonrpc":"2.0","id":5,"method":"echo"}`), `{"jsonrpc":"2.0","id":5,"result":null}`)

	t.Run("ends with the connection", func(t *testing.T) {
		d := dial(t, ts.url, nil)
		call(t, d, `{"jsonrpc":"2.0","id":1,"method":"subscribe"}`)
		d.Close()
		deadline := time.Now().Add(30 * time.Second)
		for hub.Subscribers() != 0 {
			if time.Now().After(deadline) {
				t.Fatal("subscription outlived its connection")
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// A subscriber that does not keep up misses events, is told how many, and never slows Publish.
func TestSlowSubscriber(t *testing.T) {
	hub := &jsonrpc.Hub{Queue: 8}
	ts := startWS(t, Options{Hub: hub})
	c := dial(t, ts.url, nil)
	call(t, c, `{"jsonrpc":"2.0","id":1,"method":"subscribe"}`)

	// Publish would block for good on a subscriber that did not keep up: the bound is for a hang,
	// not a speed (speed is bench's).
	const n = 20000
	published := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		for range n {
			hub.Publish(jsonrpc.Event{Name: "burst."})
		}
		published <- time.Since(start)
	}()
	var total time.Duration
	select {
	case total = <-published:
	case <-time.After(60 * time.Second):
		t.Fatalf("%d publishes did not finish in 60 s: Publish waits for a slow subscriber", n)
	}
	// Markers until one is delivered: the writer may still hold a full queue, which drops the
	// first ones. Every event up to the marker delivered is then either received or reported
	// missed by an event delivered after it.
	stopMarkers := make(chan struct{})
	markersDone := make(chan struct{})
	go func() {
		defer close(markersDone)
		for k := 1; ; k++ {
			hub.Publish(jsonrpc.Event{Name: "marker." + strconv.Itoa(k) + "."})
			select {
			case <-stopMarkers:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stopMarkers); <-markersDone }()

	var got, missed, k uint64
	for {
		var ev struct {
			Params jsonrpc.Event `json:"params"`
		}
		if err := stdjson.Unmarshal([]byte(recv(t, c)), &ev); err != nil { // the time: delve itself never decodes an Event
			t.Fatal(err)
		}
		got++
		missed += ev.Params.Missed
		if num, ok := strings.CutPrefix(ev.Params.Name, "marker."); ok {
			v, err := strconv.ParseUint(strings.TrimSuffix(num, "."), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			k = v
			break
		}
	}
	if got+missed != n+k || missed == 0 {
		t.Fatalf("received %d and were told of %d missed; want %d in all (%d and marker %d), some missed", got, missed, n+k, n, k)
	}
	t.Logf("%d publishes in %v: %d delivered, %d missed, marker %d", n, total, got, missed, k)
}

func TestToken(t *testing.T) {
	ts := startWS(t, Options{Token: "s3cret"})
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	tests := []struct {
		name   string
		url    string
		header http.Header
		status int
	}{
		{"none", ts.url, nil, http.StatusUnauthorized},
		{"wrong header", ts.url, bearer("guess"), http.StatusUnauthorized},
		{"prefix of the token", ts.url, bearer("s3cre"), http.StatusUnauthorized},
		{"wrong query", ts.url + "?token=guess", nil, http.StatusUnauthorized},
		{"basic auth", ts.url, http.Header{"Authorization": {"Basic czNjcmV0"}}, http.StatusUnauthorized},
		{"header", ts.url, bearer("s3cret"), http.StatusSwitchingProtocols},
		{"query", ts.url + "?token=s3cret", nil, http.StatusSwitchingProtocols},
		// With a token, a name that is not loopback is fine: the token is the protection.
		{"any host name", ts.url, http.Header{"Authorization": {"Bearer s3cret"}, "Host": {"router.lan"}}, http.StatusSwitchingProtocols},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, body := dialStatus(tt.url, tt.header); got != tt.status {
				t.Fatalf("HTTP %d %q, want %d", got, body, tt.status)
			}
		})
	}
	c := dial(t, ts.url, bearer("s3cret"))
	match(t, call(t, c, `{"jsonrpc":"2.0","id":1,"method":"echo"}`), `{"jsonrpc":"2.0","id":1,"result":null}`)
}

type fakeAddrListener struct {
	net.Listener
	addr net.Addr
}

func (l fakeAddrListener) Addr() net.Addr { return l.addr }

func TestLoopbackOnlyWithoutToken(t *testing.T) {
	noToken := NewServer(Options{Handler: (&fake{}).handle})
	withToken := NewServer(Options{Handler: (&fake{}).handle, Token: "t"})
	for _, tt := range []struct {
		addr    string
		refused bool
	}{
		{"127.0.0.1:8080", false}, {"[::1]:8080", false}, {"localhost:8080", false}, {"127.9.9.9:1", false},
		{"0.0.0.0:8080", true}, {":8080", true}, {"198.51.100.1:8080", true}, {"[::]:8080", true}, {"router.lan:8080", true},
	} {
		t.Run(tt.addr, func(t *testing.T) {
			err := noToken.CheckAddr(tt.addr)
			if tt.refused != (err != nil) {
				t.Fatalf("without a token: %v", err)
			}
			if tt.refused && !strings.Contains(err.Error(), "refusing to serve the WebSocket on "+tt.addr+" without a token") {
				t.Fatalf("unclear: %v", err)
			}
			if err := withToken.CheckAddr(tt.addr); err != nil {
				t.Fatalf("with a token: %v", err)
			}
		})
	}
	t.Run("Listen", func(t *testing.T) {
		if _, err := noToken.Listen("0.0.0.0:0"); err == nil {
			t.Fatal("listening on all addresses without a token")
		}
	})
	t.Run("Serve", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		fl := fakeAddrListener{l, &net.TCPAddr{IP: net.IPv4zero, Port: 8080}}
		if err := noToken.Serve(fl); err == nil || !strings.Contains(err.Error(), "without a token") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("bad address", func(t *testing.T) {
		if err := noToken.CheckAddr("8080"); err == nil {
			t.Fatal("no error")
		}
	})
}

func TestOriginAndHost(t *testing.T) {
	ts := startWS(t, Options{})
	tests := []struct {
		name   string
		header http.Header
		status int
	}{
		{"no origin", nil, http.StatusSwitchingProtocols},
		{"same origin", http.Header{"Origin": {"http://" + ts.addr}}, http.StatusSwitchingProtocols},
		{"cross origin", http.Header{"Origin": {"http://evil.example"}}, http.StatusForbidden},
		{"same host, other port", http.Header{"Origin": {"http://127.0.0.1:1"}}, http.StatusForbidden},
		{"null origin", http.Header{"Origin": {"null"}}, http.StatusForbidden},
		// A page whose name was rebound to 127.0.0.1 sends its own name as Host and Origin.
		{"rebound name", http.Header{"Host": {"evil.example:" + ts.addr[strings.LastIndex(ts.addr, ":")+1:]}, "Origin": {"http://evil.example:" + ts.addr[strings.LastIndex(ts.addr, ":")+1:]}}, http.StatusForbidden},
		{"localhost", http.Header{"Host": {"localhost"}, "Origin": {"http://localhost"}}, http.StatusSwitchingProtocols},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, body := dialStatus(ts.url, tt.header); got != tt.status {
				t.Fatalf("HTTP %d %q, want %d", got, body, tt.status)
			}
		})
	}
	t.Run("other paths", func(t *testing.T) {
		if got, _ := dialStatus("ws://"+ts.addr+"/other", nil); got != http.StatusNotFound {
			t.Fatalf("HTTP %d", got)
		}
	})
	t.Run("plain HTTP", func(t *testing.T) {
		resp, err := http.Get("http://" + ts.addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("HTTP %d", resp.StatusCode)
		}
	})
}

func TestConnectionLimit(t *testing.T) {
	ts := startWS(t, Options{Limits: jsonrpc.Limits{MaxConns: 2}})
	a, b := dial(t, ts.url, nil), dial(t, ts.url, nil)
	call(t, a, `{"jsonrpc":"2.0","id":1,"method":"echo"}`)
	call(t, b, `{"jsonrpc":"2.0","id":1,"method":"echo"}`)
	if got, body := dialStatus(ts.url, nil); got != http.StatusServiceUnavailable || !strings.Contains(body, "already has 2 WebSocket connections") {
		t.Fatalf("HTTP %d %q, want 503", got, body)
	}
	a.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, _ := dialStatus(ts.url, nil)
		if got == http.StatusSwitchingProtocols {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot freed: HTTP %d", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestKeepalive(t *testing.T) {
	ts := startWS(t, Options{PingInterval: 50 * time.Millisecond})
	t.Run("a reading client stays", func(t *testing.T) {
		// Its own server with a longer interval: each pong has 500 ms to arrive, which a busy
		// machine does not take from a goroutine that is reading (50 ms gave 100 ms, and
		// under load the server once dropped the client after 7 pings).
		slow := startWS(t, Options{PingInterval: 250 * time.Millisecond})
		c := dial(t, slow.url, nil)
		pings := 0
		c.SetPingHandler(func(data string) error {
			if pings++; pings == 3 {
				c.SetReadDeadline(time.Now()) // enough: stop reading
			}
			return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		})
		c.SetReadDeadline(time.Now().Add(30 * time.Second)) // a hang guard
		// Only pings come, until the third ends the read.
		_, _, err := c.ReadMessage()
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || pings < 3 {
			t.Fatalf("after %d pings: %v, want our own read timeout after 3", pings, err)
		}
	})
	t.Run("a silent client is dropped", func(t *testing.T) {
		c := dial(t, ts.url, nil)
		c.SetPingHandler(func(string) error { return nil }) // never answers
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatal("the server kept a client that answers no ping")
				}
				return
			}
		}
	})
}

func TestShutdown(t *testing.T) {
	t.Run("calls in flight finish", func(t *testing.T) {
		check := goroutines(t)
		f := &fake{}
		hub := &jsonrpc.Hub{}
		srv := NewServer(Options{Handler: f.handle, Hub: hub})
		l, err := srv.Listen("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(l) }()
		url := "ws://" + l.Addr().String() + "/"
		c := dial(t, url, nil)
		call(t, c, `{"jsonrpc":"2.0","id":0,"method":"subscribe"}`)
		send(t, c, `{"jsonrpc":"2.0","id":1,"method":"block","params":{"gate":"g"}}`)
		send(t, c, `[{"jsonrpc":"2.0","id":2,"method":"block","params":{"gate":"g"}}]`)
		time.Sleep(50 * time.Millisecond)

		shut := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			shut <- srv.Shutdown(ctx)
		}()
		if err := <-served; !errors.Is(err, jsonrpc.ErrServerClosed) {
			t.Fatalf("Serve: %v", err)
		}
		if got, _ := dialStatus(url, nil); got == http.StatusSwitchingProtocols {
			t.Fatal("a new connection was accepted during shutdown")
		}
		close(f.gate("g"))
		got := recv(t, c) + recv(t, c)
		if !strings.Contains(got, `"id":1,"result":"g"`) || !strings.Contains(got, `[{"jsonrpc":"2.0","id":2,"result":"g"}]`) {
			t.Fatalf("got %s", got)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Fatalf("got %v, want close 1001", err)
		}
		if err := <-shut; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		c.Close()
		if hub.Subscribers() != 0 {
			t.Fatal("subscription left behind")
		}
		check()
	})
	t.Run("close with busy connections", func(t *testing.T) {
		check := goroutines(t)
		f := &fake{}
		hub := &jsonrpc.Hub{Queue: 1}
		srv := NewServer(Options{Handler: f.handle, Hub: hub})
		l, _ := srv.Listen("127.0.0.1:0")
		served := make(chan error, 1)
		go func() { served <- srv.Serve(l) }()
		url := "ws://" + l.Addr().String() + "/"
		var cs []*websocket.Conn
		for range 5 {
			c := dial(t, url, nil)
			call(t, c, `{"jsonrpc":"2.0","id":0,"method":"subscribe"}`)
			send(t, c, `{"jsonrpc":"2.0","id":1,"method":"block","params":{"gate":"never"}}`)
			cs = append(cs, c)
		}
		for range 1000 {
			hub.Publish(jsonrpc.Event{Name: "x."})
		}
		// A half-open HTTP connection too.
		raw, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		raw.Write([]byte("GET / HTTP/1.1\r\n"))
		time.Sleep(50 * time.Millisecond)
		srv.Close()
		<-served
		raw.Close()
		for _, c := range cs {
			c.Close()
		}
		check()
	})
}
