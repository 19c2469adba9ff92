package jsonrpc

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/json"
)

// immediate answers "now" at once, fails "now-bad" with a bad request, panics on "now-panic",
// gives "later" and "later-echo" a handler of their own to run on a worker, and leaves every other
// method to the session's handler.
func immediate(_ context.Context, method string, params json.RawMessage, from string) (any, error) {
	switch method {
	case "now":
		return "now from " + from, nil
	case "now-bad":
		return nil, api.NewError(api.CodeBadRequest, "bad at once")
	case "now-panic":
		panic("boom at once")
	case "later":
		return Handler(func(ctx context.Context, method string, params json.RawMessage, from string) (any, error) {
			<-ctx.Done() // waits, on a worker, until the connection is gone
			return nil, ctx.Err()
		}), ErrWouldWait
	case "later-echo":
		return Handler(func(_ context.Context, method string, params json.RawMessage, from string) (any, error) {
			return "later " + method + " from " + from, nil
		}), ErrWouldWait
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

// TestImmediateLater: a Handler returned with ErrWouldWait runs the call on a worker instead of
// the session's Handler, and takes a slot as any call that waits.
func TestImmediateLater(t *testing.T) {
	ts := startServer(t, Options{Immediate: immediate, Limits: Limits{MaxInFlight: 2}})
	c := dialRaw(t, ts.path)
	c.send(`{"jsonrpc":"2.0","id":1,"method":"later-echo"}` + "\n")
	matchJSON(t, c.recv(), `{"jsonrpc":"2.0","id":1,"result":"later later-echo from socket"}`)
	// Two calls that wait hold both slots: the third request is not read until one ends, and the
	// call after it, which Immediate would answer, waits behind it.
	c.send(`{"jsonrpc":"2.0","id":2,"method":"later"}` + "\n" + `{"jsonrpc":"2.0","id":3,"method":"later"}` + "\n" +
		`{"jsonrpc":"2.0","id":4,"method":"later-echo"}` + "\n" + `{"jsonrpc":"2.0","id":5,"method":"now"}` + "\n")
	if s, err := c.recvErr(300 * time.Millisecond); err == nil {
		t.Fatalf("got %s while two calls held every slot, want nothing", s)
	}
	if n := ts.fake.calls.Load(); n != 0 {
		t.Fatalf("the session's Handler ran %d calls, want none", n)
	}
}
