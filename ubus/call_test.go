package ubus

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/json"
	"github.com/delvedns/delve/internal/jsonrpc"
	"github.com/delvedns/delve/uci"
)

func TestSignatureFromTable(t *testing.T) {
	var sig map[string]map[string]string
	if err := json.Unmarshal(Signature(), &sig); err != nil {
		t.Fatal(err)
	}
	for _, m := range api.Methods() {
		if len(sig[m.Name]) != len(m.Params) {
			t.Fatalf("%s: %v", m.Name, sig[m.Name])
		}
		for _, p := range m.Params {
			if sig[m.Name][p.Name] != sampleString {
				t.Fatalf("%s.%s: %q", m.Name, p.Name, sig[m.Name][p.Name])
			}
		}
	}
	if len(sig) != len(api.Methods()) {
		t.Fatalf("%d methods, table %d", len(sig), len(api.Methods()))
	}
}

func TestParseArgs(t *testing.T) {
	lookup, _ := api.FindMethod(api.MethodLookup)
	status, _ := api.FindMethod(api.MethodStatus)
	for _, tc := range []struct {
		name  string
		m     api.Method
		in    string
		want  map[string]string // nil: no params
		error string            // substring of the bad_request message; "" for success
	}{
		{"name", lookup, `{"name":"x"}`, map[string]string{"name": "x"}, ""},
		{"all", lookup, `{"name":"x","type":"MX","upstream":"q"}`, map[string]string{"name": "x", "type": "MX", "upstream": "q"}, ""},
		{"session dropped", lookup, `{"name":"x","ubus_rpc_session":"abc"}`, map[string]string{"name": "x"}, ""},
		{"unknown nested dropped", lookup, `{"x":{"y":[1,2,{"z":null}]},"name":"x"}`, map[string]string{"name": "x"}, ""},
		{"null is absent", lookup, `{"name":"x","type":null}`, map[string]string{"name": "x"}, ""},
		{"escapes", lookup, `{"name":"a\u002eb"}`, map[string]string{"name": "a.b"}, ""},
		{"status empty", status, ``, nil, ""},
		{"status {}", status, `{}`, nil, ""},
		{"status null", status, `null`, nil, ""},
		{"status whitespace", status, " \n\t", nil, ""},
		{"status session", status, `{"ubus_rpc_session":"abc"}`, nil, ""},
		{"status name ignored", status, `{"name":1}`, nil, ""},

		{"required", lookup, `{}`, nil, `"name" is required`},
		{"required null", lookup, `{"name":null}`, nil, `"name" is required`},
		{"required empty", lookup, ``, nil, `"name" is required`},
		{"number", lookup, `{"name":1}`, nil, `"name" must be a string, not a number`},
		{"bool", lookup, `{"name":"x","type":true}`, nil, `"type" must be a string, not a boolean`},
		{"array", lookup, `{"name":"x","type":["A"]}`, nil, `"type" must be a string, not an array`},
		{"object", lookup, `{"name":"x","upstream":{}}`, nil, `"upstream" must be a string, not an object`},
		{"top array", status, `[]`, nil, "not an array"},
		{"top string", lookup, `"x"`, nil, "not a string"},
		{"top number", lookup, `1.5`, nil, "not a number"},
		{"top bool", lookup, `false`, nil, "not a boolean"},
		{"truncated", lookup, `{"name":"x`, nil, "end too early"},
		{"truncated after key", lookup, `{"name"`, nil, "end too early"},
		{"close only", status, `}`, nil, "not valid JSON"},
		{"utf8", lookup, "{\"name\":\"\xc3\x28\"}", nil, "UTF-8"},
		{"dup", lookup, `{"name":"x","name":"y"}`, nil, "twice"},
		{"dup ignored key", status, `{"a":1,"a":2}`, nil, "twice"},
		{"trailing", status, `{} x`, nil, "not valid JSON"},
		{"two", status, `{}{}`, nil, "more follows"},
		{"trailing comma", status, `{"a":1,}`, nil, "not valid JSON"},
		{"deep", status, `{"a":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, nil, "not valid JSON"},
		{"deep but each value in bounds", lookup, `{"name":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`, nil, `"name" must be a string, not an array`},
		{"no colon", lookup, `{"name" "x"}`, nil, "invalid character '\"' after object key"},
		{"no comma", lookup, `{"name":"x" "type":"A"}`, nil, "invalid character '\"' after object key:value pair"},
		{"bad value", lookup, `{"name":"x","type":tru}`, nil, "invalid character '}' in literal true"},
		{"key not a string", lookup, `{name:"x"}`, nil, "invalid character 'n' looking for beginning of object key string"},
		{"truncated null", status, `nul`, nil, "end too early"},
		{"null then more", status, `null {}`, nil, "more follows"},
		{"garbage", status, `hello`, nil, "invalid character 'h' looking for beginning of value"},
		{"garbage after", lookup, `{"name":"x"} ]`, nil, "not valid JSON"},
		{"trailing space", lookup, "{\"name\":\"x\"}\n\t ", map[string]string{"name": "x"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseArgs(tc.m, []byte(tc.in))
			if tc.error != "" {
				if api.CodeOf(err) != api.CodeBadRequest || !strings.Contains(err.Error(), tc.error) {
					t.Fatalf("got %v %v, want bad_request containing %q", got, err, tc.error)
				}
				return
			}
			if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) || (got == nil) != (tc.want == nil) {
				t.Fatalf("got %v %v, want %v", got, err, tc.want)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	// uci.Load takes only a file the daemon could run with: one enabled upstream at least.
	const upstream = "\nconfig upstream 'u'\n\toption address '127.0.0.1'\n\toption tls_name 'x.test'\n"
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text+upstream), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	short := write("short", "config delve 'main'\n\toption socket '/tmp/x/d.sock'\n\toption timeout '500'\n")
	mid := write("mid", "config delve 'main'\n\toption timeout '20000'\n")
	long := write("long", "config delve 'main'\n\toption timeout '60000'\n")
	broken := write("broken", "config delve 'main'\n\toption socket '/tmp/y.sock'\n\toption timeout 'soon'\n")
	noUpstream := filepath.Join(dir, "no-upstream")
	if err := os.WriteFile(noUpstream, []byte("config delve 'main'\n\toption socket '/tmp/y.sock'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name         string
		o            Options
		socket       string
		deadline     time.Duration
		wantDeadline time.Duration
	}{
		{"nothing", Options{}, uci.DefaultSocket, 0, DefaultDeadline},
		{"socket and short timeout", Options{Config: short}, "/tmp/x/d.sock", 0, DefaultDeadline},
		{"timeout plus margin", Options{Config: mid}, uci.DefaultSocket, 0, 22 * time.Second},
		{"timeout capped", Options{Config: long}, uci.DefaultSocket, 0, MaxDeadline},
		{"broken file keeps its socket", Options{Config: broken}, "/tmp/y.sock", 0, DefaultDeadline},
		{"no upstream keeps its socket", Options{Config: noUpstream}, "/tmp/y.sock", 0, DefaultDeadline},
		{"missing file", Options{Config: filepath.Join(dir, "none")}, uci.DefaultSocket, 0, DefaultDeadline},
		{"env socket wins", Options{Config: short, Socket: "/s"}, "/s", 0, DefaultDeadline},
		{"deadline given", Options{Config: long, Deadline: time.Second}, uci.DefaultSocket, 0, time.Second},
		{"deadline given, capped", Options{Deadline: time.Hour}, uci.DefaultSocket, 0, MaxDeadline},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, d := tc.o.resolve()
			if s != tc.socket || d != tc.wantDeadline {
				t.Fatalf("socket %q deadline %s, want %q %s", s, d, tc.socket, tc.wantDeadline)
			}
		})
	}
}

// bigLookup is a lookup object with n answers, alternating A and MX, and a member the bridge
// does not know.
func bigLookup(n, total int) []byte {
	l := map[string]any{"name": "big.test.", "rcode": "NOERROR", "future": map[string]int{"x": 1}}
	answers := []api.Answer{}
	addrs := []string{}
	for i := range n {
		a := api.Answer{Name: "big.test.", Type: "A", TTL: 300, Data: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)}
		if i%2 == 1 {
			a.Type, a.Data = "MX", fmt.Sprintf("10 mx%d.big.test.", i)
		} else {
			addrs = append(addrs, a.Data)
		}
		answers = append(answers, a)
	}
	l["answers"], l["addresses"] = answers, addrs
	if total > 0 {
		l["capped"], l["answers_total"] = true, total
	}
	b, _ := json.Marshal(l)
	return b
}

func TestFit(t *testing.T) {
	t.Run("small passes unchanged", func(t *testing.T) {
		in := bigLookup(3, 0)
		out, err := fit(api.MethodLookup, in, MaxReply)
		if err != nil || !bytes.Equal(out, append(in, '\n')) {
			t.Fatalf("%s %v", out, err)
		}
	})
	for _, tc := range []struct {
		name       string
		n, total   int
		max        int
		wantTotal  int
		wantAtMost int
	}{
		{"capped here", 20000, 0, 64 << 10, 20000, 20000},
		{"capped by the daemon first", 256, 300, 4 << 10, 300, 256},
		{"default budget", 20000, 0, MaxReply, 20000, 20000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := fit(api.MethodLookup, bigLookup(tc.n, tc.total), tc.max)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) > tc.max || out[len(out)-1] != '\n' {
				t.Fatalf("%d bytes, budget %d", len(out), tc.max)
			}
			var l struct {
				api.Lookup
				Future map[string]int `json:"future"`
			}
			if err := json.Unmarshal(out, &l); err != nil {
				t.Fatal(err)
			}
			if !l.Capped || l.AnswersTotal != tc.wantTotal || len(l.Answers) == 0 || len(l.Answers) >= tc.n || l.Future["x"] != 1 {
				t.Fatalf("capped %v total %d answers %d future %v", l.Capped, l.AnswersTotal, len(l.Answers), l.Future)
			}
			// As many as fit: the room left is less than one more answer and its address.
			if left := tc.max - len(out); left > 200 {
				t.Fatalf("only %d answers in %d bytes of %d", len(l.Answers), len(out), tc.max)
			}
			var want []string
			for _, a := range l.Answers {
				if a.Type == "A" {
					want = append(want, a.Data)
				}
			}
			if fmt.Sprint(l.Addresses) != fmt.Sprint(want) {
				t.Fatalf("addresses %v, want those of the answers kept %v", l.Addresses, want)
			}
		})
	}
	t.Run("other methods refused", func(t *testing.T) {
		big := []byte(`{"warnings":["` + strings.Repeat("w", 1000) + `"]}`)
		if _, err := fit(api.MethodReload, big, 512); api.CodeOf(err) != api.CodeTooLarge {
			t.Fatalf("%v", err)
		}
	})
	t.Run("lookup that cannot fit", func(t *testing.T) {
		if _, err := fit(api.MethodLookup, bigLookup(10, 0), 20); api.CodeOf(err) != api.CodeTooLarge {
			t.Fatalf("%v", err)
		}
	})
	t.Run("not an object", func(t *testing.T) {
		for _, res := range []string{`null`, `[]`, `"x"`, ``} {
			if _, err := fit(api.MethodStatus, json.RawMessage(res), MaxReply); api.CodeOf(err) != api.CodeInternal {
				t.Fatalf("%s: %v", res, err)
			}
		}
	})
}

// fakeDaemon serves handler on a unix socket with delve's own JSON-RPC server.
func fakeDaemon(t *testing.T, h jsonrpc.Handler) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "dvu")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "d.sock")
	l, err := jsonrpc.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := jsonrpc.NewServer(jsonrpc.Options{Handler: h})
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
		os.RemoveAll(dir)
	})
	return sock
}

// callOut runs Call and decodes its one line.
func callOut(t *testing.T, o Options, method, stdin string) map[string]any {
	t.Helper()
	var out bytes.Buffer
	if err := Call(t.Context(), o, method, strings.NewReader(stdin), &out); err != nil {
		t.Fatal(err)
	}
	line := out.Bytes()
	if bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
		t.Fatalf("not one line: %q", line)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	return m
}

func TestCallForwards(t *testing.T) {
	var mu sync.Mutex
	var got []string
	sock := fakeDaemon(t, func(ctx context.Context, method string, params json.RawMessage, _ string) (any, error) {
		mu.Lock()
		got = append(got, method+" "+string(params))
		mu.Unlock()
		switch method {
		case api.MethodLookup:
			var p struct {
				Name string `json:"name"`
			}
			_ = json.Unmarshal(params, &p)
			switch p.Name {
			case "huge":
				return json.RawMessage(bigLookup(20000, 0)), nil
			case "down":
				return nil, api.NewError(api.CodeNoUpstream, "every upstream failed")
			case "slow":
				<-ctx.Done()
				return nil, ctx.Err()
			}
			return map[string]any{"name": p.Name + ".", "answers": []any{}, "addresses": []string{}}, nil
		case api.MethodStatus:
			return map[string]string{"big": strings.Repeat("s", 2000)}, nil
		}
		return map[string]bool{"ok": true}, nil
	})
	o := Options{Socket: sock, Deadline: 2 * time.Second}

	if m := callOut(t, o, "lookup", `{"name":"x",`+`"ubus_rpc_session":"s","type":"A"}`); m["name"] != "x." {
		t.Fatalf("%v", m)
	}
	if m := callOut(t, o, "flush", `{"ubus_rpc_session":"s"}`); m["ok"] != true {
		t.Fatalf("%v", m)
	}
	mu.Lock()
	if want := []string{`lookup {"name":"x","type":"A"}`, `flush `}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the daemon got %q, want %q (only the arguments the method takes)", got, want)
	}
	mu.Unlock()

	m := callOut(t, Options{Socket: sock, Deadline: 2 * time.Second, MaxReply: 100 << 10}, "lookup", `{"name":"huge"}`)
	if m["capped"] != true || m["answers_total"] != float64(20000) {
		t.Fatalf("capped %v total %v", m["capped"], m["answers_total"])
	}
	if m := callOut(t, Options{Socket: sock, Deadline: 2 * time.Second, MaxReply: 1000}, "status", `{}`); m["code"] != string(api.CodeTooLarge) {
		t.Fatalf("%v", m)
	}
	if m := callOut(t, o, "lookup", `{"name":"down"}`); m["code"] != string(api.CodeNoUpstream) || m["error"] != "every upstream failed" {
		t.Fatalf("%v", m)
	}
	start := time.Now()
	if m := callOut(t, Options{Socket: sock, Deadline: 300 * time.Millisecond}, "lookup", `{"name":"slow"}`); m["code"] != string(api.CodeTimeout) {
		t.Fatalf("%v", m)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("a 300 ms deadline took %s", took)
	}
}

// TestStdinNeverEnds: should rpcd not close stdin, the call still ends at its deadline.
func TestStdinNeverEnds(t *testing.T) {
	r, w := io.Pipe()
	defer w.Close()
	defer r.Close()
	go func() { _, _ = w.Write([]byte(`{"name":"x"}`)) }()
	var out bytes.Buffer
	if err := Call(t.Context(), Options{Socket: "/nonexistent/d.sock", Deadline: 200 * time.Millisecond}, "lookup", r, &out); err != nil {
		t.Fatal(err)
	}
	var e errorObject
	if err := json.Unmarshal(out.Bytes(), &e); err != nil || e.Code != api.CodeTimeout || !strings.Contains(e.Error, "stdin") {
		t.Fatalf("%q %v", out.String(), err)
	}
}

func TestCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var out bytes.Buffer
	_ = Call(ctx, Options{Socket: "/nonexistent/d.sock"}, "status", strings.NewReader("{}"), &out)
	var e errorObject
	if err := json.Unmarshal(out.Bytes(), &e); err != nil || e.Code != api.CodeTimeout {
		t.Fatalf("%q %v", out.String(), err)
	}
}
