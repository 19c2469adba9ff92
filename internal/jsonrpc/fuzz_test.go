package jsonrpc

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/json"
)

// fuzzParams is what the daemon's lookup decodes its params into.
type fuzzParams struct {
	Name     *string `json:"name"`
	Type     *string `json:"type"`
	Upstream *string `json:"upstream"`
}

// FuzzSession feeds one message to a session, as the socket and the WebSocket do: whatever the
// bytes, it does not panic or hang, every response it sends is one valid JSON-RPC 2.0 response
// (or a batch of them) with a known error code, and a lone request gets at most one response.
// The handler decodes lookup params with DecodeParams, as the daemon does.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"lookup","params":{"name":"a.delve.test","type":"A"}}`,
		`{"jsonrpc":"2.0","id":"x","method":"status"}`,
		`{"jsonrpc":"2.0","method":"lookup","params":{"name":"n"}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"status"},{"jsonrpc":"2.0","id":2,"method":"nosuch"},1,[]]`,
		`{"jsonrpc":"2.0","id":1,"method":"lookup","params":{"name":"a","name":"b"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"lookup","params":["a"]}`,
		`{"jsonrpc":"2.0","id":{"a":1},"method":"status"}`,
		`{"jsonrpc":"2.0","id":1e400,"method":"status"}`,
		`{"jsonrpc":"2.0","\u0069d":1,"id":2,"method":"status"}`,
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
		`{"jsonrpc":"2.0","id":1,"method":"lookup","params":{"name":"\ud800"}}`,
		"\xff\xfe{}", `[]`, `"x"`, `{"jsonrpc":"2.0","id":1,"method":"lookup","params":{"name":"a.del`, " ",
	} {
		f.Add([]byte(s))
	}
	known := map[int]bool{}
	for _, c := range []api.Code{api.CodeParse, api.CodeInvalidRequest, api.CodeMethodNotFound, api.CodeBadRequest, api.CodeInternal,
		api.CodeTimeout, api.CodeNoUpstream, api.CodeConfig, api.CodeTooLarge, api.CodeBusy, api.CodeDaemonDown} {
		known[c.RPC()] = true
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		var mu sync.Mutex
		var out [][]byte
		sess := NewSession(context.Background(), SessionOptions{
			Handler: func(ctx context.Context, method string, params json.RawMessage, from string) (any, error) {
				switch method {
				case "lookup":
					var p fuzzParams
					if err := DecodeParams(params, &p); err != nil {
						var ae *api.Error
						if !errors.As(err, &ae) || ae.Code != api.CodeBadRequest {
							t.Errorf("DecodeParams(%q) = %v, not a bad_request", params, err)
						}
						return nil, err
					}
					return p, nil
				case "status":
					return map[string]int{"ok": 1}, nil
				}
				return nil, api.NewError(api.CodeMethodNotFound, "no "+method)
			},
			From: "fuzz",
			Send: func(b []byte) bool {
				mu.Lock()
				out = append(out, bytes.Clone(b))
				mu.Unlock()
				return true
			},
		})
		sess.Handle(bytes.Clone(msg))
		sess.Wait()
		data := bytes.TrimSpace(msg)
		if len(out) > 1 {
			t.Fatalf("%d responses to one message: %q", len(out), out)
		}
		for _, b := range out {
			if !json.Valid(b) {
				t.Fatalf("invalid JSON sent: %q", b)
			}
			var one json.RawMessage = b
			resps := []json.RawMessage{one}
			if b[0] == '[' {
				if len(data) == 0 || data[0] != '[' {
					t.Fatalf("a batch response to a message that is no batch: %q", b)
				}
				resps = nil
				if err := json.Unmarshal(b, &resps); err != nil || len(resps) == 0 {
					t.Fatalf("batch response %q: %v", b, err)
				}
			}
			for _, r := range resps {
				var v struct {
					JSONRPC string          `json:"jsonrpc"`
					ID      json.RawMessage `json:"id"`
					Result  json.RawMessage `json:"result"`
					Error   *struct {
						Code    int    `json:"code"`
						Message string `json:"message"`
					} `json:"error"`
				}
				if err := json.Unmarshal(r, &v); err != nil || v.JSONRPC != "2.0" || v.ID == nil || (v.Result == nil) == (v.Error == nil) {
					t.Fatalf("not a JSON-RPC 2.0 response: %q (%v)", r, err)
				}
				if v.Error != nil && (!known[v.Error.Code] || v.Error.Message == "" || strings.Contains(v.Error.Message, "\n")) {
					t.Fatalf("error %d %q", v.Error.Code, v.Error.Message)
				}
			}
		}
	})
}
