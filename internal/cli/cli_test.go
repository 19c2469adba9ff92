package cli

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/daemon"
	"github.com/delvedns/delve/internal/json"
	"github.com/delvedns/delve/internal/jsonrpc"
	"github.com/delvedns/delve/internal/testenv"
)

func TestMain(m *testing.M) {
	// Tests never read the router's configuration, even on a machine that has one.
	DefaultConfig = filepath.Join(os.TempDir(), "delve-cli-test-no-such-config")
	os.Exit(m.Run())
}

func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code = Run(ctx, args, &o, &e)
	return o.String(), e.String(), code
}

// manyTypes is n distinct record types as arguments: TYPE1000 and up.
func manyTypes(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(" TYPE" + strconv.Itoa(1000+i))
	}
	return b.String()
}

func TestParse(t *testing.T) {
	cases := []struct {
		args    string
		name    string
		types   []uint16
		servers []string // address:port#name
		err     string
	}{
		{args: "openwrt.org", name: "openwrt.org"},
		{args: "openwrt.org aaaa mx", name: "openwrt.org", types: []uint16{dns.TypeAAAA, dns.TypeMX}},
		{args: "@1.1.1.1 x.org", name: "x.org", servers: []string{"1.1.1.1:853#"}},
		{args: "x.org @9.9.9.9:8853#dns.quad9.net", name: "x.org", servers: []string{"9.9.9.9:8853#dns.quad9.net"}},
		{args: "-s [2606:4700::1111]:853#cloudflare-dns.com x.org", name: "x.org", servers: []string{"2606:4700::1111:853#cloudflare-dns.com"}},
		{args: "--server=@2606:4700::1111 x.org", name: "x.org", servers: []string{"2606:4700::1111:853#"}},
		{args: "x.org TYPE65", name: "x.org", types: []uint16{65}},
		{args: "x.org FOO", err: `unknown record type "FOO"`},
		{args: "x.org TYPE70000", err: "out of range"},
		{args: "x.org AXFR", err: `record type "AXFR" asks for a zone transfer`},
		{args: "x.org A opt", err: `record type "opt" is the EDNS(0) pseudo-record`},
		{args: "x.org a A TYPE1 aaaa", name: "x.org", types: []uint16{dns.TypeA, dns.TypeAAAA}},
		{args: "x.org" + strings.Repeat(" A AAAA", 5000), name: "x.org", types: []uint16{dns.TypeA, dns.TypeAAAA}},
		{args: "x.org" + manyTypes(17), err: "more than 16 record types in one lookup"},
		{args: "x.org" + manyTypes(10000), err: "more than 16 record types in one lookup"},
		{args: "@dns.google x.org", err: "not an IP address"},
		{args: "@1.1.1.1:53 x.org", err: "port 53 is plain DNS"},
		{args: "@1.1.1.1:99999 x.org", err: `port "99999" is not a port`},
		{args: "--timeout nope x.org", err: "not a duration"},
		{args: "--timeout", err: "needs a value"},
		{args: "--pin abc x.org", err: "not a base64 SHA-256 digest"},
		{args: "--bogus x.org", err: "unknown flag --bogus"},
		{args: "", err: "no name to look up"},
	}
	for _, c := range cases {
		name := c.args
		if len(name) > 60 {
			name = name[:60]
		}
		t.Run(name, func(t *testing.T) {
			a, err := Parse(strings.Fields(c.args))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Name != c.name || len(a.Types) != len(c.types) {
				t.Fatalf("got %+v", a)
			}
			for i := range c.types {
				if a.Types[i] != c.types[i] {
					t.Fatalf("types %v", a.Types)
				}
			}
			for i, s := range a.Servers {
				if got := s.Address + ":" + strconv.Itoa(s.Port) + "#" + s.TLSName; got != c.servers[i] {
					t.Fatalf("server %q, want %q", got, c.servers[i])
				}
			}
		})
	}
}

func server(ub *testenv.Unbound) string {
	return "@127.0.0.1:" + strconv.Itoa(ub.Port) + "#" + ub.TLSName
}

// TestLookupsMatchKdig runs `delve NAME TYPE` against the real unbound and compares the output
// with kdig +short for the same question, and the exit status with the rcode.
func TestLookupsMatchKdig(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	cases := []struct {
		name, typ string
		code      int
	}{
		{"a.delve.test", "A", ExitOK},
		{"a.delve.test", "AAAA", ExitOK},
		{"delve.test", "MX", ExitOK},
		{"txt.delve.test", "TXT", ExitOK},
		{"www.delve.test", "CNAME", ExitOK},
		{"multi.delve.test", "A", ExitOK},
		{"missing.delve.test", "A", ExitNoData},
		{"a.delve.test", "MX", ExitNoData},
	}
	for _, c := range cases {
		t.Run(c.name+"/"+c.typ, func(t *testing.T) {
			want := testenv.KdigT(t, ub, c.name, c.typ)
			out, errOut, code := run(t, server(ub), "--ca", ub.CAFile, c.name, c.typ)
			if code != c.code {
				t.Fatalf("exit %d, want %d (stderr %q)", code, c.code, errOut)
			}
			var wantLines []string
			for _, r := range want.Answer {
				wantLines = append(wantLines, r.Data)
			}
			if got := strings.Fields(strings.ReplaceAll(out, "\n", " \n ")); strings.Join(got, " ") != strings.Join(strings.Fields(strings.Join(wantLines, " \n ")), " ") {
				t.Fatalf("delve printed %q, kdig answered %q", out, wantLines)
			}
		})
	}
}

func TestDefaultTypesAndReverse(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	out, _, code := run(t, server(ub), "--ca", ub.CAFile, "a.delve.test")
	if code != ExitOK || out != "192.0.2.1\n2001:db8::1\n" {
		t.Fatalf("exit %d, output %q: want the A and AAAA records", code, out)
	}
	out, _, code = run(t, server(ub), "--ca", ub.CAFile, "192.0.2.1")
	if code != ExitOK || out != "a.delve.test.\n" {
		t.Fatalf("exit %d, output %q: want the PTR record", code, out)
	}
}

func TestJSON(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	out, _, code := run(t, server(ub), "--ca", ub.CAFile, "--json", "a.delve.test", "A")
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	var l api.Lookup
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatal(err)
	}
	if l.Name != "a.delve.test." || l.Rcode != "NOERROR" || len(l.Addresses) != 1 || l.Addresses[0] != "192.0.2.1" ||
		len(l.Answers) != 1 || l.Answers[0].TTL != 300 || l.Upstream == "" {
		t.Fatalf("%+v", l)
	}
}

// TestJSONIsTheLookupMethods: `delve --json` prints the object the daemon's lookup method returns
// for the same name, configuration and type, past MaxAnswers too (big.delve.test has 300 A
// records: capped, answers_total), apart from the round trip's rtt_ms.
func TestJSONIsTheLookupMethods(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	dir, err := os.MkdirTemp("", "dlv") // a unix socket path has at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	conf, socket := filepath.Join(dir, "delve"), filepath.Join(dir, "delve.sock")
	body := "config delve 'main'\n\toption socket '" + socket + "'\n\toption ca_file '" + ub.CAFile + "'\n\n" +
		"config upstream 'test'\n\toption address '127.0.0.1'\n\toption port '" + strconv.Itoa(ub.Port) + "'\n\toption tls_name '" + ub.TLSName + "'\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := daemon.New(daemon.Options{Config: conf, Stdout: io.Discard, Stderr: io.Discard, Signals: make(chan os.Signal)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	for _, tc := range []struct{ name, typ string }{{"big.delve.test", "A"}, {"a.delve.test", "AAAA"}, {"missing.delve.test", "A"}} {
		var fromDaemon map[string]any
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
			c, err := jsonrpc.Dial(cctx, socket)
			if err == nil {
				err = c.Call(cctx, "lookup", map[string]any{"name": tc.name, "type": tc.typ}, &fromDaemon)
				c.Close()
			}
			ccancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the daemon's lookup of %s: %v", tc.name, err)
			}
		}
		out, errOut, code := run(t, "--config", conf, "--json", tc.name, tc.typ)
		if code != ExitOK && code != ExitNoData {
			t.Fatalf("%s: exit %d, %s", tc.name, code, errOut)
		}
		var cli map[string]any
		if err := json.Unmarshal([]byte(out), &cli); err != nil {
			t.Fatalf("%s: %v\n%s", tc.name, err, out)
		}
		dmn := fromDaemon
		// The daemon asked first, so its answer came over the network; the CLI, with a cache of
		// its own, too: both say cached false. Only the round trip's time differs.
		delete(cli, "rtt_ms")
		delete(dmn, "rtt_ms")
		if !reflect.DeepEqual(cli, dmn) {
			t.Errorf("%s %s: delve --json\n%v\nthe lookup method\n%v", tc.name, tc.typ, cli, dmn)
		}
		if tc.name == "big.delve.test" && (cli["capped"] != true || cli["answers_total"] != float64(300)) {
			t.Errorf("big.delve.test: capped %v, answers_total %v; want true and 300", cli["capped"], cli["answers_total"])
		}
	}
}

func TestErrors(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	other, err := testenv.NewCA("other")
	if err != nil {
		t.Fatal(err)
	}
	otherCA := filepath.Join(t.TempDir(), "other.pem")
	if err := other.WriteFile(otherCA); err != nil {
		t.Fatal(err)
	}
	deadPort := testenv.DeadPort(t)
	port := strconv.Itoa(ub.Port)
	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"empty name", []string{server(ub), "--ca", ub.CAFile, ""}, ExitUsage, "the name is empty"},
		{"long label", []string{server(ub), "--ca", ub.CAFile, strings.Repeat("a", 64) + ".test"}, ExitUsage, "more than the 63 allowed"},
		{"long name", []string{server(ub), "--ca", ub.CAFile, strings.Repeat("abcdefghi.", 26)}, ExitUsage, "more than the 253 allowed"},
		{"NUL in name", []string{server(ub), "--ca", ub.CAFile, "a\x00b.test"}, ExitUsage, "control character"},
		{"unknown type", []string{server(ub), "--ca", ub.CAFile, "a.delve.test", "BOGUS"}, ExitUsage, `unknown record type "BOGUS"`},
		{"bad address", []string{"@not-an-ip", "a.delve.test"}, ExitUsage, "not an IP address"},
		{"bad port", []string{"@127.0.0.1:0", "a.delve.test"}, ExitUsage, "is not a port"},
		{"unreadable CA", []string{server(ub), "--ca", "/nonexistent/ca.pem", "a.delve.test"}, ExitUsage, "cannot read the CA file"},
		{"missing config", []string{"--config", "/nonexistent/delve", "a.delve.test"}, ExitUsage, "/nonexistent/delve"},
		{"name mismatch", []string{"@127.0.0.1:" + port + "#wrong.delve.test", "--ca", ub.CAFile, "a.delve.test"}, ExitUpstream, "certificate name mismatch"},
		{"unknown authority", []string{server(ub), "--ca", otherCA, "a.delve.test"}, ExitUpstream, "certificate signed by an unknown authority: \"delve test CA for unbound\" is not in the CA file " + otherCA + "; pass --ca FILE or set ca_file to the CA that signed it"},
		{"pin mismatch", []string{server(ub), "--ca", ub.CAFile, "--pin", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "a.delve.test"}, ExitUpstream, "SPKI pin mismatch: no configured pin matches a key of the certificate chain"},
		{"connection refused", []string{"@127.0.0.1:" + strconv.Itoa(deadPort), "--ca", ub.CAFile, "a.delve.test"}, ExitUpstream, "connection refused"},
		{"refused", []string{server(ub), "--ca", ub.CAFile, "example.com"}, ExitUpstream, "answered REFUSED"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, code := run(t, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d (stderr %q)", code, c.code, errOut)
			}
			if !strings.Contains(errOut, c.msg) {
				t.Fatalf("stderr %q does not say %q", errOut, c.msg)
			}
			if strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Fatalf("stderr is not one line: %q", errOut)
			}
			if c.code != ExitOK && out != "" {
				t.Fatalf("stdout %q on failure", out)
			}
		})
	}
}

func TestPinOnlyAndIPName(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	// Pin only: no name, no CA, just the server key.
	out, errOut, code := run(t, "@127.0.0.1:"+strconv.Itoa(ub.Port), "--pin", ub.Leaf.Pin, "a.delve.test", "A")
	if code != ExitOK || out != "192.0.2.1\n" {
		t.Fatalf("pin only: exit %d %q %q", code, out, errOut)
	}
	// No name: the address itself must be in the certificate (IP SAN 127.0.0.1).
	out, errOut, code = run(t, "@127.0.0.1:"+strconv.Itoa(ub.Port), "--ca", ub.CAFile, "a.delve.test", "A")
	if code != ExitOK || out != "192.0.2.1\n" {
		t.Fatalf("IP name: exit %d %q %q", code, out, errOut)
	}
}

func TestTimeout(t *testing.T) {
	// A listener that accepts and never speaks TLS.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	start := time.Now()
	_, errOut, code := run(t, "@"+ln.Addr().String()+"#dot.delve.test", "--timeout", "300ms", "a.delve.test")
	if code != ExitUpstream || !strings.Contains(errOut, "no answer within 300ms") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v with a 300ms timeout", d)
	}
}

func TestConfigFile(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	dir := t.TempDir()
	conf := filepath.Join(dir, "delve")
	body := "config delve 'main'\n\tlist type 'AAAA'\n\toption ca_file '" + ub.CAFile + "'\n\n" +
		"config upstream 'test'\n\toption address '127.0.0.1'\n\toption port '" + strconv.Itoa(ub.Port) + "'\n\toption tls_name '" + ub.TLSName + "'\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, "--config", conf, "a.delve.test")
	if code != ExitOK || out != "2001:db8::1\n" {
		t.Fatalf("exit %d %q %q: want the configured type AAAA", code, out, errOut)
	}
	if err := os.WriteFile(conf, []byte(body+"\toption port '99999'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = run(t, "--config", conf, "a.delve.test")
	if code != ExitUsage || !strings.Contains(errOut, `delve.test.port: "99999" is not a port`) {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}
