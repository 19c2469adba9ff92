package files

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	gouci "github.com/digineo/go-uci/v2"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/uci"
)

// shellFiles are every shell script here, stand-ins included: they all must pass sh -n and
// shellcheck.
var shellFiles = []string{
	"delve.init",
	"delve.rpcd",
	"testdata/openwrt/etc/rc.common",
	"testdata/openwrt/lib/functions.sh",
	"testdata/openwrt/lib/functions/procd.sh",
	"testdata/openwrt/lib/functions/network.sh",
	"testdata/openwrt/bin/uci",
	"testdata/openwrt/bin/logger",
}

// shells are the shells the init script runs under: /bin/sh (dash on Debian) always, and busybox
// sh, OpenWrt's own /bin/sh, when busybox is installed.
func shells(t *testing.T) [][]string {
	t.Helper()
	out := [][]string{{"/bin/sh"}}
	if bb, err := exec.LookPath("busybox"); err == nil {
		out = append(out, []string{bb, "sh"})
	} else {
		t.Log("busybox is not installed: the init script runs under /bin/sh only (apt-get install busybox)")
	}
	return out
}

func shellName(sh []string) string {
	if len(sh) > 1 {
		return filepath.Base(sh[0])
	}
	if real, err := filepath.EvalSymlinks(sh[0]); err == nil {
		return filepath.Base(real)
	}
	return filepath.Base(sh[0])
}

func TestShellSyntax(t *testing.T) {
	for _, sh := range shells(t) {
		for _, f := range shellFiles {
			t.Run(shellName(sh)+"/"+f, func(t *testing.T) {
				args := append(slices.Clone(sh[1:]), "-n", f)
				if out, err := exec.Command(sh[0], args...).CombinedOutput(); err != nil {
					t.Fatalf("%s -n %s: %v\n%s", shellName(sh), f, err, out)
				}
			})
		}
	}
}

func TestShellcheck(t *testing.T) {
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Fatal("shellcheck is not installed (Debian package shellcheck; `make deps` installs it)")
	}
	for _, f := range shellFiles {
		t.Run(f, func(t *testing.T) {
			// -x would follow `.` lines, but every file that sources something names a path that
			// exists only on a router or is set at run time, and says so with a directive.
			if out, err := exec.Command(sc, "-s", "sh", f).CombinedOutput(); err != nil {
				t.Fatalf("shellcheck -s sh %s: %v\n%s", f, err, out)
			}
		})
	}
}

// TestUbusdACL: ubusd's ACL (/usr/share/acl.d/delve.json) lets the user delve publish the object
// delve and nothing else: no access to other objects, no subscribing, no events (ubusd_acl.c
// reads user|group, access, publish, subscribe, send, listen; root bypasses it, and every other
// user needs it).
func TestUbusdACL(t *testing.T) {
	data, err := os.ReadFile("delve.ubusd-acl.json")
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	if keys := slices.Sorted(maps.Keys(raw)); !slices.Equal(keys, []string{"publish", "user"}) {
		t.Fatalf("keys %v, want publish and user only", keys)
	}
	var acl struct {
		User    string   `json:"user"`
		Publish []string `json:"publish"`
	}
	if err := json.Unmarshal(data, &acl); err != nil {
		t.Fatal(err)
	}
	if acl.User != "delve" || !slices.Equal(acl.Publish, []string{"delve"}) {
		t.Fatalf("ACL %+v, want user delve publishing delve", acl)
	}
}

func TestACL(t *testing.T) {
	data, err := os.ReadFile("delve.acl.json")
	if err != nil {
		t.Fatal(err)
	}
	// uci is in table notation ("config": ["read", "write"]): rpcd grants exactly those functions.
	// In array notation ("uci": ["delve"]) it grants the section's own permission, so the read
	// side would let a read-only session read /etc/config/delve, websocket_token included
	// (rpcd session.c, rpc_login_setup_acl_scope; uci.c checks "read" for get and "write" for
	// set). A session with write access also gets the read side (rpc_login_test_permission).
	type scopes struct {
		UBus map[string][]string `json:"ubus"`
		UCI  map[string][]string `json:"uci"`
	}
	type group struct {
		Description string `json:"description"`
		Read        scopes `json:"read"`
		Write       scopes `json:"write"`
	}
	var acl map[string]group
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&acl); err != nil {
		t.Fatalf("delve.acl.json: %v", err)
	}
	// DisallowUnknownFields cannot see keys of the maps, so check the raw shape too: rpcd uses only
	// read and write, a stray key would be a silent typo.
	var raw map[string]map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) != 1 || raw["delve"] == nil {
		t.Fatalf("want exactly the access group delve, have %v", slices.Sorted(maps.Keys(raw)))
	}
	if keys := slices.Sorted(maps.Keys(raw["delve"])); !slices.Equal(keys, []string{"description", "read", "write"}) {
		t.Errorf("group delve has keys %v, want description, read, write", keys)
	}
	g := acl["delve"]
	if strings.TrimSpace(g.Description) == "" {
		t.Error("group delve has no description")
	}
	// Each side grants the methods of the daemon's table marked for it, in the table's order.
	var readSide, writeSide []string
	for _, m := range api.Methods() {
		if m.Write {
			writeSide = append(writeSide, m.Name)
		} else {
			readSide = append(readSide, m.Name)
		}
	}
	if !slices.Equal(readSide, []string{"lookup", "status"}) || !slices.Equal(writeSide, []string{"reload", "flush", "redial"}) {
		t.Fatalf("method table: read %v, write %v", readSide, writeSide)
	}
	want := map[string]scopes{
		// The read side sees no UCI at all: websocket_token is in /etc/config/delve, and rpcd
		// grants UCI access per config file, not per option.
		"read":  {UBus: map[string][]string{"delve": readSide}},
		"write": {UBus: map[string][]string{"delve": writeSide}, UCI: map[string][]string{"delve": {"read", "write"}}},
	}
	for perm, have := range map[string]scopes{"read": g.Read, "write": g.Write} {
		if !reflect.DeepEqual(have, want[perm]) {
			t.Errorf("%s grants %+v, want %+v", perm, have, want[perm])
		}
	}
}

func TestRPCDShim(t *testing.T) {
	src, err := os.ReadFile("delve.rpcd")
	if err != nil {
		t.Fatal(err)
	}
	const execLine = `exec /usr/bin/delve rpcd "$@"`
	if !strings.HasPrefix(string(src), "#!/bin/sh\n") {
		t.Error("delve.rpcd does not start with #!/bin/sh")
	}
	if !slices.Contains(strings.Split(string(src), "\n"), execLine) {
		t.Fatalf("delve.rpcd lacks the line %s", execLine)
	}
	// Run it the way rpcd does (argv list / call METHOD, the arguments on stdin), with the binary
	// swapped for one that echoes what it got.
	dir := t.TempDir()
	fake := filepath.Join(dir, "delve")
	writeFile(t, fake, "#!/bin/sh\nprintf 'argv:'; printf ' [%s]' \"$@\"; echo; cat\n", 0o755)
	shim := filepath.Join(dir, "shim")
	writeFile(t, shim, strings.Replace(string(src), "/usr/bin/delve", fake, 1), 0o755)
	for _, tc := range []struct {
		args  []string
		stdin string
		want  string
	}{
		{[]string{"list"}, "", "argv: [rpcd] [list]\n"},
		{[]string{"call", "lookup"}, `{"name":"openwrt.org","ubus_rpc_session":"x y"}`, "argv: [rpcd] [call] [lookup]\n" + `{"name":"openwrt.org","ubus_rpc_session":"x y"}`},
	} {
		cmd := exec.Command(shim, tc.args...)
		cmd.Stdin = strings.NewReader(tc.stdin)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("shim %v: %v", tc.args, err)
		}
		if string(out) != tc.want {
			t.Errorf("shim %v printed %q, want %q", tc.args, out, tc.want)
		}
	}
}

// TestConfigGoUCI loads the shipped /etc/config/delve with go-uci, the parser the daemon is built
// on, and checks every shipped value.
func TestConfigGoUCI(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, "delve.config", filepath.Join(dir, "delve"), 0o600)
	tree := gouci.NewTree(dir)
	if err := tree.LoadConfig("delve", true); err != nil {
		t.Fatalf("go-uci cannot parse delve.config: %v", err)
	}
	get := func(sec, opt string) []string {
		v, ok := tree.Get("delve", sec, opt)
		if !ok {
			return nil
		}
		return v
	}
	if s, _ := tree.GetSections("delve", "delve"); !slices.Equal(s, []string{"main"}) {
		t.Errorf("sections of type delve: %v, want [main]", s)
	}
	if s, _ := tree.GetSections("delve", "upstream"); !slices.Equal(s, []string{"cloudflare", "cloudflare2", "quad9"}) {
		t.Errorf("upstream sections: %v, want [cloudflare cloudflare2 quad9]", s)
	}
	want := map[[2]string][]string{
		{"main", "enabled"}:              {"1"},
		{"main", "type"}:                 {"A", "AAAA"},
		{"main", "timeout"}:              {"3000"},
		{"main", "strategy"}:             {"failover"},
		{"main", "cache_size"}:           {"1024"},
		{"main", "socket"}:               {"/var/run/delve/delve.sock"},
		{"main", "listen"}:               {"127.0.0.1:5453", "[::1]:5453"},
		{"main", "log_level"}:            {"info"},
		{"main", "dnsmasq"}:              {"0"},
		{"main", "tolerate_unset_clock"}: {"0"},
		{"main", "serve_stale"}:          {"1"},
		{"main", "prefetch"}:             {"1"},
		// Unset means the default (off, system roots, wan); a shipped `option x ''` would be the
		// same for uci but go-uci rejects an empty quoted value.
		{"main", "websocket"}:       nil,
		{"main", "websocket_token"}: nil,
		{"main", "ca_file"}:         nil,
		{"main", "trigger"}:         nil,
		{"cloudflare", "address"}:   {"1.1.1.1"},
		{"cloudflare", "port"}:      {"853"},
		{"cloudflare", "tls_name"}:  {"cloudflare-dns.com"},
		{"cloudflare", "enabled"}:   {"1"},
		{"cloudflare", "pin"}:       nil,
		{"cloudflare2", "address"}:  {"1.0.0.1"},
		{"cloudflare2", "port"}:     {"853"},
		{"cloudflare2", "tls_name"}: {"cloudflare-dns.com"},
		{"cloudflare2", "enabled"}:  {"1"},
		{"quad9", "address"}:        {"9.9.9.9"},
		{"quad9", "port"}:           {"853"},
		{"quad9", "tls_name"}:       {"dns.quad9.net"},
		{"quad9", "enabled"}:        {"1"},
	}
	for k, v := range want {
		if have := get(k[0], k[1]); !slices.Equal(have, v) {
			t.Errorf("delve.%s.%s = %q, want %q", k[0], k[1], have, v)
		}
	}
}

// TestConfigUCILoad loads the shipped file with delve's own loader, as the daemon does at start.
func TestConfigUCILoad(t *testing.T) {
	c, err := uci.Load("delve.config")
	if err != nil {
		t.Fatalf("uci.Load(delve.config): %v", err)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %q", c.Warnings)
	}
	type view struct {
		Enabled                    bool
		Types                      []string
		Timeout                    time.Duration
		Strategy                   string
		CacheSize, CacheMemory     int
		Threads                    int
		Socket, WebSocket, WSToken string
		Listen                     []string
		CAFile                     string
		LogLevel                   slog.Level
		DNSMasq                    bool
		Triggers                   []string
		Upstreams                  []uci.Upstream
	}
	have := view{c.Enabled, c.Types, c.Timeout, c.Strategy, c.CacheSize, c.CacheMemory, c.Threads, c.Socket, c.WebSocket, c.WebSocketToken,
		c.Listen, c.CAFile, c.LogLevel, c.DNSMasq, c.Triggers, c.Upstreams}
	want := view{
		Enabled:     true,
		Types:       []string{"A", "AAAA"},
		Timeout:     3 * time.Second,
		Strategy:    uci.StrategyFailover,
		CacheSize:   1024,
		CacheMemory: 4 << 20,
		Threads:     1,
		Socket:      "/var/run/delve/delve.sock",
		Listen:      []string{"127.0.0.1:5453", "[::1]:5453"},
		LogLevel:    slog.LevelInfo,
		Upstreams: []uci.Upstream{
			{Name: "cloudflare", Address: "1.1.1.1", Port: 853, TLSName: "cloudflare-dns.com", Enabled: true},
			{Name: "cloudflare2", Address: "1.0.0.1", Port: 853, TLSName: "cloudflare-dns.com", Enabled: true},
			{Name: "quad9", Address: "9.9.9.9", Port: 853, TLSName: "dns.quad9.net", Enabled: true},
		},
	}
	if !reflect.DeepEqual(have, want) {
		t.Errorf("uci.Load(delve.config):\n have %+v\n want %+v", have, want)
	}
}

// TestConfigSyntax checks the file against what both the uci tool and go-uci read (single-quoted
// values, tab indentation, no empty values) and that it names no option beyond the schema.
func TestConfigSyntax(t *testing.T) {
	data, err := os.ReadFile("delve.config")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string][]string{
		"delve":    {"enabled", "type", "timeout", "strategy", "cache_size", "cache_memory", "threads", "socket", "websocket", "websocket_token", "listen", "ca_file", "log_level", "dnsmasq", "trigger", "tolerate_unset_clock", "serve_stale", "prefetch", "ubus", "ubus_socket"},
		"upstream": {"address", "port", "tls_name", "pin", "enabled"},
	}
	section := regexp.MustCompile(`^config ([a-z_]+) '([a-z0-9_]+)'$`)
	item := regexp.MustCompile(`^\t(option|list) ([a-z_]+) '([^'\t]+)'$`)
	var typ string
	for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		n := i + 1
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "\t#"):
		case section.MatchString(line):
			typ = section.FindStringSubmatch(line)[1]
			if known[typ] == nil {
				t.Errorf("line %d: unknown section type %s", n, typ)
			}
		case item.MatchString(line):
			name := item.FindStringSubmatch(line)[2]
			if !slices.Contains(known[typ], name) {
				t.Errorf("line %d: %s is not an option of a %s section", n, name, typ)
			}
		default:
			t.Errorf("line %d is neither a comment, a config line nor a tab-indented option/list with a non-empty single-quoted value: %q", n, line)
		}
	}
}

// The init script runs under a stand-in for OpenWrt's shell library (testdata/openwrt): rc.common's
// dispatch, procd.sh and the uci tool recording what they are told, functions.sh's config_* reading
// the fixture, logger recording. No OpenWrt exists on Debian, so this checks the script's decisions
// (what it hands procd, what it does to /etc/config/dhcp) against the facts the stand-ins encode,
// not procd or uci themselves.

// dhcpFixture is /etc/config/dhcp in the uci stand-in's format: a dnsmasq section with a
// local-domain server, a domain-specific server and a plain upstream, noresolv unset.
const dhcpFixture = "dhcp.@dnsmasq[0]\ts\tdnsmasq\n" +
	"dhcp.@dnsmasq[0].domainneeded\to\t1\n" +
	"dhcp.@dnsmasq[0].local\to\t/lan/\n" +
	"dhcp.@dnsmasq[0].server\tl\t/lan/\n" +
	"dhcp.@dnsmasq[0].server\tl\t/home.arpa/198.51.100.2\n" +
	"dhcp.@dnsmasq[0].server\tl\t8.8.8.8\n" +
	"dhcp.lan\ts\tdhcp\n" +
	"dhcp.lan.interface\to\tlan\n"

type harness struct {
	t     *testing.T
	shell []string
	root  string // the stand-in tree
	state string // this harness's files: etc/init.d/delve, etc/config/delve, uci/, *.log
}

func newHarness(t *testing.T, shell []string, dhcp string) *harness {
	t.Helper()
	root, err := filepath.Abs("testdata/openwrt")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, shell: shell, root: root, state: t.TempDir()}
	for _, d := range []string{"etc/init.d", "etc/config", "uci"} {
		if err := os.MkdirAll(filepath.Join(h.state, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Named delve, as on the router: rc.common names the procd service after the script.
	copyFile(t, "delve.init", filepath.Join(h.state, "etc/init.d/delve"), 0o755)
	copyFile(t, "delve.config", filepath.Join(h.state, "etc/config/delve"), 0o600)
	writeFile(t, filepath.Join(h.state, "uci/dhcp"), dhcp, 0o600)
	return h
}

// edit replaces old with new in the harness's /etc/config/delve, which must contain old.
func (h *harness) edit(old, new string) {
	h.t.Helper()
	p := filepath.Join(h.state, "etc/config/delve")
	data, err := os.ReadFile(p)
	if err != nil {
		h.t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		h.t.Fatalf("the config has no %q to replace", old)
	}
	writeFile(h.t, p, strings.Replace(string(data), old, new, 1), 0o600)
}

// run runs `/etc/init.d/delve ARGS...` and fails the test if it exits non-zero or prints anything.
func (h *harness) run(args ...string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	argv := append(slices.Clone(h.shell[1:]), filepath.Join(h.root, "etc/rc.common"), filepath.Join(h.state, "etc/init.d/delve"))
	cmd := exec.CommandContext(ctx, h.shell[0], append(argv, args...)...)
	cmd.Dir = h.state
	cmd.Env = []string{
		"PATH=" + filepath.Join(h.root, "bin") + ":/usr/bin:/bin",
		"LC_ALL=C",
		"DELVE_HARNESS=" + h.root,
		"DELVE_HARNESS_STATE=" + h.state,
		"DELVE_RUNDIR=" + h.state,
		"UCI_CONFIG_DIR=" + filepath.Join(h.state, "etc/config"),
		"UCI_STUB_DIR=" + filepath.Join(h.state, "uci"),
	}
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		h.t.Fatalf("/etc/init.d/delve %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// take returns the lines the stand-ins recorded in NAME since the last take.
func (h *harness) take(name string) []string {
	h.t.Helper()
	p := filepath.Join(h.state, name)
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		h.t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		h.t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// procdService is one service definition as the init script sent it to procd.
type procdService struct {
	Name, Script string
	Method       string                         // set or add
	Instances    map[string]map[string][]string // instance → parameter → values
	Triggers     [][]string
}

// procdCalls is what the init script told procd since the last look.
type procdCalls struct {
	Services []procdService
	Kills    [][]string
	Signals  [][]string
}

func (h *harness) procd() procdCalls {
	h.t.Helper()
	var pc procdCalls
	var svc *procdService
	var inst map[string][]string
	for _, line := range h.take("procd.log") {
		f := strings.Split(line, "\t")
		switch {
		case f[0] == "open_service" && svc == nil:
			svc = &procdService{Name: f[1], Script: f[2], Instances: map[string]map[string][]string{}}
		case f[0] == "open_instance" && svc != nil && inst == nil:
			inst = map[string][]string{}
			svc.Instances[f[1]] = inst
		case f[0] == "set_param" && inst != nil:
			if _, dup := inst[f[1]]; dup {
				h.t.Errorf("procd parameter %s set twice", f[1])
			}
			inst[f[1]] = f[2:]
		case f[0] == "close_instance" && inst != nil:
			inst = nil
		case f[0] == "trigger" && svc != nil && inst == nil:
			svc.Triggers = append(svc.Triggers, f[1:])
		case f[0] == "close_service" && svc != nil && inst == nil:
			svc.Method = f[1]
			pc.Services = append(pc.Services, *svc)
			svc = nil
		case f[0] == "kill" && svc == nil:
			pc.Kills = append(pc.Kills, f[1:])
		case f[0] == "signal" && svc == nil:
			pc.Signals = append(pc.Signals, f[1:])
		default:
			h.t.Fatalf("unexpected procd call %q", f)
		}
	}
	if svc != nil {
		h.t.Fatalf("service %s opened but not closed", svc.Name)
	}
	return pc
}

// uciEntry is one key of the uci stand-in's store: a section (kind s), option (o) or list (l).
type uciEntry struct {
	Kind   string
	Values []string
}

// dhcp returns /etc/config/dhcp as committed, or with pending changes too.
func (h *harness) dhcp(pending bool) map[string]uciEntry {
	h.t.Helper()
	p := filepath.Join(h.state, "uci/dhcp")
	if pending {
		if _, err := os.Stat(filepath.Join(h.state, "uci/.delta/dhcp")); err == nil {
			p = filepath.Join(h.state, "uci/.delta/dhcp")
		}
	}
	data, err := os.ReadFile(p)
	if err != nil {
		h.t.Fatal(err)
	}
	return parseStore(h.t, string(data))
}

func parseStore(t *testing.T, s string) map[string]uciEntry {
	t.Helper()
	m := map[string]uciEntry{}
	for _, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			t.Fatalf("bad uci store line %q", line)
		}
		e := m[f[0]]
		if e.Kind != "" && (e.Kind != "l" || f[1] != "l") {
			t.Fatalf("uci store: %s appears twice", f[0])
		}
		e.Kind = f[1]
		e.Values = append(e.Values, f[2])
		m[f[0]] = e
	}
	return m
}

// pendingChanges reports whether uci holds changes that were not committed.
func (h *harness) pendingChanges() bool {
	_, err := os.Stat(filepath.Join(h.state, "uci/.delta/dhcp"))
	return err == nil
}

// reboot throws away uncommitted uci changes, as a reboot empties /tmp/.uci.
func (h *harness) reboot() {
	if err := os.RemoveAll(filepath.Join(h.state, "uci/.delta")); err != nil {
		h.t.Fatal(err)
	}
}

// checkDelveService checks one service definition: the daemon instance with its parameters when
// running is true, none otherwise, and the triggers for the given interfaces.
func checkDelveService(t *testing.T, h *harness, s procdService, running bool, ifaces ...string) {
	t.Helper()
	if s.Name != "delve" || s.Script != filepath.Join(h.state, "etc/init.d/delve") || s.Method != "set" {
		t.Errorf("service %q script %q sent with %q, want delve, the init script, set", s.Name, s.Script, s.Method)
	}
	if running {
		want := map[string]map[string][]string{"delve": {
			"command":       {"/usr/bin/delve", "serve", "--config", "/etc/config/delve"},
			"respawn":       {},
			"stdout":        {"1"},
			"stderr":        {"1"},
			"file":          {"/etc/config/delve"},
			"reload_signal": {"HUP"},
			"term_timeout":  {"10"}, // see TestTermTimeout
		}}
		if !reflect.DeepEqual(s.Instances, want) {
			t.Errorf("instances:\n have %q\n want %q", s.Instances, want)
		}
	} else if len(s.Instances) != 0 {
		t.Errorf("instances %q, want none", s.Instances)
	}
	want := [][]string{{"config.change", "package=delve", "/etc/init.d/delve", "reload", "delay=1000"}}
	for _, iface := range ifaces {
		want = append(want, []string{"interface.*", "interface=" + iface, "/etc/init.d/delve", "reload", "interface", "delay=1000"})
	}
	if !reflect.DeepEqual(s.Triggers, want) {
		t.Errorf("triggers:\n have %q\n want %q", s.Triggers, want)
	}
}

func TestInitScript(t *testing.T) {
	for _, sh := range shells(t) {
		t.Run(shellName(sh), func(t *testing.T) { testInitScript(t, sh) })
	}
}

func testInitScript(t *testing.T, sh []string) {
	fixture := parseStore(t, dhcpFixture)
	wired := func(servers ...string) map[string]uciEntry {
		m := map[string]uciEntry{}
		for k, v := range fixture {
			m[k] = v
		}
		m["dhcp.@dnsmasq[0].server"] = uciEntry{"l", servers}
		m["dhcp.@dnsmasq[0].noresolv"] = uciEntry{"o", []string{"1"}}
		m["dhcp.@dnsmasq[0].delve_saved"] = uciEntry{"o", []string{"1"}}
		m["dhcp.@dnsmasq[0].delve_saved_server"] = fixture["dhcp.@dnsmasq[0].server"]
		return m
	}
	delveWired := wired("/lan/", "/home.arpa/198.51.100.2", "127.0.0.1#5453")
	const dnsmasqOn = "option dnsmasq '1'"

	expectDHCP := func(t *testing.T, h *harness, want map[string]uciEntry, restarts int) {
		t.Helper()
		if h.pendingChanges() {
			t.Error("dhcp has uncommitted changes")
		}
		if have := h.dhcp(false); !reflect.DeepEqual(have, want) {
			t.Errorf("committed dhcp:\n have %v\n want %v", have, want)
		}
		if n := len(h.take("dnsmasq.log")); n != restarts {
			t.Errorf("dnsmasq restarted %d times, want %d", n, restarts)
		}
	}

	t.Run("start", func(t *testing.T) {
		h := newHarness(t, sh, dhcpFixture)
		h.run("start")
		pc := h.procd()
		if len(pc.Services) != 1 || len(pc.Kills)+len(pc.Signals) != 0 {
			t.Fatalf("procd calls %+v, want one service definition", pc)
		}
		checkDelveService(t, h, pc.Services[0], true, "wan")
		expectDHCP(t, h, fixture, 0)
		if logged := h.take("logger.log"); logged != nil {
			t.Errorf("logged %q", logged)
		}
	})

	t.Run("unprivileged", func(t *testing.T) {
		h := newHarness(t, sh, dhcpFixture)
		// Without the user (a package that could not make it), root as before.
		h.run("start")
		if inst := h.procd().Services[0].Instances["delve"]; inst["user"] != nil {
			t.Fatalf("user %q without a user delve", inst["user"])
		}
		if got := h.take("own.log"); got != nil {
			t.Fatalf("files given away without a user delve: %q", got)
		}
		writeFile(t, filepath.Join(h.state, "passwd"), "root:x:0:0:root:/root:/bin/ash\ndelve:x:32768:32768:delve:/var/run/delve:/bin/false\n", 0o644)
		// The user appeared (the package made it): a reload restarts the daemon as delve, since
		// procd answers a changed definition with reload_signal alone.
		h.run("reload")
		pc := h.procd()
		if len(pc.Kills) != 1 || len(pc.Services) != 1 || !slices.Equal(pc.Services[0].Instances["delve"]["user"], []string{"delve"}) {
			t.Fatalf("procd calls %+v, want a stop and the instance with user delve", pc)
		}
		if got := h.take("own.log"); !slices.Equal(got, []string{"own /var/run/delve", "own config"}) {
			t.Fatalf("ownership %q, want the socket directory and the config", got)
		}
		// Another socket in an existing shared directory: only the config; no restart.
		h.edit("option socket '/var/run/delve/delve.sock'", "option socket '"+h.state+"/d.sock'")
		h.run("reload")
		if pc := h.procd(); len(pc.Kills) != 0 || len(pc.Services) != 1 {
			t.Fatalf("procd calls %+v, want the definition only", pc)
		}
		if got := h.take("own.log"); !slices.Equal(got, []string{"own config"}) {
			t.Fatalf("ownership %q, want the config only", got)
		}
		// Port 53 takes root, says so, and restarts.
		h.edit("list listen '127.0.0.1:5453'", "list listen '127.0.0.1:53'")
		h.run("reload")
		pc = h.procd()
		if len(pc.Kills) != 1 || len(pc.Services) != 1 || pc.Services[0].Instances["delve"]["user"] != nil {
			t.Fatalf("procd calls %+v, want a stop and the instance without a user", pc)
		}
		if logged := h.take("logger.log"); len(logged) != 1 || !strings.Contains(logged[0], "127.0.0.1:53 has a port below 1024") {
			t.Fatalf("logged %q", logged)
		}
	})

	t.Run("ubus rpcd to native and back", func(t *testing.T) {
		h := newHarness(t, sh, dhcpFixture)
		h.run("start")
		h.procd()
		h.take("logger.log")
		// Nothing changed: rpcd is left alone.
		h.run("reload")
		if got := h.take("rpcd.log"); got != nil {
			t.Fatalf("rpcd reloaded %q on a reload that changed nothing", got)
		}
		// To native: rpcd is reloaded at once (its list then declines; the daemon retries until
		// rpcd has let go of the name).
		h.edit("option ubus 'rpcd'", "option ubus 'native'")
		h.run("reload")
		if got := h.take("rpcd.log"); len(got) != 1 {
			t.Fatalf("rpcd reloads %q, want one", got)
		}
		if got := h.take("ubus.log"); got != nil {
			t.Fatalf("ubus asked %q on the way to native", got)
		}
		if logged := h.take("logger.log"); len(logged) != 1 || !strings.Contains(logged[0], "served by native") {
			t.Fatalf("logged %q", logged)
		}
		h.run("reload")
		if got := h.take("rpcd.log"); got != nil {
			t.Fatalf("rpcd reloaded again: %q", got)
		}
		// Back to rpcd: the daemon still has the name for one look, then lets go; only then is
		// rpcd reloaded.
		writeFile(t, filepath.Join(h.state, "ubus.delve"), "1\n", 0o644)
		h.edit("option ubus 'native'", "option ubus 'rpcd'")
		h.run("reload")
		if got := h.take("ubus.log"); !slices.Equal(got, []string{"-S list delve", "-S list delve"}) {
			t.Fatalf("ubus asked %q, want two looks for delve", got)
		}
		if got := h.take("rpcd.log"); len(got) != 1 {
			t.Fatalf("rpcd reloads %q, want one", got)
		}
	})

	t.Run("enabled 0 starts nothing", func(t *testing.T) {
		h := newHarness(t, sh, dhcpFixture)
		h.edit("option enabled '1'", "option enabled '0'")
		h.run("start")
		pc := h.procd()
		if len(pc.Services) != 1 {
			t.Fatalf("procd calls %+v, want one (empty) service definition", pc)
		}
		// The definition is still sent, without instances, so that a reload stops a running
		// daemon, and the config trigger stays, so that enabling it later takes a reload_config.
		checkDelveService(t, h, pc.Services[0], false, "wan")
		logged := h.take("logger.log")
		if len(logged) != 1 || !strings.Contains(logged[0], "enabled is 0") {
			t.Errorf("logged %q, want one line saying enabled is 0", logged)
		}
		h.run("reload", "interface")
		if pc := h.procd(); len(pc.Signals) != 0 {
			t.Errorf("a disabled service was sent signals %q", pc.Signals)
		}
		h.take("logger.log")
		expectDHCP(t, h, fixture, 0)
	})

	t.Run("reload", func(t *testing.T) {
		h := newHarness(t, sh, dhcpFixture)
		h.run("start")
		h.procd()
		// A config change: the definition goes again and procd, seeing a new file MD5, sends
		// reload_signal itself; the script sends nothing.
		h.run("reload")
		pc := h.procd()
		if len(pc.Services) != 1 || len(pc.Signals)+len(pc.Kills) != 0 {
			t.Fatalf("reload: procd calls %+v, want the service definition only", pc)
		}
		checkDelveService(t, h, pc.Services[0], true, "wan")
		// Interface events: nothing in the definition changes, so the script sends SIGUSR1 itself,
		// and only when the uplink changed: up or down, its device, its addresses. A routine
		// interface.update (a wan6 prefix renewal, new lifetimes) redials nothing.
		wan := func(lines string) { writeFile(t, filepath.Join(h.state, "network/wan"), lines, 0o644) }
		if err := os.MkdirAll(filepath.Join(h.state, "network"), 0o755); err != nil {
			t.Fatal(err)
		}
		usr1 := [][]string{{"delve", "*", "USR1"}}
		for _, step := range []struct {
			name    string
			wan     string
			signals [][]string
		}{
			{"wan comes up", "up=1\ndevice=eth1\nipaddrs=203.0.113.7\n", usr1},
			{"an update that changes nothing delve uses", "up=1\ndevice=eth1\nipaddrs=203.0.113.7\n", nil},
			{"a new address", "up=1\ndevice=eth1\nipaddrs=203.0.113.9\n", usr1},
			{"an IPv6 address besides", "up=1\ndevice=eth1\nipaddrs=203.0.113.9\nipaddrs6=2001:db8::9\n", usr1},
			{"the same again", "up=1\ndevice=eth1\nipaddrs=203.0.113.9\nipaddrs6=2001:db8::9\n", nil},
			{"wan goes down", "up=0\ndevice=eth1\n", usr1},
		} {
			wan(step.wan)
			h.run("reload", "interface")
			pc = h.procd()
			if len(pc.Services) != 1 || !reflect.DeepEqual(pc.Signals, step.signals) || len(pc.Kills) != 0 {
				t.Fatalf("reload interface, %s: procd calls %+v, want the definition and signals %q", step.name, pc, step.signals)
			}
			checkDelveService(t, h, pc.Services[0], true, "wan")
		}
	})

	t.Run("trigger list", func(t *testing.T) {
		h := newHarness(t, sh, dhcpFixture)
		h.edit("\t#list trigger 'wan'\n", "\tlist trigger 'wan'\n\tlist trigger 'wan6'\n")
		h.run("start")
		pc := h.procd()
		if len(pc.Services) != 1 {
			t.Fatalf("procd calls %+v", pc)
		}
		checkDelveService(t, h, pc.Services[0], true, "wan", "wan6")
	})

	t.Run("stop", func(t *testing.T) {
		h := newHarness(t, sh, dhcpFixture)
		h.run("start")
		h.procd()
		h.run("stop")
		pc := h.procd()
		if len(pc.Services) != 0 || !reflect.DeepEqual(pc.Kills, [][]string{{"delve", ""}}) {
			t.Fatalf("stop: procd calls %+v, want procd_kill delve", pc)
		}
		expectDHCP(t, h, fixture, 0)
	})

	t.Run("dnsmasq", func(t *testing.T) {
		h := newHarness(t, sh, dhcpFixture)
		h.edit("option dnsmasq '0'", dnsmasqOn)
		h.run("start")
		checkDelveService(t, h, h.procd().Services[0], true, "wan")
		// Domain-specific servers stay, the plain upstream goes, delve comes last; the backup holds
		// exactly the old list and no delve_saved_noresolv, because noresolv was unset.
		expectDHCP(t, h, delveWired, 1)

		h.run("start")
		expectDHCP(t, h, delveWired, 0)
		h.run("reload")
		expectDHCP(t, h, delveWired, 0)

		// The backup was committed with the change, so it survives a reboot, and a start after
		// it does not take delve's settings for the user's.
		h.reboot()
		h.run("boot")
		expectDHCP(t, h, delveWired, 0)

		h.run("stop")
		expectDHCP(t, h, fixture, 1)
		if pc := h.procd(); !reflect.DeepEqual(pc.Kills, [][]string{{"delve", ""}}) {
			t.Errorf("stop: procd kills %q", pc.Kills)
		}
		h.run("stop")
		expectDHCP(t, h, fixture, 0)
		logged := h.take("logger.log")
		if len(logged) != 2 || !strings.Contains(logged[0], "127.0.0.1#5453") {
			t.Errorf("logged %q, want one line for pointing dnsmasq at 127.0.0.1#5453 and one for restoring it", logged)
		}
	})

	t.Run("dnsmasq noresolv and empty list restored", func(t *testing.T) {
		bare := "dhcp.@dnsmasq[0]\ts\tdnsmasq\ndhcp.@dnsmasq[0].noresolv\to\t0\n"
		h := newHarness(t, sh, bare)
		h.edit("option dnsmasq '0'", dnsmasqOn)
		h.edit("\tlist listen '127.0.0.1:5453'\n", "")
		h.run("start")
		expectDHCP(t, h, map[string]uciEntry{
			"dhcp.@dnsmasq[0]":                      {"s", []string{"dnsmasq"}},
			"dhcp.@dnsmasq[0].server":               {"l", []string{"::1#5453"}},
			"dhcp.@dnsmasq[0].noresolv":             {"o", []string{"1"}},
			"dhcp.@dnsmasq[0].delve_saved":          {"o", []string{"1"}},
			"dhcp.@dnsmasq[0].delve_saved_noresolv": {"o", []string{"0"}},
		}, 1)
		h.run("stop")
		expectDHCP(t, h, parseStore(t, bare), 1)
	})

	t.Run("dnsmasq server entries are not globbed", func(t *testing.T) {
		// uci prints list items separated by spaces and the script splits them; /*/ would expand
		// to every directory under / if the shell globbed them.
		globby := "dhcp.@dnsmasq[0]\ts\tdnsmasq\ndhcp.@dnsmasq[0].server\tl\t/*/\ndhcp.@dnsmasq[0].server\tl\t8.8.8.8\n"
		h := newHarness(t, sh, globby)
		h.edit("option dnsmasq '0'", dnsmasqOn)
		h.run("start")
		expectDHCP(t, h, map[string]uciEntry{
			"dhcp.@dnsmasq[0]":                    {"s", []string{"dnsmasq"}},
			"dhcp.@dnsmasq[0].server":             {"l", []string{"/*/", "127.0.0.1#5453"}},
			"dhcp.@dnsmasq[0].noresolv":           {"o", []string{"1"}},
			"dhcp.@dnsmasq[0].delve_saved":        {"o", []string{"1"}},
			"dhcp.@dnsmasq[0].delve_saved_server": {"l", []string{"/*/", "8.8.8.8"}},
		}, 1)
		h.run("stop")
		expectDHCP(t, h, parseStore(t, globby), 1)
	})

	t.Run("dnsmasq follows the settings", func(t *testing.T) {
		h := newHarness(t, sh, dhcpFixture)
		h.edit("option dnsmasq '0'", dnsmasqOn)
		h.run("start")
		expectDHCP(t, h, delveWired, 1)
		// A new listen address: the old target goes, the backup stays the user's.
		h.edit("list listen '127.0.0.1:5453'", "list listen '0.0.0.0:5454'")
		h.run("reload")
		expectDHCP(t, h, wired("/lan/", "/home.arpa/198.51.100.2", "127.0.0.1#5454"), 1)
		h.edit(dnsmasqOn, "option dnsmasq '0'")
		h.run("reload")
		expectDHCP(t, h, fixture, 1)
		h.edit("option dnsmasq '0'", dnsmasqOn)
		h.edit("option enabled '1'", "option enabled '0'")
		h.run("reload")
		expectDHCP(t, h, fixture, 0)
		h.edit("option enabled '0'", "option enabled '1'")
		h.run("reload")
		expectDHCP(t, h, wired("/lan/", "/home.arpa/198.51.100.2", "127.0.0.1#5454"), 1)
		h.edit("option enabled '1'", "option enabled '0'")
		h.run("reload")
		expectDHCP(t, h, fixture, 1)
	})

	t.Run("restart and shutdown keep dnsmasq pointed at delve", func(t *testing.T) {
		h := newHarness(t, sh, dhcpFixture)
		h.edit("option dnsmasq '0'", dnsmasqOn)
		h.run("start")
		expectDHCP(t, h, delveWired, 1)
		h.procd()
		h.run("restart")
		pc := h.procd()
		if len(pc.Kills) != 1 || len(pc.Services) != 1 {
			t.Errorf("restart: procd calls %+v, want a kill and a new definition", pc)
		}
		expectDHCP(t, h, delveWired, 0)
		h.run("shutdown")
		if pc := h.procd(); len(pc.Kills) != 1 {
			t.Errorf("shutdown: procd calls %+v, want a kill", pc)
		}
		expectDHCP(t, h, delveWired, 0)
		// and the stop after a restart still restores
		h.run("stop")
		expectDHCP(t, h, fixture, 1)
	})

	t.Run("disable restores dnsmasq", func(t *testing.T) {
		// disable removes /etc/rc.d/[SK]??delve with IPKG_INSTROOT empty, as on a router: only
		// where that directory does not exist is it certain to touch nothing.
		if _, err := os.Stat("/etc/rc.d"); err == nil {
			t.Skip("/etc/rc.d exists on this machine")
		}
		h := newHarness(t, sh, dhcpFixture)
		h.edit("option dnsmasq '0'", dnsmasqOn)
		h.run("start")
		expectDHCP(t, h, delveWired, 1)
		h.run("disable")
		expectDHCP(t, h, fixture, 1)
		h.run("disable")
		expectDHCP(t, h, fixture, 0)
	})

	t.Run("dnsmasq without a usable listen address", func(t *testing.T) {
		h := newHarness(t, sh, dhcpFixture)
		h.edit("option dnsmasq '0'", dnsmasqOn)
		h.edit("\tlist listen '127.0.0.1:5453'\n\tlist listen '[::1]:5453'\n", "")
		h.run("start")
		expectDHCP(t, h, fixture, 0)
		if logged := h.take("logger.log"); len(logged) != 1 || !strings.Contains(logged[0], "listen") {
			t.Errorf("logged %q, want one line about the listen address", logged)
		}
	})

	t.Run("no dnsmasq section", func(t *testing.T) {
		none := "dhcp.lan\ts\tdhcp\n"
		h := newHarness(t, sh, none)
		h.edit("option dnsmasq '0'", dnsmasqOn)
		h.run("start")
		expectDHCP(t, h, parseStore(t, none), 0)
		if logged := h.take("logger.log"); len(logged) != 1 || !strings.Contains(logged[0], "no dnsmasq section") {
			t.Errorf("logged %q", logged)
		}
	})
}

// TestDNSMasqTarget checks the listen address → dnsmasq server conversion on its own: the init
// script defines functions only, so it can be sourced.
func TestDNSMasqTarget(t *testing.T) {
	for _, sh := range shells(t) {
		for _, tc := range []struct{ in, want string }{
			{"127.0.0.1:5453", "127.0.0.1#5453"},
			{"[::1]:5453", "::1#5453"},
			{"0.0.0.0:53", "127.0.0.1#53"},
			{":5453", "127.0.0.1#5453"},
			{"[::]:5453", "::1#5453"},
			{"198.51.100.1:5353", "198.51.100.1#5353"},
			{"localhost", ""},
			{"127.0.0.1:", ""},
			{"127.0.0.1:dns", ""},
			{"", ""},
		} {
			args := append(slices.Clone(sh[1:]), "-c", `. ./delve.init && delve_dnsmasq_target "$1"`, "sh", tc.in)
			out, err := exec.Command(sh[0], args...).Output()
			have := strings.TrimSuffix(string(out), "\n")
			if tc.want == "" {
				if err == nil {
					t.Errorf("%s: %q gave %q, want failure", shellName(sh), tc.in, have)
				}
				continue
			}
			if err != nil || have != tc.want {
				t.Errorf("%s: %q gave %q (%v), want %q", shellName(sh), tc.in, have, err, tc.want)
			}
		}
	}
}

func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, string(data), mode)
}
