package jsonrpc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const req = `{"jsonrpc":"2.0","id":1,`

func TestRequests(t *testing.T) {
	deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	batch := func(n int, member string) string {
		return "[" + strings.TrimSuffix(strings.Repeat(member+",", n), ",") + "]"
	}
	tests := []struct {
		name string
		in   string
		want string // empty: no response
	}{
		// Calls.
		{"result", req + `"method":"echo","params":{"a":1}}`, `{"jsonrpc":"2.0","id":1,"result":{"a":1}}`},
		{"positional params", req + `"method":"echo","params":[1,"x"]}`, `{"jsonrpc":"2.0","id":1,"result":[1,"x"]}`},
		{"no params", req + `"method":"echo"}`, `{"jsonrpc":"2.0","id":1,"result":null}`},
		{"transport name", req + `"method":"from"}`, `{"jsonrpc":"2.0","id":1,"result":"socket"}`},
		{"string id", `{"jsonrpc":"2.0","id":"a-1","method":"echo"}`, `{"jsonrpc":"2.0","id":"a-1","result":null}`},
		{"null id", `{"jsonrpc":"2.0","id":null,"method":"echo"}`, `{"jsonrpc":"2.0","id":null,"result":null}`},
		{"members in any order", `{"method":"echo","params":[2],"id":7,"jsonrpc":"2.0"}`, `{"jsonrpc":"2.0","id":7,"result":[2]}`},
		{"unknown envelope member ignored", req + `"method":"echo","x":{}}`, `{"jsonrpc":"2.0","id":1,"result":null}`},
		{"whitespace", "  {\"jsonrpc\" : \"2.0\" ,\t\"id\" : 1 , \"method\" : \"echo\" }  ", `{"jsonrpc":"2.0","id":1,"result":null}`},
		{"escaped member names", `{"jsonrpc":"2.0","\u0069d":1,"method":"\u0065cho"}`, `{"jsonrpc":"2.0","id":1,"result":null}`},
		{"unknown param key ignored", req + `"method":"lookup","params":{"name":"openwrt.org","ubus_rpc_session":"00000000000000000000000000000000"}}`,
			`{"jsonrpc":"2.0","id":1,"result":{"name":"openwrt.org","type":""}}`},

		// Method and handler errors.
		{"method not found", req + `"method":"nope"}`, `{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"there is no method nope","data":{"code":"method_not_found"}}}`},
		{"rpc. names reserved", req + `"method":"rpc.discover"}`, `{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"there is no method \"rpc.discover\"","data":{"code":"method_not_found"}}}`},
		{"params a string", req + `"method":"echo","params":"x"}`, `{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"params must be an object or an array, not a string","data":{"code":"bad_request"}}}`},
		{"params a number", req + `"method":"echo","params":5}`, `{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"not a number","data":{"code":"bad_request"}}}`},
		{"param of the wrong type", req + `"method":"lookup","params":{"name":5}}`, `{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"params member \"name\" must be a string, not a number","data":{"code":"bad_request"}}}`},
		{"param an array", req + `"method":"lookup","params":{"name":"x","type":["A"]}}`, `{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"params member \"type\" must be a string, not an array","data":{"code":"bad_request"}}}`},
		{"duplicate param", req + `"method":"lookup","params":{"name":"a","name":"b"}}`, `{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"params member \"name\" appears twice","data":{"code":"bad_request"}}}`},
		{"positional params for named", req + `"method":"lookup","params":["x"]}`, `{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"params must be an object with named members, not an array","data":{"code":"bad_request"}}}`},
		{"plain error is internal", req + `"method":"oops"}`, `{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"the disk is on fire","data":{"code":"internal"}}}`},
		{"panic is internal", req + `"method":"panic"}`, `{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"the method panic failed unexpectedly","data":{"code":"internal"}}}`},
		{"unencodable result", req + `"method":"unencodable"}`, `{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"encoding the result of unencodable failed","data":{"code":"internal"}}}`},

		// Not a valid request.
		{"no jsonrpc", `{"id":1,"method":"echo"}`, `{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"the request must have \"jsonrpc\":\"2.0\"","data":{"code":"invalid_request"}}}`},
		{"jsonrpc 1.0", `{"jsonrpc":"1.0","id":1,"method":"echo"}`, `{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"\"jsonrpc\":\"2.0\"","data":{"code":"invalid_request"}}}`},
		{"jsonrpc a number", `{"jsonrpc":2.0,"id":1,"method":"echo"}`, `{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"\"jsonrpc\":\"2.0\"","data":{"code":"invalid_request"}}}`},
		{"no method", req + `"params":{}}`, `{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"the request has no \"method\"","data":{"code":"invalid_request"}}}`},
		{"method a number", req + `"method":5}`, `{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"the method must be a string, not a number","data":{"code":"invalid_request"}}}`},
		{"id an object", `{"jsonrpc":"2.0","id":{"a":1},"method":"echo"}`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"the request id must be a string, a number or null, not an object","data":{"code":"invalid_request"}}}`},
		{"id a boolean", `{"jsonrpc":"2.0","id":true,"method":"echo"}`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"not a boolean","data":{"code":"invalid_request"}}}`},
		{"duplicate method", req + `"method":"echo","method":"oops"}`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"the request is not valid: member \"method\" appears twice","data":{"code":"invalid_request"}}}`},
		{"duplicate id, escaped", req + `"\u0069d":2,"method":"echo"}`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"member \"id\" appears twice","data":{"code":"invalid_request"}}}`},
		{"a number", `42`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"a request must be a JSON object or an array of them, not a number","data":{"code":"invalid_request"}}}`},
		{"a string", `"hello"`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"not a string","data":{"code":"invalid_request"}}}`},
		{"nested 10,000 deep", deep, `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"the request nests arrays and objects deeper than 32 levels","data":{"code":"invalid_request"}}}`},
		{"params nested 10,000 deep", req + `"method":"echo","params":` + deep + `}`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"deeper than 32 levels","data":{"code":"invalid_request"}}}`},
		{"nested 10,000 deep, unclosed", strings.Repeat(`{"a":`, 10000), `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"deeper than 32 levels","data":{"code":"invalid_request"}}}`},
		{"brackets in strings are not nesting", req + `"method":"echo","params":["` + strings.Repeat("[{", 100) + `"]}`, `{"jsonrpc":"2.0","id":1,"result":["` + strings.Repeat("[{", 100) + `"]}`},

		// Not JSON.
		{"truncated", req + `"method":"ec`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"the request is not valid JSON: unexpected end of JSON input","data":{"code":"parse_error"}}}`},
		{"garbage", `hello`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"the request is not valid JSON","data":{"code":"parse_error"}}}`},
		{"two values on a line", req + `"method":"echo"} {}`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"not valid JSON","data":{"code":"parse_error"}}}`},
		{"trailing comma", req + `"method":"echo",}`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"not valid JSON","data":{"code":"parse_error"}}}`},
		{"invalid UTF-8 in a value", req + `"method":"lookup","params":{"name":"a` + "\xff" + `b"}}`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"the request is not valid UTF-8","data":{"code":"parse_error"}}}`},
		{"invalid UTF-8 in a key", req + `"method":"lookup","params":{"na` + "\xc3\x28" + `me":"x"}}`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"not valid UTF-8","data":{"code":"parse_error"}}}`},
		{"control character in a string", req + `"method":"echo","params":["a` + "\x01" + `"]}`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"not valid JSON","data":{"code":"parse_error"}}}`},

		// Batches.
		{"empty batch", `[]`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"an empty batch is not a request","data":{"code":"invalid_request"}}}`},
		{"empty batch with spaces", `[ ]`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"an empty batch","data":{"code":"invalid_request"}}}`},
		{"batch of non-requests", `[1,"x"]`, `[{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"a request must be a JSON object, not a number","data":{"code":"invalid_request"}}},{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"not a string","data":{"code":"invalid_request"}}}]`},
		{"mixed batch", `[{"jsonrpc":"2.0","id":1,"method":"echo","params":[1]},{"jsonrpc":"2.0","method":"echo"},{"foo":"boo"},{"jsonrpc":"2.0","id":"x","method":"nope"},{"jsonrpc":"2.0","id":3,"method":"oops"},[]]`,
			`[{"jsonrpc":"2.0","id":1,"result":[1]},{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"jsonrpc","data":{"code":"invalid_request"}}},{"jsonrpc":"2.0","id":"x","error":{"code":-32601,"message":"no method","data":{"code":"method_not_found"}}},{"jsonrpc":"2.0","id":3,"error":{"code":-32603,"message":"fire","data":{"code":"internal"}}},{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"not an array","data":{"code":"invalid_request"}}}]`},
		{"batch of one", `[{"jsonrpc":"2.0","id":1,"method":"echo"}]`, `[{"jsonrpc":"2.0","id":1,"result":null}]`},
		{"batch of 100", batch(100, `{"jsonrpc":"2.0","method":"echo"}`), ``},
		{"batch of 101", batch(101, `{"jsonrpc":"2.0","id":1,"method":"echo"}`), `{"jsonrpc":"2.0","id":null,"error":{"code":-32004,"message":"the batch has more than 100 members","data":{"code":"too_large"}}}`},
		{"batch of 10,000", batch(10000, `1`), `{"jsonrpc":"2.0","id":null,"error":{"code":-32004,"message":"more than 100 members","data":{"code":"too_large"}}}`},
		{"batch of notifications", `[{"jsonrpc":"2.0","method":"echo"},{"jsonrpc":"2.0","method":"nope"},{"jsonrpc":"2.0","method":"panic"}]`, ``},

		// Notifications are run and never answered, whatever happens.
		{"notification", `{"jsonrpc":"2.0","method":"echo","params":[1]}`, ``},
		{"notification of an unknown method", `{"jsonrpc":"2.0","method":"nope"}`, ``},
		{"notification that panics", `{"jsonrpc":"2.0","method":"panic"}`, ``},
		{"notification with params a string", `{"jsonrpc":"2.0","method":"echo","params":"x"}`, ``},
		{"blank line", `   `, ``},
	}
	ts := startServer(t, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, ts.path)
			c.send(tt.in + "\n")
			if tt.want == "" {
				c.quiet()
			} else {
				matchJSON(t, c.recv(), tt.want)
			}
			// The connection and the server are still serving.
			c.send(`{"jsonrpc":"2.0","id":"after","method":"echo"}` + "\n")
			matchJSON(t, c.recv(), `{"jsonrpc":"2.0","id":"after","result":null}`)
			other := dialRaw(t, ts.path)
			other.send(`{"jsonrpc":"2.0","id":2,"method":"echo"}` + "\n")
			matchJSON(t, other.recv(), `{"jsonrpc":"2.0","id":2,"result":null}`)
		})
	}
}

// Every api code keeps its JSON-RPC number and name on the wire.
func TestErrorCodes(t *testing.T) {
	ts := startServer(t, Options{})
	c := dialRaw(t, ts.path)
	for _, tt := range []struct {
		code string
		rpc  int
		want string // data.code when not code
	}{
		{"parse_error", -32700, ""}, {"invalid_request", -32600, ""}, {"method_not_found", -32601, ""},
		{"bad_request", -32602, ""}, {"internal", -32603, ""}, {"timeout", -32001, ""}, {"no_upstream", -32002, ""},
		{"config_error", -32003, ""}, {"too_large", -32004, ""}, {"busy", -32005, ""}, {"daemon_down", -32006, ""},
		{"made_up", -32603, "internal"},
	} {
		t.Run(tt.code, func(t *testing.T) {
			want := tt.want
			if want == "" {
				want = tt.code
			}
			c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"fail","params":{"code":%q,"message":"it failed"}}`+"\n", tt.code))
			matchJSON(t, c.recv(), fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"error":{"code":%d,"message":"it failed","data":{"code":%q}}}`, tt.rpc, want))
		})
	}
}

// The id is echoed byte for byte, as numbers like 1.50 would not survive a float64.
func TestIDEchoedAsReceived(t *testing.T) {
	ts := startServer(t, Options{})
	c := dialRaw(t, ts.path)
	for _, id := range []string{`1.50`, `-0`, `1e2`, `12345678901234567890123`, `"\u00e9"`, `"é"`, `""`, `0`} {
		t.Run(id, func(t *testing.T) {
			c.send(`{"jsonrpc":"2.0","id":` + id + `,"method":"echo"}` + "\n")
			want := `{"jsonrpc":"2.0","id":` + id + `,"result":null}`
			if got := c.recv(); got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
		})
	}
}

func TestOversizedLines(t *testing.T) {
	ts := startServer(t, Options{})
	tooLarge := `{"jsonrpc":"2.0","id":null,"error":{"code":-32004,"message":"the request is larger than 65536 bytes","data":{"code":"too_large"}}}`
	tests := []struct {
		name string
		line string
	}{
		{"10 MiB request", req + `"method":"echo","params":["` + strings.Repeat("a", 10<<20) + `"]}`},
		{"one byte over", req + `"method":"echo","params":["` + strings.Repeat("a", 65536-len(req+`"method":"echo","params":[""]}`)+1) + `"]}`},
		{"10 MiB of newline-free garbage", strings.Repeat("\x00\xff", 5<<20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, ts.path)
			done := make(chan struct{})
			go func() { // the client writes while the server answers
				defer close(done)
				c.c.Write([]byte(tt.line + "\n"))
			}()
			matchJSON(t, c.recv(), tooLarge)
			<-done
			c.send(`{"jsonrpc":"2.0","id":2,"method":"echo"}` + "\n")
			matchJSON(t, c.recv(), `{"jsonrpc":"2.0","id":2,"result":null}`)
		})
	}
	t.Run("exactly at the limit", func(t *testing.T) {
		c := dialRaw(t, ts.path)
		pad := strings.Repeat("a", 65536-len(req+`"method":"echo","params":[""]}`))
		c.send(req + `"method":"echo","params":["` + pad + `"]}` + "\n")
		matchJSON(t, c.recv(), `{"jsonrpc":"2.0","id":1,"result":["`+pad+`"]}`)
	})
	t.Run("answered before the newline", func(t *testing.T) {
		c := dialRaw(t, ts.path)
		c.send(`{"jsonrpc":"2.0","params":["` + strings.Repeat("a", 100<<10))
		matchJSON(t, c.recv(), tooLarge)
		c.send(`"]}` + "\n" + `{"jsonrpc":"2.0","id":3,"method":"echo"}` + "\n")
		matchJSON(t, c.recv(), `{"jsonrpc":"2.0","id":3,"result":null}`)
	})
	t.Run("smaller limit", func(t *testing.T) {
		small := startServer(t, Options{Limits: Limits{MaxMessage: 100}})
		c := dialRaw(t, small.path)
		c.send(req + `"method":"echo","params":["` + strings.Repeat("a", 100) + `"]}` + "\n")
		matchJSON(t, c.recv(), `{"jsonrpc":"2.0","id":null,"error":{"code":-32004,"message":"the request is larger than 100 bytes","data":{"code":"too_large"}}}`)
	})
}

func TestPipelinedOutOfOrder(t *testing.T) {
	ts := startServer(t, Options{})
	c := dialRaw(t, ts.path)
	c.send(`{"jsonrpc":"2.0","id":"a","method":"block","params":{"gate":"a"}}` + "\n" +
		`{"jsonrpc":"2.0","id":"b","method":"block","params":{"gate":"b"}}` + "\n" +
		`{"jsonrpc":"2.0","id":"c","method":"echo"}` + "\n")
	matchJSON(t, c.recv(), `{"jsonrpc":"2.0","id":"c","result":null}`)
	ts.fake.open("b")
	matchJSON(t, c.recv(), `{"jsonrpc":"2.0","id":"b","result":"b"}`)
	ts.fake.open("a")
	matchJSON(t, c.recv(), `{"jsonrpc":"2.0","id":"a","result":"a"}`)
}

func TestInFlightLimit(t *testing.T) {
	tests := []struct {
		name  string
		limit int // 0: the default
		want  int
		batch bool
	}{
		{"default, single requests", 0, DefaultMaxInFlight, false},
		{"default, batch", 0, DefaultMaxInFlight, true},
		{"limit 3", 3, 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, Options{Limits: Limits{MaxInFlight: tt.limit}})
			c := dialRaw(t, ts.path)
			n := 3 * tt.want
			var b strings.Builder
			if tt.batch {
				b.WriteString("[")
			}
			for i := range n {
				if tt.batch && i > 0 {
					b.WriteString(",")
				}
				fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"method":"block","params":{"gate":"g"}}`, i)
				if !tt.batch {
					b.WriteString("\n")
				}
			}
			if tt.batch {
				b.WriteString("]\n")
			}
			c.send(b.String())
			eventually(t, "the calls to start", func() bool { return ts.fake.running.Load() == int32(tt.want) })
			time.Sleep(50 * time.Millisecond)
			if got := ts.fake.maxRun.Load(); got != int32(tt.want) {
				t.Fatalf("%d calls ran at once, want %d", got, tt.want)
			}
			ts.fake.open("g")
			got := map[string]bool{}
			if tt.batch {
				line := c.recv()
				for i := range n {
					if !strings.Contains(line, fmt.Sprintf(`"id":%d,"result":"g"`, i)) {
						t.Fatalf("batch response lacks id %d: %.200s", i, line)
					}
				}
				return
			}
			for range n {
				got[c.recv()] = true
			}
			if len(got) != n {
				t.Fatalf("%d distinct responses, want %d", len(got), n)
			}
		})
	}
}

// A client that writes requests and never reads its responses makes the server stop reading,
// then lose patience: memory stays bounded and the client is cut off.
func TestClientThatDoesNotRead(t *testing.T) {
	ts := startServer(t, Options{WriteTimeout: 200 * time.Millisecond, Limits: Limits{MaxInFlight: 2}})
	c := dialRaw(t, ts.path)
	line := []byte(`{"jsonrpc":"2.0","id":1,"method":"echo","params":["` + strings.Repeat("x", 60000) + `"]}` + "\n")
	const sent = 10000
	var err error
	c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	for range sent {
		if _, err = c.c.Write(line); err != nil {
			break
		}
	}
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("writing %d requests without reading: %v, want the server to close the connection", sent, err)
	}
	if n := ts.fake.calls.Load(); n >= sent/2 {
		t.Fatalf("the server ran %d of %d calls for a client that reads nothing", n, sent)
	}
	other := dialRaw(t, ts.path)
	other.send(`{"jsonrpc":"2.0","id":2,"method":"echo"}` + "\n")
	matchJSON(t, other.recv(), `{"jsonrpc":"2.0","id":2,"result":null}`)
}

func TestIdleTimeout(t *testing.T) {
	ts := startServer(t, Options{IdleTimeout: 100 * time.Millisecond})
	t.Run("idle connection closed", func(t *testing.T) {
		c := dialRaw(t, ts.path)
		if s, err := c.recvErr(5 * time.Second); !errors.Is(err, io.EOF) {
			t.Fatalf("got %q, %v; want EOF", s, err)
		}
	})
	t.Run("not while a call is in flight", func(t *testing.T) {
		c := dialRaw(t, ts.path)
		c.send(`{"jsonrpc":"2.0","id":1,"method":"block","params":{"gate":"slow"}}` + "\n")
		time.Sleep(300 * time.Millisecond)
		ts.fake.open("slow")
		matchJSON(t, c.recv(), `{"jsonrpc":"2.0","id":1,"result":"slow"}`)
	})
}

// nc -N, socat and shell scripts send their request and shut their side down.
func TestHalfClose(t *testing.T) {
	ts := startServer(t, Options{})
	c := dialRaw(t, ts.path)
	c.send(`{"jsonrpc":"2.0","id":1,"method":"block","params":{"gate":"h"}}` + "\n" + `{"jsonrpc":"2.0","id":2,"method":"echo"}`)
	c.c.(*net.UnixConn).CloseWrite()
	matchJSON(t, c.recv(), `{"jsonrpc":"2.0","id":2,"result":null}`)
	ts.fake.open("h")
	matchJSON(t, c.recv(), `{"jsonrpc":"2.0","id":1,"result":"h"}`)
	if s, err := c.recvErr(5 * time.Second); !errors.Is(err, io.EOF) {
		t.Fatalf("got %q, %v; want EOF", s, err)
	}
}

func TestConnectionLimit(t *testing.T) {
	ts := startServer(t, Options{Limits: Limits{MaxConns: 2}})
	var cs []*raw
	for range 2 {
		c := dialRaw(t, ts.path)
		c.send(`{"jsonrpc":"2.0","id":1,"method":"echo"}` + "\n")
		c.recv()
		cs = append(cs, c)
	}
	extra := dialRaw(t, ts.path)
	matchJSON(t, extra.recv(), `{"jsonrpc":"2.0","id":null,"error":{"code":-32005,"message":"the server already has 2 connections; try again later","data":{"code":"busy"}}}`)
	if s, err := extra.recvErr(5 * time.Second); !errors.Is(err, io.EOF) {
		t.Fatalf("got %q, %v; want EOF after the refusal", s, err)
	}
	cs[0].c.Close()
	eventually(t, "a connection slot to be free", func() bool {
		c, err := net.Dial("unix", ts.path)
		if err != nil {
			return false
		}
		defer c.Close()
		r := &raw{t: t, c: c, br: bufio.NewReader(c)}
		r.send(`{"jsonrpc":"2.0","id":5,"method":"echo"}` + "\n")
		s, err := r.recvErr(time.Second)
		return err == nil && strings.Contains(s, `"result"`)
	})
	cs[1].send(`{"jsonrpc":"2.0","id":2,"method":"echo"}` + "\n")
	matchJSON(t, cs[1].recv(), `{"jsonrpc":"2.0","id":2,"result":null}`)
}

func TestListenUnix(t *testing.T) {
	t.Run("directory 0755 and socket 0660", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "var", "run", "delve")
		path := filepath.Join(dir, "delve.sock")
		l, err := ListenUnix(path)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		di, err := os.Stat(dir)
		if err != nil || di.Mode().Perm() != 0o755 {
			t.Fatalf("directory: %v %v, want mode 0755", di.Mode(), err)
		}
		fi, err := os.Lstat(path)
		if err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o660 {
			t.Fatalf("socket: %v %v, want a socket with mode 0660", fi.Mode(), err)
		}
		if l.Addr().String() != path {
			t.Fatalf("Addr %s, want %s", l.Addr(), path)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Fatalf("directory holds %v, want only the socket", entries)
		}
	})
	t.Run("stale socket replaced", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "delve.sock")
		old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		old.SetUnlinkOnClose(false)
		old.Close() // as after a crash: the file stays, nobody answers
		if _, err := net.Dial("unix", path); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dialing the stale socket: %v, want connection refused", err)
		}
		ts := serveOn(t, path)
		c := dialRaw(t, ts)
		c.send(`{"jsonrpc":"2.0","id":1,"method":"echo"}` + "\n")
		matchJSON(t, c.recv(), `{"jsonrpc":"2.0","id":1,"result":null}`)
	})
	t.Run("second server refused", func(t *testing.T) {
		ts := startServer(t, Options{})
		_, err := ListenUnix(ts.path)
		want := "another delve is already serving on " + ts.path
		if err == nil || err.Error() != want {
			t.Fatalf("got %v, want %q", err, want)
		}
		c := dialRaw(t, ts.path) // the first one is unharmed
		c.send(`{"jsonrpc":"2.0","id":1,"method":"echo"}` + "\n")
		matchJSON(t, c.recv(), `{"jsonrpc":"2.0","id":1,"result":null}`)
	})
	t.Run("not a socket", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "delve.sock")
		os.WriteFile(path, []byte("keep me"), 0o644)
		_, err := ListenUnix(path)
		if err == nil || !strings.Contains(err.Error(), "exists and is not a socket") {
			t.Fatalf("got %v, want a refusal", err)
		}
		if b, _ := os.ReadFile(path); string(b) != "keep me" {
			t.Fatal("the file was touched")
		}
	})
	t.Run("removed on close", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "delve.sock")
		l, err := ListenUnix(path)
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("after Close: %v, want the socket gone", err)
		}
	})
	t.Run("a successor's socket is not removed", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "delve.sock")
		l1, err := ListenUnix(path)
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(path)
		l2, err := ListenUnix(path)
		if err != nil {
			t.Fatal(err)
		}
		defer l2.Close()
		l1.Close()
		if _, err := os.Lstat(path); err != nil {
			t.Fatalf("the new socket is gone: %v", err)
		}
	})
}

func serveOn(t *testing.T, path string) string {
	t.Helper()
	l, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(Options{Handler: newFake().handle})
	done := make(chan struct{})
	go func() { srv.Serve(l); close(done) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return path
}

func TestShutdown(t *testing.T) {
	t.Run("calls in flight finish", func(t *testing.T) {
		check := goroutines(t)
		path := filepath.Join(t.TempDir(), "delve.sock")
		f := newFake()
		l, err := ListenUnix(path)
		if err != nil {
			t.Fatal(err)
		}
		srv := NewServer(Options{Handler: f.handle})
		served := make(chan error, 1)
		go func() { served <- srv.Serve(l) }()

		c1, c2 := dialRaw(t, path), dialRaw(t, path)
		c1.send(`{"jsonrpc":"2.0","id":1,"method":"block","params":{"gate":"g"}}` + "\n")
		c1.send(`[{"jsonrpc":"2.0","id":2,"method":"block","params":{"gate":"g"}}]` + "\n")
		c2.send(`{"jsonrpc":"2.0","id":3,"method":"block","params":{"gate":"g"}}` + "\n")
		eventually(t, "the calls to start", func() bool { return f.running.Load() == 3 })

		shut := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			shut <- srv.Shutdown(ctx)
		}()
		eventually(t, "the socket to go", func() bool {
			_, err := os.Lstat(path)
			return errors.Is(err, fs.ErrNotExist)
		})
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve: %v", err)
		}
		select {
		case err := <-shut:
			t.Fatalf("Shutdown returned %v with calls in flight", err)
		case <-time.After(50 * time.Millisecond):
		}
		f.open("g")
		got := c1.recv() + c1.recv()
		if !strings.Contains(got, `"id":1,"result":"g"`) || !strings.Contains(got, `[{"jsonrpc":"2.0","id":2,"result":"g"}]`) {
			t.Fatalf("got %s", got)
		}
		matchJSON(t, c2.recv(), `{"jsonrpc":"2.0","id":3,"result":"g"}`)
		if err := <-shut; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		for _, c := range []*raw{c1, c2} {
			if s, err := c.recvErr(time.Second); !errors.Is(err, io.EOF) {
				t.Fatalf("got %q, %v; want EOF", s, err)
			}
			c.c.Close()
		}
		check()
	})
	t.Run("deadline cancels the calls", func(t *testing.T) {
		check := goroutines(t)
		path := filepath.Join(t.TempDir(), "delve.sock")
		f := newFake()
		l, _ := ListenUnix(path)
		srv := NewServer(Options{Handler: f.handle})
		served := make(chan error, 1)
		go func() { served <- srv.Serve(l) }()
		c := dialRaw(t, path)
		c.send(`{"jsonrpc":"2.0","id":1,"method":"block","params":{"gate":"never"}}` + "\n")
		eventually(t, "the call to start", func() bool { return f.running.Load() == 1 })
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown: %v, want the deadline", err)
		}
		<-served
		c.c.Close()
		check()
	})
	t.Run("close with busy connections", func(t *testing.T) {
		check := goroutines(t)
		path := filepath.Join(t.TempDir(), "delve.sock")
		f := newFake()
		l, _ := ListenUnix(path)
		srv := NewServer(Options{Handler: f.handle})
		served := make(chan error, 1)
		go func() { served <- srv.Serve(l) }()
		var cs []*raw
		for i := range 5 {
			c := dialRaw(t, path)
			c.send(`{"jsonrpc":"2.0","id":1,"method":"block","params":{"gate":"never"}}` + "\n")
			c.send(`{"jsonrpc":"2.0","params":["` + strings.Repeat("a", 1000*i)) // half a line
			cs = append(cs, c)
		}
		eventually(t, "the calls to start", func() bool { return f.running.Load() == 5 })
		srv.Close()
		<-served
		for _, c := range cs {
			c.c.Close()
		}
		check()
		if err := srv.Serve(l); !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve after Close: %v", err)
		}
	})
}
