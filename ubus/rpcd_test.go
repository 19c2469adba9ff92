package ubus_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/daemon"
	"github.com/delvedns/delve/internal/testenv"
	"github.com/delvedns/delve/ubus"
)

// These tests run the real binary the way rpcd runs an exec plugin (openwrt-facts.md §1): through
// the shim files/delve.rpcd, argv [plugin, "list"] or [plugin, "call", METHOD], the arguments on
// stdin as compact JSON without a newline and then EOF, stdout read to EOF of stdout and stderr,
// only the first complete JSON value kept, the exit status ignored, and rpcd's 30 s exec
// timeout enforced.

// rpcdTimeout is rpcd's exec timeout on OpenWrt: rpcd -t 30, from the shipped /etc/config/rpcd
// (rpcd's compiled-in default without -t is 120 s), and `ubus call`'s own default -t.
const rpcdTimeout = 30 * time.Second

// plugin is the rpcd shim, files/delve.rpcd, pointing at the binary built for this test run.
var plugin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "delve-ubus-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "delve-bin")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/delvedns/delve/cmd/delve").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		return 1
	}
	shim, err := os.ReadFile("../files/delve.rpcd")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	const target = "exec /usr/bin/delve rpcd "
	if !bytes.Contains(shim, []byte(target)) {
		fmt.Fprintf(os.Stderr, "files/delve.rpcd does not contain %q\n", target)
		return 1
	}
	shim = bytes.Replace(shim, []byte(target), []byte("exec '"+bin+"' rpcd "), 1)
	// Named like the installed plugin: rpcd names the ubus object after the file.
	plugin = filepath.Join(dir, "delve")
	if err := os.WriteFile(plugin, shim, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// result is what rpcd gets from one run of the plugin.
type result struct {
	raw   []byte          // all of stdout
	first json.RawMessage // the first complete JSON value: what rpcd keeps
	exit  int
	took  time.Duration
}

// obj decodes the reply object.
func (r result) obj(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.first, &m); err != nil {
		t.Fatalf("reply %s: %v", r.first, err)
	}
	return m
}

// wantError checks that the reply is the error object with code.
func (r result) wantError(t *testing.T, code api.Code) string {
	t.Helper()
	var e struct {
		Error *string `json:"error"`
		Code  string  `json:"code"`
	}
	if err := json.Unmarshal(r.first, &e); err != nil || e.Error == nil {
		t.Fatalf("want an error object with code %s, got %s", code, r.first)
	}
	if e.Code != string(code) || *e.Error == "" {
		t.Fatalf("want code %s, got %s", code, r.first)
	}
	if m := r.obj(t); len(m) != 2 {
		t.Fatalf("the error object has more than error and code: %s", r.first)
	}
	return *e.Error
}

// wantOK checks that the reply is not an error object.
func (r result) wantOK(t *testing.T) map[string]any {
	t.Helper()
	m := r.obj(t)
	if _, ok := m["error"]; ok {
		t.Fatalf("unexpected error object %s", r.first)
	}
	return m
}

// env is the plugin's environment: the test's, without any DELVE_ variable, plus extra.
func env(extra ...string) []string {
	var e []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DELVE_") {
			e = append(e, kv)
		}
	}
	return append(e, extra...)
}

// rpcd runs the plugin with args as rpcd does. stdin nil means /dev/null (as for list);
// otherwise it is written once and closed. The reply must be complete before rpcd's timeout,
// must be exactly one JSON object (rpcd would keep the first value, but delve promises one) and
// must stay within ubus.MaxReply.
func rpcd(t *testing.T, environ []string, stdin []byte, args ...string) result {
	t.Helper()
	cmd := exec.Command(plugin, args...)
	cmd.Env = environ
	cmd.Dir = "/"
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer outR.Close()
	defer errR.Close()
	cmd.Stdout, cmd.Stderr = outW, errW
	var inW *os.File
	if stdin != nil {
		var inR *os.File
		if inR, inW, err = os.Pipe(); err != nil {
			t.Fatal(err)
		}
		defer inR.Close()
		cmd.Stdin = inR
	}
	start := time.Now()
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		t.Fatal(err)
	}
	if inW != nil {
		go func() {
			// One write, then EOF. The plugin may stop reading early (an oversized input):
			// the write then fails with EPIPE, which rpcd ignores too.
			_, _ = inW.Write(stdin)
			inW.Close()
		}()
	}
	// rpcd answers when stdout and stderr both reach EOF, whoever holds them.
	type read struct {
		b   []byte
		err error
	}
	outc, errc := make(chan read, 1), make(chan read, 1)
	go func() { b, err := io.ReadAll(outR); outc <- read{b, err} }()
	go func() { _, err := io.Copy(io.Discard, errR); errc <- read{nil, err} }()
	timer := time.NewTimer(rpcdTimeout)
	defer timer.Stop()
	var out read
	for got := 0; got < 2; got++ {
		select {
		case out = <-outc:
		case <-errc:
		case <-timer.C:
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("delve rpcd %v: stdout and stderr still open after rpcd's %s timeout", args, rpcdTimeout)
		}
	}
	took := time.Since(start)
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-waited:
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-waited
		t.Fatalf("delve rpcd %v closed its output but did not exit within %s", args, rpcdTimeout)
	}
	r := result{raw: out.b, took: took}
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		r.exit = ee.ExitCode()
	} else if werr != nil {
		t.Fatal(werr)
	}
	if out.err != nil {
		t.Fatal(out.err)
	}
	t.Logf("delve rpcd %v: %d bytes in %s", args, len(r.raw), took.Round(time.Millisecond))

	if len(r.raw) > ubus.MaxReply {
		t.Fatalf("reply of %d bytes, more than %d", len(r.raw), ubus.MaxReply)
	}
	dec := json.NewDecoder(bytes.NewReader(r.raw))
	if err := dec.Decode(&r.first); err != nil {
		t.Fatalf("delve rpcd %v printed no complete JSON value (rpcd: No response or Invalid argument): %v\n%q", args, err, r.raw)
	}
	if r.first[0] != '{' {
		t.Fatalf("delve rpcd %v printed %s, not an object (rpcd: Invalid argument)", args, r.first)
	}
	if rest, _ := io.ReadAll(dec.Buffered()); len(bytes.TrimSpace(rest)) > 0 {
		t.Fatalf("delve rpcd %v printed more after its object: %q", args, rest)
	}
	return r
}

func TestList(t *testing.T) {
	// A configuration whose socket is a listener that never answers: a list that read the file
	// and called the daemon would connect to it (and wait).
	dir, err := os.MkdirTemp("", "dvu")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "d.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	conf := filepath.Join(dir, "delve")
	if err := os.WriteFile(conf, []byte("config delve 'main'\n\toption socket '"+sock+"'\n\nconfig upstream 'u'\n\toption address '127.0.0.1'\n\toption tls_name 'x.test'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := rpcd(t, env("DELVE_CONFIG="+conf), nil, "list")
	// A connection made by the plugin would be waiting in the backlog by now.
	_ = l.SetDeadline(time.Now().Add(100 * time.Millisecond))
	if c, err := l.Accept(); err == nil {
		c.Close()
		t.Fatal("list connected to the daemon's socket")
	}
	const want = `{"lookup":{"name":"string","type":"string","upstream":"string"},"status":{},"reload":{},"flush":{},"redial":{}}`
	if string(r.first) != want {
		t.Fatalf("list printed\n%s\nwant\n%s", r.first, want)
	}
	if r.exit != 0 {
		t.Errorf("exit status %d", r.exit)
	}
	// Every method of the table, each argument a string sample (rpcd: blobmsg STRING, which
	// `ubus -v list` shows as "String"), no other value type.
	var sig map[string]map[string]any
	if err := json.Unmarshal(r.first, &sig); err != nil {
		t.Fatal(err)
	}
	if len(sig) != len(api.Methods()) {
		t.Fatalf("%d methods listed, the table has %d", len(sig), len(api.Methods()))
	}
	for _, m := range api.Methods() {
		args, ok := sig[m.Name]
		if !ok || len(args) != len(m.Params) {
			t.Fatalf("method %s: listed %v, table %v", m.Name, args, m.Params)
		}
		for _, p := range m.Params {
			if _, ok := args[p.Name].(string); !ok {
				t.Fatalf("%s.%s: sample %v is not a string", m.Name, p.Name, args[p.Name])
			}
		}
	}
}

// TestUsage: bad use of `delve rpcd` itself exits 2 and prints nothing on stdout.
func TestUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"call"}, {"call", "status", "extra"}, {"list", "extra"}, {"frob"}} {
		cmd := exec.Command(plugin, args...)
		cmd.Env = env("DELVE_SOCKET=/nonexistent/delve.sock")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || stdout.Len() != 0 || !strings.Contains(stderr.String(), "usage") {
			t.Errorf("delve rpcd %q: %v, stdout %q, stderr %q; want exit 2, usage on stderr", args, err, stdout.String(), stderr.String())
		}
	}
}

// delved is a running `delve serve`.
type delved struct {
	socket string
	config string
	log    *testenv.SyncBuffer
	env    []string
}

// startDaemon writes a UCI file for upstreams (section name -> "addr:port"), with the lines
// extra in the main section, and starts the real daemon on a socket in a fresh directory.
func startDaemon(t *testing.T, ub *testenv.Unbound, timeoutMS int, upstreams [][2]string, extra ...string) *delved {
	t.Helper()
	// A short directory of its own: unix socket paths are limited to 108 bytes.
	sockDir, err := os.MkdirTemp("", "dvu")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	d := &delved{socket: filepath.Join(sockDir, "delve.sock"), config: filepath.Join(t.TempDir(), "delve"), log: &testenv.SyncBuffer{}}
	d.env = env("DELVE_CONFIG="+d.config, "DELVE_SOCKET="+d.socket)
	var b strings.Builder
	fmt.Fprintf(&b, "config delve 'main'\n\tlist type 'A'\n\tlist type 'AAAA'\n\toption timeout '%d'\n\toption socket '%s'\n\toption ca_file '%s'\n",
		timeoutMS, d.socket, ub.CAFile)
	for _, line := range extra {
		fmt.Fprintf(&b, "\t%s\n", line)
	}
	for _, u := range upstreams {
		host, port, _ := net.SplitHostPort(u[1])
		fmt.Fprintf(&b, "\nconfig upstream '%s'\n\toption address '%s'\n\toption port '%s'\n\toption tls_name '%s'\n", u[0], host, port, testenv.TLSName)
	}
	if err := os.WriteFile(d.config, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(filepath.Join(filepath.Dir(plugin), "delve-bin"), "serve", "--config", d.config)
	cmd.Stdout, cmd.Stderr = d.log, d.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(daemon.ShutdownGrace + 5*time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("delve serve did not stop on SIGTERM; log:\n%s", d.log)
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := net.Dial("unix", d.socket)
		if err == nil {
			c.Close()
			return d
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("delve serve exited (%v); log:\n%s", err, d.log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("delve serve not answering on %s after 30 s; log:\n%s", d.socket, d.log)
		}
	}
}

func strs(t *testing.T, v any) []string {
	t.Helper()
	list, ok := v.([]any)
	if !ok {
		t.Fatalf("%v is not an array", v)
	}
	out := []string{}
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			t.Fatalf("%v is not a string", e)
		}
		out = append(out, s)
	}
	return out
}

// session is a session id as uhttpd adds it to every call's arguments.
const session = `"ubus_rpc_session":"0123456789abcdef0123456789abcdef"`

// TestCall drives every method through the plugin against the real daemon and the real unbound.
func TestCall(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	d := startDaemon(t, ub, 3000, [][2]string{{"unbound", ub.Addr()}})
	call := func(t *testing.T, method, stdin string) result {
		t.Helper()
		r := rpcd(t, d.env, []byte(stdin), "call", method)
		if r.exit != 0 {
			t.Errorf("exit status %d; rpcd ignores it, but call promises 0", r.exit)
		}
		return r
	}

	t.Run("lookup", func(t *testing.T) {
		for _, tc := range []struct{ name, stdin string }{
			{"plain", `{"name":"a.delve.test"}`},
			{"uhttpd session", `{"name":"a.delve.test",` + session + `}`},
			{"session first", `{` + session + `,"name":"a.delve.test","type":"","upstream":null}`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				m := call(t, "lookup", tc.stdin).wantOK(t)
				want := append(testenv.KdigT(t, ub, "a.delve.test", "A").Data("A"), testenv.KdigT(t, ub, "a.delve.test", "AAAA").Data("AAAA")...)
				got := strs(t, m["addresses"])
				slices.Sort(got)
				slices.Sort(want)
				if len(want) != 2 || !slices.Equal(got, want) {
					t.Fatalf("addresses %v, kdig %v", got, want)
				}
				if m["rcode"] != "NOERROR" || m["name"] != "a.delve.test." || m["upstream"] != "unbound" {
					t.Fatalf("lookup %v", m)
				}
			})
		}
	})

	t.Run("lookup type", func(t *testing.T) {
		m := call(t, "lookup", `{"name":"delve.test","type":"MX","upstream":"unbound"}`).wantOK(t)
		k := testenv.KdigT(t, ub, "delve.test", "MX")
		answers := m["answers"].([]any)
		if len(answers) != 1 || answers[0].(map[string]any)["data"] != k.Data("MX")[0] || len(strs(t, m["addresses"])) != 0 {
			t.Fatalf("MX lookup %v, kdig %v", m, k.Data("MX"))
		}
	})

	t.Run("nxdomain", func(t *testing.T) {
		m := call(t, "lookup", `{"name":"missing.delve.test","type":"A"}`).wantOK(t)
		if k := testenv.KdigT(t, ub, "missing.delve.test", "A"); k.Rcode != "NXDOMAIN" || m["rcode"] != "NXDOMAIN" {
			t.Fatalf("rcode %v, kdig %s", m["rcode"], k.Rcode)
		}
		if len(m["answers"].([]any)) != 0 || len(strs(t, m["addresses"])) != 0 {
			t.Fatalf("NXDOMAIN with answers: %v", m)
		}
	})

	t.Run("near the cap", func(t *testing.T) {
		r := call(t, "lookup", `{"name":"big.delve.test","type":"A"}`)
		m := r.wantOK(t)
		k := testenv.KdigT(t, ub, "big.delve.test", "A")
		answers := m["answers"].([]any)
		addrs := strs(t, m["addresses"])
		if m["capped"] != true || m["answers_total"] != float64(len(k.Answer)) || len(k.Answer) != 300 {
			t.Fatalf("capped %v, answers_total %v, kdig %d answers", m["capped"], m["answers_total"], len(k.Answer))
		}
		if len(answers) != daemon.MaxAnswers || !slices.Equal(addrs, k.Data("A")[:daemon.MaxAnswers]) {
			t.Fatalf("%d answers, addresses %v", len(answers), addrs)
		}
		if len(r.raw) >= 1<<20/4 {
			t.Fatalf("%d bytes: not far below ubus's 1 MiB", len(r.raw))
		}
	})

	t.Run("status", func(t *testing.T) {
		// rpcd writes {} for no arguments; null is UNSPEC; a person may give nothing at all.
		for _, stdin := range []string{`{}`, ``, `null`, `{` + session + `}`, ` { } `} {
			m := call(t, "status", stdin).wantOK(t)
			if _, ok := m["version"].(string); !ok || m["upstreams"] == nil {
				t.Fatalf("status with %q: %v", stdin, m)
			}
		}
	})

	t.Run("flush", func(t *testing.T) {
		call(t, "lookup", `{"name":"a.delve.test","type":"A"}`).wantOK(t)
		for _, stdin := range []string{`{}`, ``, `null`, `{` + session + `}`} {
			m := call(t, "flush", stdin).wantOK(t)
			if _, ok := m["flushed"].(float64); !ok {
				t.Fatalf("flush with %q: %v", stdin, m)
			}
		}
	})

	t.Run("reload", func(t *testing.T) {
		for _, stdin := range []string{`{}`, ``, `null`, `{` + session + `}`} {
			m := call(t, "reload", stdin).wantOK(t)
			if m["reloaded"] != true {
				t.Fatalf("reload with %q: %v", stdin, m)
			}
		}
	})

	t.Run("redial", func(t *testing.T) {
		upstream := func() map[string]any {
			t.Helper()
			ups, _ := call(t, "status", `{}`).wantOK(t)["upstreams"].([]any)
			if len(ups) != 1 {
				t.Fatalf("status upstreams %v", ups)
			}
			return ups[0].(map[string]any)
		}
		for i, stdin := range []string{`{}`, ``, `null`, `{` + session + `}`} {
			call(t, "lookup", `{"name":"`+testenv.WildName("redial"+strconv.Itoa(i))+`","type":"A"}`).wantOK(t)
			before := upstream()
			if before["open_connections"] != float64(1) {
				t.Fatalf("before redial: %v", before)
			}
			m := call(t, "redial", stdin).wantOK(t)
			if m["redialed"] != float64(1) {
				t.Fatalf("redial with %q: %v", stdin, m)
			}
			// Reset closes the connection before the reply: nothing is open now, and the next
			// lookup dials a new one.
			if u := upstream(); u["open_connections"] != float64(0) {
				t.Fatalf("after redial: %v", u)
			}
			call(t, "lookup", `{"name":"`+testenv.WildName("redialed"+strconv.Itoa(i))+`","type":"A"}`).wantOK(t)
			if u := upstream(); u["connections_opened"] != before["connections_opened"].(float64)+1 {
				t.Fatalf("after redial and a lookup: %v connections opened, before %v", u["connections_opened"], before["connections_opened"])
			}
		}
	})

	t.Run("reload refused", func(t *testing.T) {
		good, err := os.ReadFile(d.config)
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := os.WriteFile(d.config, good, 0o600); err != nil {
				t.Fatal(err)
			}
		}()
		bad := strings.Replace(string(good), "option timeout '3000'", "option timeout 'BOGUS'", 1)
		if bad == string(good) {
			t.Fatal("no timeout option to break")
		}
		if err := os.WriteFile(d.config, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		// The file is broken: the bridge still finds the socket (DELVE_SOCKET here) and the
		// daemon's own error comes through with its code.
		msg := call(t, "reload", `{}`).wantError(t, api.CodeConfig)
		if !strings.Contains(msg, "BOGUS") {
			t.Fatalf("message %q does not name the bad value", msg)
		}
		t.Log(msg)
		call(t, "lookup", `{"name":"a.delve.test","type":"A"}`).wantOK(t)
	})

	t.Run("daemon errors", func(t *testing.T) {
		for _, tc := range []struct{ stdin, want string }{
			{`{"name":"a.delve.test","upstream":"nope"}`, "nope"},
			{`{"name":"a.delve.test","type":"NOTATYPE"}`, "NOTATYPE"},
			{`{"name":"bad..name"}`, "empty label"},
		} {
			msg := call(t, "lookup", tc.stdin).wantError(t, api.CodeBadRequest)
			if !strings.Contains(msg, tc.want) {
				t.Errorf("%s: message %q", tc.stdin, msg)
			}
			t.Log(msg)
		}
	})

	t.Run("malformed stdin", func(t *testing.T) {
		huge := append([]byte(`{"name":"`), bytes.Repeat([]byte("a"), 10<<20)...)
		huge = append(huge, `"}`...)
		for _, tc := range []struct {
			name, method string
			stdin        []byte
		}{
			{"truncated", "lookup", []byte(`{"name":"a.delve.te`)},
			{"truncated object", "status", []byte(`{"ubus_rpc_session":`)},
			{"array", "lookup", []byte(`["a.delve.test"]`)},
			{"array for status", "status", []byte(`[]`)},
			{"string", "lookup", []byte(`"a.delve.test"`)},
			{"number", "flush", []byte(`42`)},
			{"invalid UTF-8", "lookup", []byte("{\"name\":\"a\xff.delve.test\"}")},
			{"invalid UTF-8 in an ignored key", "status", []byte("{\"x\xfe\":1}")},
			{"10 MiB", "lookup", huge},
			{"name a number", "lookup", []byte(`{"name":42}`)},
			{"type an array", "lookup", []byte(`{"name":"a.delve.test","type":["A","AAAA"]}`)},
			{"upstream an object", "lookup", []byte(`{"name":"a.delve.test","upstream":{}}`)},
			{"name missing", "lookup", []byte(`{` + session + `}`)},
			{"empty for lookup", "lookup", []byte(``)},
			{"duplicate key", "lookup", []byte(`{"name":"a.delve.test","name":"b.delve.test"}`)},
			{"two objects", "status", []byte(`{}{}`)},
			{"trailing comma", "status", []byte(`{"a":1,}`)},
			{"not JSON", "reload", []byte(`name=a.delve.test`)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				msg := call(t, tc.method, string(tc.stdin)).wantError(t, api.CodeBadRequest)
				t.Logf("%s", msg)
			})
		}
	})

	t.Run("unknown method", func(t *testing.T) {
		msg := call(t, "resolve", `{"name":"a.delve.test"}`).wantError(t, api.CodeMethodNotFound)
		if !strings.Contains(msg, "resolve") {
			t.Fatalf("message %q", msg)
		}
		t.Log(msg)
	})
}

// TestLookupTimeout: the upstream accepts TCP and never answers; the daemon's 500 ms lookup
// timeout comes back as the timeout error object. An upstream that refuses connections gives
// no_upstream.
func TestLookupTimeout(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{}) // for its CA file only
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	holdSilently(t, hang)
	deadPort := testenv.DeadPort(t)
	d := startDaemon(t, ub, 500, [][2]string{
		{"hang", hang.Addr().String()},
		{"dead", net.JoinHostPort("127.0.0.1", fmt.Sprint(deadPort))},
	})

	msg := rpcd(t, d.env, []byte(`{"name":"a.delve.test","upstream":"hang"}`), "call", "lookup").wantError(t, api.CodeTimeout)
	if !strings.Contains(msg, "a.delve.test") {
		t.Fatalf("message %q", msg)
	}
	t.Log(msg)
	t.Log(rpcd(t, d.env, []byte(`{"name":"a.delve.test","upstream":"dead"}`), "call", "lookup").wantError(t, api.CodeNoUpstream))
}

// TestDaemonDown: no daemon, a socket file nobody accepts on (left by a crash), and the socket
// taken from the configuration file when DELVE_SOCKET is not set.
func TestDaemonDown(t *testing.T) {
	dir, err := os.MkdirTemp("", "dvu")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	missing := filepath.Join(dir, "missing.sock")
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	conf := filepath.Join(t.TempDir(), "delve")
	if err := os.WriteFile(conf, []byte("config delve 'main'\n\toption socket '"+missing+"'\n\nconfig upstream 'u'\n\toption address '127.0.0.1'\n\toption tls_name 'x.test'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, socket string
		env          []string
	}{
		{"no socket", missing, env("DELVE_CONFIG=/nonexistent/delve", "DELVE_SOCKET="+missing)},
		{"stale socket", stale, env("DELVE_CONFIG=/nonexistent/delve", "DELVE_SOCKET="+stale)},
		{"socket from the config file", missing, env("DELVE_CONFIG=" + conf)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, method := range api.Methods() {
				m := method.Name
				stdin := `{}`
				if m == "lookup" {
					stdin = `{"name":"openwrt.org"}`
				}
				msg := rpcd(t, tc.env, []byte(stdin), "call", m).wantError(t, api.CodeDaemonDown)
				t.Log(msg)
				if !strings.Contains(msg, tc.socket) || !strings.Contains(msg, "/etc/init.d/delve start") {
					t.Fatalf("message %q should name %s and say how to start the daemon", msg, tc.socket)
				}
			}
		})
	}
}

// TestBridgeDeadline: a "daemon" that accepts and never answers. The bridge gives up at its own
// deadline (10 s with the default 3 s lookup timeout) with the timeout object, before rpcd's 30 s.
func TestBridgeDeadline(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "dvu")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "mute.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	holdSilently(t, l)
	r := rpcd(t, env("DELVE_CONFIG=/nonexistent/delve", "DELVE_SOCKET="+sock), []byte(`{"name":"a.delve.test"}`), "call", "lookup")
	msg := r.wantError(t, api.CodeTimeout)
	if !strings.Contains(msg, ubus.DefaultDeadline.String()) {
		t.Fatalf("message %q", msg)
	}
	t.Log(msg)
}

// holdSilently accepts every connection on l and holds it open without a word, until the test
// ends: a peer that connects and never answers.
func holdSilently(t *testing.T, l net.Listener) {
	var held []net.Conn
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-accepted
		for _, c := range held {
			c.Close()
		}
	})
}

// TestREADMESocketExamples runs the README's socket examples against a daemon with the upstream
// "test" (unbound's delve.test zone): each "> request" line on the socket gets the "< reply" line
// after it, and each `$ echo '...' | delve rpcd call METHOD` prints the line after it, apart from
// the round trip's rtt_ms. The cache is flushed before each, as the examples show first lookups.
func TestREADMESocketExamples(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	d := startDaemon(t, ub, 2000, [][2]string{{"test", ub.Addr()}})
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	same := func(what, got, want string) {
		t.Helper()
		var g, w any
		if err := json.Unmarshal([]byte(got), &g); err != nil {
			t.Fatalf("%s: %q: %v", what, got, err)
		}
		if err := json.Unmarshal([]byte(want), &w); err != nil {
			t.Fatalf("%s: the README's %q: %v", what, want, err)
		}
		for _, v := range []any{g, w} {
			if m, ok := v.(map[string]any); ok {
				delete(m, "rtt_ms")
				if r, ok := m["result"].(map[string]any); ok {
					delete(r, "rtt_ms")
				}
			}
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s:\n got %s\nwant %s (README)", what, got, want)
		}
	}
	flush := func() { rpcd(t, d.env, []byte(`{}`), "call", "flush") }
	wire, shell := 0, 0
	for i := 0; i+1 < len(lines); i++ {
		line, next := lines[i], lines[i+1]
		switch {
		case strings.HasPrefix(line, "> {") && strings.HasPrefix(next, "< {"):
			flush()
			c, err := net.Dial("unix", d.socket)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.WriteString(c, line[2:]+"\n"); err != nil {
				t.Fatal(err)
			}
			reply, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err != nil {
				t.Fatal(err)
			}
			same(line, strings.TrimSpace(reply), next[2:])
			wire++
		case strings.HasPrefix(line, "$ echo '") && strings.Contains(line, "' | delve rpcd call "):
			params, method, _ := strings.Cut(strings.TrimPrefix(line, "$ echo '"), "' | delve rpcd call ")
			flush()
			r := rpcd(t, d.env, []byte(params), "call", strings.TrimSpace(method))
			same(line, strings.TrimSpace(string(r.raw)), next)
			shell++
		}
	}
	if wire < 2 || shell < 2 {
		t.Fatalf("found %d socket and %d delve rpcd call examples in the README, want 2 of each", wire, shell)
	}
}
