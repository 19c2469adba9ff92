package luciapp

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/testenv"
	"github.com/delvedns/delve/uci"
)

// app is luci-app-delve, seen from this package.
const app = "../../luci-app-delve"

const (
	aclFile  = "root/usr/share/rpcd/acl.d/luci-app-delve.json"
	menuFile = "root/usr/share/luci/menu.d/luci-app-delve.json"
	views    = "htdocs/luci-static/resources/view/"
	settings = "htdocs/luci-static/resources/view/delve/settings.js"
	checks   = "htdocs/luci-static/resources/delve/validate.js"
	presets  = "htdocs/luci-static/resources/delve/presets.json"
	group    = "luci-app-delve"
)

func scripts(t *testing.T) map[string][]Token {
	t.Helper()
	s, err := Scripts(app)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) < 5 {
		t.Fatalf("found %d scripts: %v", len(s), s)
	}
	return s
}

// TestParse: every script is JavaScript node accepts (LuCI loads each as a function body, which
// node's CommonJS wrapper is too: both allow the module's top-level return), every JSON file
// is JSON, and every 'require' names a LuCI module or one of the application's.
func TestParse(t *testing.T) {
	node := testenv.RequireTool(t, "node", "nodejs")
	luciModules := []string{"baseclass", "dom", "form", "fs", "network", "poll", "request", "rpc", "uci", "ui", "view", "validation"}
	for file, toks := range scripts(t) {
		if out, err := exec.Command(node, "--check", filepath.Join(app, file)).CombinedOutput(); err != nil {
			t.Errorf("node --check %s: %v\n%s", file, err, out)
		}
		if len(toks) < 3 || toks[0].Value != "use strict" {
			t.Errorf("%s does not start with 'use strict'", file)
		}
		for _, tok := range toks {
			if tok.Kind != String || !strings.HasPrefix(tok.Value, "require ") {
				continue
			}
			mod := strings.Fields(tok.Value)[1]
			if slices.Contains(luciModules, mod) {
				continue
			}
			// LuCI resolves a.b to luci-static/resources/a/b.js.
			if _, err := os.Stat(filepath.Join(app, "htdocs/luci-static/resources", strings.ReplaceAll(mod, ".", "/")+".js")); err != nil {
				t.Errorf("%s:%d requires %s, which is neither LuCI's nor in the application", file, tok.Line, mod)
			}
		}
	}
	err := filepath.WalkDir(app, func(path string, d os.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(path, ".json") {
			return err
		}
		b, err := os.ReadFile(path)
		if err == nil && !json.Valid(b) {
			t.Errorf("%s is not valid JSON", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

type menuNode struct {
	Title  string `json:"title"`
	Order  int    `json:"order"`
	Action struct {
		Type string `json:"type"`
		Path string `json:"path"`
	} `json:"action"`
	Depends *struct {
		ACL []string `json:"acl"`
	} `json:"depends"`
}

// TestMenu: the menu's view paths are files of the application, its alias points at one of its
// own entries, it depends on the application's access group, and no view is left out.
func TestMenu(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(app, menuFile))
	if err != nil {
		t.Fatal(err)
	}
	var menu map[string]menuNode
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&menu); err != nil {
		t.Fatalf("%s: %v", menuFile, err)
	}
	acl := readACL(t)
	reached := map[string]bool{}
	for path, n := range menu {
		if !strings.HasPrefix(path, "admin/services/delve") || n.Title == "" {
			t.Errorf("menu %s: want an entry under admin/services/delve with a title", path)
		}
		switch n.Action.Type {
		case "view":
			file := views + n.Action.Path + ".js"
			if _, err := os.Stat(filepath.Join(app, file)); err != nil {
				t.Errorf("menu %s: view %s: %v", path, n.Action.Path, err)
			}
			reached[file] = true
		case "alias":
			if _, ok := menu[n.Action.Path]; !ok {
				t.Errorf("menu %s: alias to %s, which is not in the menu", path, n.Action.Path)
			}
		default:
			t.Errorf("menu %s: action %q", path, n.Action.Type)
		}
		if n.Depends != nil {
			for _, g := range n.Depends.ACL {
				if _, ok := acl[g]; !ok {
					t.Errorf("menu %s depends on access group %s, which the application's ACL does not define", path, g)
				}
			}
		}
	}
	top := menu["admin/services/delve"]
	if top.Depends == nil || !slices.Equal(top.Depends.ACL, []string{group}) {
		t.Errorf("admin/services/delve depends on %+v, want the access group %s (its children inherit it)", top.Depends, group)
	}
	for file := range scripts(t) {
		if strings.HasPrefix(file, views+"delve/") && !reached[file] {
			t.Errorf("%s is in no menu entry", file)
		}
	}
	inc, _ := filepath.Glob(filepath.Join(app, views, "status/include/*.js"))
	if len(inc) != 1 || !regexp.MustCompile(`/[0-9]{2}_delve\.js$`).MatchString(inc[0]) {
		t.Errorf("status overview includes %v, want one NN_delve.js", inc)
	}
}

type aclScopes struct {
	UBus map[string][]string `json:"ubus"`
	UCI  map[string][]string `json:"uci"`
}

type aclGroup struct {
	Description string    `json:"description"`
	Read        aclScopes `json:"read"`
	Write       aclScopes `json:"write"`
}

func readACL(t *testing.T) map[string]aclGroup {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(app, aclFile))
	if err != nil {
		t.Fatal(err)
	}
	var acl map[string]aclGroup
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&acl); err != nil {
		t.Fatalf("%s: %v", aclFile, err)
	}
	return acl
}

// TestRPCAndACL: every rpc.declare of the views calls a method of the daemon's table with
// parameters it takes, the access group grants each on the side its table entry says (status and
// lookup read, the rest write), and grants nothing the views do not call. UCI delve is only on
// the write side (it holds websocket_token), in table notation so that it grants read and write
// and nothing else (see files/files_test.go TestACL), and only because the settings view has a
// form.Map of it.
func TestRPCAndACL(t *testing.T) {
	acl := readACL(t)
	if len(acl) != 1 {
		t.Fatalf("the ACL defines %d groups, want only %s", len(acl), group)
	}
	g, ok := acl[group]
	if !ok || strings.TrimSpace(g.Description) == "" {
		t.Fatalf("no described group %s", group)
	}
	called := map[string]bool{}
	maps := map[string]bool{}
	for file, toks := range scripts(t) {
		decls, err := Declarations(file, toks)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range decls {
			m, ok := api.FindMethod(d.Method)
			if d.Object != "delve" || !ok {
				t.Errorf("%s:%d declares %s.%s, which is not a method of the daemon's table", d.File, d.Line, d.Object, d.Method)
				continue
			}
			for _, p := range d.Params {
				if !slices.ContainsFunc(m.Params, func(q api.Param) bool { return q.Name == p }) {
					t.Errorf("%s:%d passes %s to %s, which takes no such parameter", d.File, d.Line, p, d.Method)
				}
			}
			side := g.Read
			if m.Write {
				side = g.Write
			}
			if !slices.Contains(side.UBus["delve"], d.Method) {
				t.Errorf("%s:%d calls delve.%s, which the group does not grant on its %s side", d.File, d.Line, d.Method, map[bool]string{false: "read", true: "write"}[m.Write])
			}
			called[d.Method] = true
		}
		opts, err := Options(file, toks)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range opts {
			maps[o.Config] = true
		}
	}
	for _, side := range []aclScopes{g.Read, g.Write} {
		for obj, methods := range side.UBus {
			for _, m := range methods {
				if obj != "delve" || !called[m] {
					t.Errorf("the group grants %s.%s, which no view calls", obj, m)
				}
			}
		}
	}
	if len(called) != len(api.Methods()) {
		t.Errorf("the views call %v; want every method of the table (a button for each write method)", called)
	}
	if len(g.Read.UCI) != 0 {
		t.Errorf("the read side grants UCI %v: /etc/config/delve holds websocket_token", g.Read.UCI)
	}
	if !maps["delve"] || len(maps) != 1 || len(g.Write.UCI) != 1 || !slices.Equal(g.Write.UCI["delve"], []string{"read", "write"}) {
		t.Errorf("the forms write UCI %v, the write side grants %v; want delve, read and write", maps, g.Write.UCI)
	}
}

// readmeOptions returns the options the README's tables document, by section type.
func readmeOptions(t *testing.T) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	typ := ""
	row := regexp.MustCompile("^\\| `([a-z_]+)`")
	for _, line := range strings.Split(string(raw), "\n") {
		switch {
		case strings.HasPrefix(line, "### `config delve"):
			typ = "delve"
		case strings.HasPrefix(line, "### `config upstream"):
			typ = "upstream"
		case strings.HasPrefix(line, "#"):
			typ = ""
		case typ != "":
			if m := row.FindStringSubmatch(line); m != nil {
				out[typ] = append(out[typ], m[1])
			}
		}
	}
	if len(out["delve"]) < 10 || len(out["upstream"]) < 5 {
		t.Fatalf("README options %v", out)
	}
	return out
}

// sample is a value the daemon takes for each option the form has; a new form option needs one.
var sample = map[string][]string{
	"enabled": {"1"}, "type": {"A", "AAAA", "HTTPS"}, "timeout": {"2500"}, "strategy": {"fastest"},
	"cache_size": {"2048"}, "cache_memory": {"8M"}, "threads": {"0"}, "socket": {"/var/run/delve/delve.sock"},
	"websocket": {"127.0.0.1:8053"}, "websocket_token": {"s3cret"}, "listen": {"127.0.0.1:5453", "[::1]:5453"},
	"ca_file": {"/etc/ssl/certs/ca-certificates.crt"}, "log_level": {"debug"}, "dnsmasq": {"0"},
	"trigger": {"wan", "wan6"}, "serve_stale": {"1"}, "prefetch": {"0"}, "tolerate_unset_clock": {"0"},
	"ubus": {"native"}, "ubus_socket": {"/var/run/ubus/ubus.sock"},
	"address": {"9.9.9.9"}, "port": {"853"}, "tls_name": {"dns.quad9.net"},
	"pin": {base64.StdEncoding.EncodeToString(make([]byte, 32))},
}

// TestFormOptions: the settings form has every option the README documents, and only those;
// a file with each option it writes (a sample value of the widget's kind) loads through uci/
// without an error or a warning. The preset button's uci.set calls count too.
func TestFormOptions(t *testing.T) {
	toks := scripts(t)[settings]
	opts, err := Options(settings, toks)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string][]string{}
	var b strings.Builder
	b.WriteString("config delve 'main'\n")
	section := map[string]*strings.Builder{"delve": &b, "upstream": {}}
	section["upstream"].WriteString("\nconfig upstream 'u'\n")
	for _, o := range opts {
		if o.Config != "delve" || section[o.Type] == nil {
			t.Errorf("%s:%d writes %s.%s of a section type %q delve does not have", o.File, o.Line, o.Config, o.Name, o.Type)
			continue
		}
		if o.Type == "delve" && o.Section != "main" {
			t.Errorf("%s:%d: the delve section is %q, want main", o.File, o.Line, o.Section)
		}
		if slices.Contains(have[o.Type], o.Name) {
			continue
		}
		have[o.Type] = append(have[o.Type], o.Name)
		vals, ok := sample[o.Name]
		if !ok {
			t.Errorf("%s:%d: no sample value for option %s", o.File, o.Line, o.Name)
			continue
		}
		kind := "option"
		if o.Widget == "form.DynamicList" {
			kind = "list"
		} else if len(vals) > 1 {
			t.Errorf("%s:%d: %s is a %s, not a list", o.File, o.Line, o.Name, o.Widget)
		}
		for _, v := range vals {
			fmt.Fprintf(section[o.Type], "\t%s %s '%s'\n", kind, o.Name, v)
		}
	}
	doc := readmeOptions(t)
	for _, typ := range []string{"delve", "upstream"} {
		a, b := slices.Clone(have[typ]), slices.Clone(doc[typ])
		sort.Strings(a)
		sort.Strings(b)
		if !slices.Equal(a, b) {
			t.Errorf("section %s: the form writes %v, the README documents %v", typ, a, b)
		}
	}
	text := b.String() + section["upstream"].String()
	path := filepath.Join(t.TempDir(), "delve")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := uci.Load(path)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if len(cfg.Warnings) > 0 {
		t.Fatalf("warnings %v\n%s", cfg.Warnings, text)
	}
	t.Logf("%d options of main, %d of upstream load without a warning", len(have["delve"]), len(have["upstream"]))
}

// validator runs delve.validate's checks in node: each case is a function name and its argument;
// the answer is the check's result as a string, or null.
func validator(t *testing.T, cases [][2]any) []*string {
	t.Helper()
	// LuCI loads a module as a function body; String.prototype.format is cbi.js's (only %s and
	// %d matter here). _() returns its argument as LuCI does without a translation.
	const harness = `
const fs = require('fs');
String.prototype.format = function() { let a = arguments, i = 0; return this.replace(/%[sdq]/g, () => String(a[i++])); };
const v = new Function('baseclass', '_', fs.readFileSync(process.argv[1], 'utf8'))({ extend: o => o }, s => s);
const out = JSON.parse(fs.readFileSync(0, 'utf8')).map(c => { const r = v[c[0]](c[1]); return r == null || r === false ? null : String(r); });
process.stdout.write(JSON.stringify(out));
`
	var res []*string
	runNode(t, harness, filepath.Join(app, checks), cases, &res)
	if len(res) != len(cases) {
		t.Fatalf("node answered %d results for %d cases", len(res), len(cases))
	}
	return res
}

// runNode runs script in node with arg, the JSON of in on its stdin, and decodes what it prints
// into out.
func runNode(t *testing.T, script, arg string, in, out any) {
	t.Helper()
	node := testenv.RequireTool(t, "node", "nodejs")
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "-e", script, arg)
	cmd.Stdin = bytes.NewReader(b)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	printed, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	if err := json.Unmarshal(printed, out); err != nil {
		t.Fatalf("node printed %s: %v", printed, err)
	}
}

// loads says whether the daemon takes a file with main's option (or, for an upstream option,
// upstream u's) set to vals, and the error otherwise.
func loads(t *testing.T, typ, opt string, vals []string) error {
	t.Helper()
	var b strings.Builder
	b.WriteString("config delve 'main'\n")
	line := func(name string, vs ...string) {
		kind := "option"
		if len(vs) > 1 || name == opt && (opt == "type" || opt == "listen" || opt == "trigger" || opt == "pin") {
			kind = "list"
		}
		for _, v := range vs {
			fmt.Fprintf(&b, "\t%s %s '%s'\n", kind, name, v)
		}
	}
	if typ == "delve" {
		line(opt, vals...)
	}
	b.WriteString("config upstream 'u'\n")
	up := map[string][]string{"address": {"127.0.0.1"}, "tls_name": {"x.test"}}
	if typ == "upstream" {
		up[opt] = vals
	}
	for _, k := range []string{"address", "port", "tls_name", "pin"} {
		if v, ok := up[k]; ok {
			line(k, v...)
		}
	}
	path := filepath.Join(t.TempDir(), "delve")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := uci.Load(path)
	if err == nil && len(cfg.Warnings) > 0 {
		t.Fatalf("warnings %v", cfg.Warnings)
	}
	return err
}

// TestChecksAreTheDaemons: the settings form's checks (delve/validate.js, run in node) accept a
// value exactly when the daemon's loader does, for the edge cases of every checked option and
// every record type name miekg/dns knows.
func TestChecksAreTheDaemons(t *testing.T) {
	pin := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32))
	type row struct {
		fn, typ, opt string
		val          string
	}
	var rows []row
	add := func(fn, typ, opt string, vals ...string) {
		for _, v := range vals {
			rows = append(rows, row{fn, typ, opt, v})
		}
	}
	add("timeout", "delve", "timeout", "100", "60000", "99", "60001", "3000", "03000", "+100", "1e3", "100.5", "1000000000", "-5", "0x10")
	add("cacheSize", "delve", "cache_size", "0", "1000000", "1000001", "-1", "1k", "007")
	add("cacheMemory", "delve", "cache_memory", "64", "63", "64K", "64k", "4M", "4m", "4MiB", "4mb", "4KB", "1G", "1g", "1GiB", "2G",
		"1048576", "1048577", "0", "0K", "0M", "4T", "4 M", "M", "2097152M", "2047G", "1024M", "1025M", "65536", "4.5M", "4MB ")
	add("threads", "delve", "threads", "0", "1", "2", "64", "65", "-1", "01", "064", "000000001", "0000000001", "1.5", "2 ", " 2", "all", "4x", "+1", "1e1")
	add("socket", "delve", "socket", "/var/run/delve/delve.sock", "relative.sock", "./x", "/"+strings.Repeat("a", 106), "/"+strings.Repeat("a", 107),
		"/"+strings.Repeat("é", 53), "/"+strings.Repeat("é", 54))
	add("socket", "delve", "ubus_socket", "/var/run/ubus/ubus.sock", "ubus.sock", "/"+strings.Repeat("u", 107))
	add("absPath", "delve", "ca_file", "/etc/ssl/ca.pem", "ca.pem", "~/ca.pem")
	add("trigger", "delve", "trigger", "wan", "wan6 lan", "wan-1", "wan.2", "WAN_2", "é")
	add("address", "upstream", "address", "1.1.1.1", "2606:4700::1111", "::ffff:1.2.3.4", "fe80::1%eth0", "fe80::1%", "1.1.1", "01.1.1.1",
		"256.1.1.1", "1.1.1.1.1", "dns.google", "::", "::1", "1::2::3", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::",
		"::1:2:3:4:5:6:7", "::1:2:3:4:5:6:7:8", "::1.2.3.4", "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:7:1.2.3.4", "1::1.2.3.4",
		"12345::1", "[::1]", "1:", ":1", "1:::2", "0:0:0:0:0:0:0:0", "FE80::A", "1.2.3.04", "0.0.0.0", "1.2.3.4%eth0", "::1.2.3")
	add("port", "upstream", "port", "853", "53", "053", "0", "1", "65535", "65536", "0853", "abc", "85 3")
	add("tlsName", "upstream", "tls_name", "cloudflare-dns.com", "dns.google.", "1.1.1.1", "::1", "-bad.com", "bad-.com", "a..b",
		"xn--bcher-kva.example", "a_b.com", "123", "example.123", "example.99999999999999999999", "example.9223372036854775807",
		"example.9223372036854775808", "example.0009223372036854775807", strings.Repeat("a", 63)+".com", strings.Repeat("a", 64)+".com",
		strings.Repeat("a.", 126)+"a", strings.Repeat("a.", 126)+"ab", "DNS.Quad9.NET", ".", "a.b-c.d")
	for _, p := range []string{pin, strings.TrimRight(pin, "="), "sha256/" + pin, "sha256/sha256/" + pin,
		base64.StdEncoding.EncodeToString(make([]byte, 31)), base64.StdEncoding.EncodeToString(make([]byte, 33)), "not base64!", pin + "=",
		base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)), "SHA256/" + pin} {
		add("pins", "upstream", "pin", p)
	}
	add("listen", "delve", "listen", "127.0.0.1:5453", "[::1]:5453", "none", "127.0.0.1:5453 [::1]:5453", "0.0.0.0:5453", "[::]:5453",
		"localhost:5453", "127.0.0.1", "127.0.0.1:0", "[127.0.0.1]:5453", "::1:5453", "[fe80::1%eth0]:5453", "[::ffff:0.0.0.0]:53",
		"127.0.0.1:65536", "none 127.0.0.1:1", "127.0.0.1:5453]", "[::1]5453", "[[::1]]:53")
	for name := range dns.StringToType {
		add("typeList", "delve", "type", name, strings.ToLower(name))
	}
	add("typeList", "delve", "type", "TYPE65", "type65", "TYPE0", "TYPE1", "TYPE65534", "TYPE65535", "TYPE65536", "TYPE41", "TYPE128",
		"TYPE254", "TYPE255", "TYPE99999999999", "TYPE00065", "TYPE", "FOO", "TYPE-1", "TYPE+1", "A AAAA",
		"A AAAA MX TXT NS SOA PTR SRV CAA HTTPS SVCB DS DNSKEY TLSA ANY CNAME", "A AAAA MX TXT NS SOA PTR SRV CAA HTTPS SVCB DS DNSKEY TLSA ANY CNAME NAPTR",
		"a A TYPE1")

	cases := make([][2]any, len(rows))
	for i, r := range rows {
		if r.fn == "listen" || r.fn == "typeList" || r.fn == "pins" {
			cases[i] = [2]any{r.fn, []string{r.val}}
		} else {
			cases[i] = [2]any{r.fn, r.val}
		}
	}
	got := validator(t, cases)
	for i, r := range rows {
		err := loads(t, r.typ, r.opt, []string{r.val})
		daemonTakes := err == nil
		if err == nil && r.opt == "listen" {
			// The listener refuses wildcards when it binds (dnsserver), which the form checks too.
			for _, a := range strings.Fields(r.val) {
				if ap, perr := netip.ParseAddrPort(a); perr == nil && ap.Addr().IsUnspecified() {
					daemonTakes = false
				}
			}
		}
		if err != nil && !strings.Contains(err.Error(), r.opt) && !strings.Contains(err.Error(), "neither tls_name nor pin") {
			t.Errorf("%s %q: the loader's error does not name the option: %v", r.opt, r.val, err)
		}
		formTakes := got[i] == nil
		if daemonTakes != formTakes {
			why := "accepts"
			if got[i] != nil {
				why = "refuses it: " + *got[i]
			}
			t.Errorf("%s %q: the daemon's loader says %v, the form %s", r.opt, r.val, err, why)
		}
	}
	t.Logf("%d values, each checked by the form and the loader", len(rows))

	// WebSocket: an address the loader takes without a token is one the form calls loopback.
	var ws [][2]any
	wsVals := []string{"127.0.0.1:8053", "127.1.2.3:8053", "[::1]:8053", "[::ffff:127.0.0.1]:8053", "192.0.2.1:8053", "[::2]:8053",
		"0.0.0.0:8053", "localhost:8053", "127.0.0.1", "[fe80::1%lo]:80"}
	for _, v := range wsVals {
		ws = append(ws, [2]any{"hostPort", v}, [2]any{"isLoopbackHostPort", v})
	}
	got = validator(t, ws)
	for i, v := range wsVals {
		err := loads(t, "delve", "websocket", []string{v})
		formOK, formLoop := got[2*i] == nil, got[2*i+1] != nil
		switch {
		case err == nil && !(formOK && formLoop):
			t.Errorf("websocket %q: the loader takes it without a token; the form: valid %v, loopback %v", v, formOK, formLoop)
		case err != nil && strings.Contains(err.Error(), "websocket_token") && !(formOK && !formLoop):
			t.Errorf("websocket %q: the loader wants a token; the form: valid %v, loopback %v", v, formOK, formLoop)
		case err != nil && !strings.Contains(err.Error(), "websocket_token") && formOK:
			t.Errorf("websocket %q: the loader refuses it (%v); the form takes it", v, err)
		}
	}
}

// TestRecordTypeList: the names delve/validate.js knows are exactly those api.ParseType takes.
func TestRecordTypeList(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(app, checks))
	if err != nil {
		t.Fatal(err)
	}
	toks, err := Tokenize(string(src))
	if err != nil {
		t.Fatal(err)
	}
	var js []string
	for i := range toks {
		if match(toks, i, "var", "TYPES", "=", "[") {
			for j := i + 4; toks[j].Text != "]"; j++ {
				if toks[j].Kind == String {
					js = append(js, toks[j].Value)
				}
			}
		}
	}
	var goNames []string
	for name := range dns.StringToType {
		if _, err := api.ParseType(name); err == nil {
			goNames = append(goNames, name)
		}
	}
	sort.Strings(goNames)
	sorted := slices.Clone(js)
	sort.Strings(sorted)
	if !slices.Equal(sorted, goNames) {
		t.Fatalf("validate.js TYPES %v\napi.ParseType takes %v", sorted, goNames)
	}
}

type preset struct {
	ID      string   `json:"id"`
	Title   string   `json:"title"`
	TLSName string   `json:"tls_name"`
	IPv4    []string `json:"ipv4"`
	IPv6    []string `json:"ipv6"`
}

// TestPresets: every preset's addresses load through uci/ as upstream sections named as the
// settings view names them (id, id2, ...; id6, id62, ... for IPv6), each with the preset's TLS
// name, and the form's checks take them too.
func TestPresets(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(app, presets))
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Presets []preset `json:"presets"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatal(err)
	}
	if len(p.Presets) < 6 {
		t.Fatalf("%d presets", len(p.Presets))
	}
	var b strings.Builder
	b.WriteString("config delve 'main'\n")
	var want []uci.Upstream
	var cases [][2]any
	ids := map[string]bool{}
	for _, pr := range p.Presets {
		if ids[pr.ID] || pr.Title == "" || len(pr.IPv4) == 0 {
			t.Errorf("preset %+v: want a unique id, a title and IPv4 addresses", pr)
		}
		ids[pr.ID] = true
		cases = append(cases, [2]any{"sectionName", pr.ID}, [2]any{"tlsName", pr.TLSName})
		for fam, addrs := range map[string][]string{"": pr.IPv4, "6": pr.IPv6} {
			for i, a := range addrs {
				name := pr.ID + fam
				if i > 0 {
					name += fmt.Sprint(i + 1)
				}
				ip, err := netip.ParseAddr(a)
				if err != nil || ip.Is4() != (fam == "") {
					t.Errorf("preset %s: %q is not an IPv%s address", pr.ID, a, map[string]string{"": "4", "6": "6"}[fam])
				}
				fmt.Fprintf(&b, "\nconfig upstream '%s'\n\toption address '%s'\n\toption port '853'\n\toption tls_name '%s'\n\toption enabled '1'\n", name, a, pr.TLSName)
				want = append(want, uci.Upstream{Name: name, Address: a, Port: 853, TLSName: pr.TLSName, Enabled: true})
				cases = append(cases, [2]any{"address", a})
			}
		}
	}
	path := filepath.Join(t.TempDir(), "delve")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := uci.Load(path)
	if err != nil || len(cfg.Warnings) > 0 {
		t.Fatalf("%v %v", err, cfg)
	}
	for _, w := range want {
		if !slices.ContainsFunc(cfg.Upstreams, func(u uci.Upstream) bool {
			return u.Name == w.Name && u.Address == w.Address && u.Port == w.Port && u.TLSName == w.TLSName && u.Enabled
		}) {
			t.Errorf("upstream %+v did not load as such", w)
		}
	}
	for i, r := range validator(t, cases) {
		if r != nil {
			t.Errorf("the form refuses preset value %v: %s", cases[i], *r)
		}
	}
	t.Logf("%d presets, %d upstreams", len(p.Presets), len(want))
}

// TestPotIsCurrent: po/templates/delve.pot is what scripts/lucipot makes of the views now, and
// every _() of the views is of a string literal, so that the template has them all.
func TestPotIsCurrent(t *testing.T) {
	calls, err := Calls(app)
	if err != nil {
		t.Fatal(err)
	}
	var src int
	for _, toks := range scripts(t) {
		for i := range toks {
			if match(toks, i, "_", "(") && (i == 0 || toks[i-1].Text != ".") {
				src++
			}
		}
	}
	if len(calls) != src || len(calls) < 100 {
		t.Fatalf("%d _() calls found, %d in the tokens", len(calls), src)
	}
	have, err := os.ReadFile(filepath.Join(app, PotPath))
	if err != nil {
		t.Fatal(err)
	}
	want, err := Generate(app)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, want) {
		t.Fatalf("%s is not current: run go run ./scripts/lucipot", PotPath)
	}
	for _, c := range calls {
		if !bytes.Contains(have, []byte("msgid "+poQuote(c.Msg)+"\n")) {
			t.Errorf("%s:%d: %q is not in the template", c.File, c.Line, c.Msg)
		}
	}
}

// TestTokenize: the tokenizer keeps quotes inside comments, regular expressions and template
// literals out of strings, and tells division from a regular expression.
func TestTokenize(t *testing.T) {
	src := "var a = /'[\"]/g, b = x / 2 / y; // it's\n/* don't */ f(`it's ${g('x')}`, 'a\\'b', \"c\\\"d\")\nreturn /x/.test(s) ? _('ok') : 1;"
	toks, err := Tokenize(src)
	if err != nil {
		t.Fatal(err)
	}
	var strs []string
	kinds := map[Kind]int{}
	for _, tok := range toks {
		kinds[tok.Kind]++
		if tok.Kind == String {
			strs = append(strs, tok.Value)
		}
	}
	if !slices.Equal(strs, []string{"a'b", `c"d`, "ok"}) || kinds[Regexp] != 2 || kinds[Template] != 1 || toks[len(toks)-1].Line != 3 {
		t.Fatalf("strings %q, kinds %v, last line %d", strs, kinds, toks[len(toks)-1].Line)
	}
	for _, bad := range []string{"'open", "/* open", "`open", "x = /open"} {
		if _, err := Tokenize(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
