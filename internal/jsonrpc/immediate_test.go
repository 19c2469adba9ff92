package jsonrpc

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/json"
)

// immediate answers "now" at once, fails "now-bad" with a bad request, panics on "now-panic", and
// leaves every other method to the handler.
func immediate(_ context.Context, method string, params json.RawMessage, from string) (any, error) {
	switch method {
	case "now":
		return "now from " + from, nil
	case "now-bad":
		return nil, api.NewError(api.CodeBadRequest, "bad at once")
	case "now-panic":
		panic("boom at once")
	}
	return nil, ErrWouldWait
}

// TestImmediate: calls the Immediate handler answers are answered without a worker, so even when
// every slot of the connection is held by a call that waits; the calls it leaves (ErrWouldWait)
// run on the Handler; its errors and panics are answered like the Handler's.
func TestImmediate(t *testing.T) {
	leaks := goroutines(t)
	ts := startServer(t, Options{Immediate: immediate, Limits: Limits{MaxInFlight: 1}})
	c := dialRaw(t, ts.path)
	c.send(`{"jsonrpc":"2.0","id":1,"method":"block","params":{"gate":"g"}}` + "\n")
	eventually(t, "the blocking call to start", func() bool { return ts.fake.running.Load() == 1 })
	c.send(`{"jsonrpc":"2.0","id":2,"method":"now"}` + "\n")
	matchJSON(t, c.recv(), `{"jsonrpc":"2.0","id":2,"result":"now from socket"}`)
	c.send(`{"jsonrpc":"2.0","id":3,"method":"now-bad"}` + "\n")
	matchJSON(t, c.recv(), `{"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"bad at once","data":{"code":"bad_request"}}}`)
	c.send(`{"jsonrpc":"2.0","id":4,"method":"now-panic"}` + "\n")
	matchJSON(t, c.recv(), `{"jsonrpc":"2.0","id":4,"error":{"code":-32603,"message":"failed unexpectedly","data":{"code":"internal"}}}`)
	c.send(`{"jsonrpc":"2.0","method":"now"}` + "\n") // a notification: no response
	c.send(`{"jsonrpc":"2.0","id":5,"method":"now","params":7}` + "\n")
	matchJSON(t, c.recv(), `{"jsonrpc":"2.0","id":5,"error":{"code":-32602,"message":"params must be an object or an array, not a number","data":{"code":"bad_request"}}}`)
	ts.fake.open("g")
	matchJSON(t, c.recv(), `{"jsonrpc":"2.0","id":1,"result":"g"}`)
	c.quiet() // "echo" is the Handler's: ErrWouldWait gave it to a worker
	if n := ts.fake.calls.Load(); n != 2 {
		t.Fatalf("the Handler ran %d calls, want 2 (block, echo)", n)
	}
	ts.srv.Close()
	leaks()
}

// TestImmediatePipelined: responses written by the goroutine that read their requests and by the
// writer goroutine, pipelined on one connection, all arrive, whole.
func TestImmediatePipelined(t *testing.T) {
	ts := startServer(t, Options{Immediate: immediate})
	c := dialRaw(t, ts.path)
	const n = 400
	var b strings.Builder
	for i := range n {
		method := "now"
		if i%3 == 0 {
			method = "echo"
		}
		fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"method":%q,"params":[%d]}`+"\n", i, method, i)
	}
	c.send(b.String())
	got := map[string]bool{}
	for range n {
		line := c.recv()
		var r struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil || r.Result == nil {
			t.Fatalf("response %q: %v", line, err)
		}
		want := `"now from socket"`
		if r.ID%3 == 0 {
			want = fmt.Sprintf("[%d]", r.ID)
		}
		if string(r.Result) != want {
			t.Fatalf("response %s: result of id %d is not %s", line, r.ID, want)
		}
		got[line] = true
	}
	if len(got) != n {
		t.Fatalf("%d distinct responses, want %d", len(got), n)
	}
}
