package luciapp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/daemon"
	"github.com/delvedns/delve/internal/testenv"
	"github.com/delvedns/delve/ubus"
)

// renderHarness loads the application's scripts in node the way LuCI does (each file a function
// body whose parameters are its 'require's), with stand-ins for LuCI's E(), String.prototype.format
// (the conversions the views use: %s %d %.Nf %t %1024.Nm), cbi_update_table and the modules, then
// renders each case and prints the text of the result. A case names the script, the function and
// its argument (a reply as the rpcd bridge printed it).
const renderHarness = `
const fs = require('fs');
const dir = process.argv[1];
String.prototype.format = function() {
	let args = arguments, i = 0;
	return this.replace(/%(\d*)(?:\.(\d+))?([sdftm%])/g, (all, width, prec, conv) => {
		if (conv === '%') return '%';
		const v = args[i++];
		switch (conv) {
		case 's': return String(v);
		case 'd': return String(Math.trunc(+v));
		case 'f': return (+v).toFixed(prec === undefined ? 6 : +prec);
		case 't': { let s = Math.floor(+v), h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60); return h + 'h ' + m + 'm ' + (s % 60) + 's'; }
		case 'm': { let base = width ? +width : 1000, x = +v, u = 0; const units = ['', ' K', ' M', ' G', ' T']; while (x > base && u < 4) { x /= base; u++; }
			return u ? x.toFixed(prec === undefined ? 2 : +prec) + units[u] + (base == 1024 ? 'i' : '') : String(x) + ' '; }
		}
	});
};
const E = function(tag, attrs, children) {
	if (typeof tag !== 'string') return { tag: 'frag', children: [].concat(tag || []) };
	if (Array.isArray(attrs) || typeof attrs !== 'object' || attrs === null || attrs.tag) { children = attrs; attrs = {}; }
	return { tag, attrs: attrs || {}, children: children == null ? [] : [].concat(children), appendChild(c) { this.children.push(c); } };
};
// A progress bar's text is its title, which the theme shows in the bar.
const text = n => n === undefined ? 'undefined' : n === null ? '' : (typeof n !== 'object') ? String(n) : (n.attrs && n.attrs.title ? n.attrs.title + ' ' : '') +
	(n.children || []).map(text).join(n.tag === 'tr' || n.tag === 'p' || n.tag === 'h4' ? '\n' : ' ') + (n.tag === 'tr' ? '\n' : '');
const cbi_update_table = (table, rows, placeholder) => {
	if (!rows.length) table.children.push(E('tr', {}, [placeholder]));
	rows.forEach(r => table.children.push(E('tr', {}, r.map(c => E('td', {}, [c])))));
};
const L = { bind: (f, self, ...a) => f.bind(self, ...a), resolveDefault: (p, d) => Promise.resolve(p).catch(() => d), hasViewPermission: () => true };
const mods = {
	baseclass: { extend: o => o }, view: { extend: o => o }, poll: { add() {} }, dom: { content() {} },
	rpc: { declare: () => () => Promise.resolve({}) }, ui: { createHandlerFn() {}, addNotification() {} },
	form: {}, uci: {}, request: {},
};
const load = file => {
	const src = fs.readFileSync(dir + '/' + file, 'utf8');
	const names = [], args = [];
	for (const m of src.matchAll(/^'require ([\w.]+)(?: as (\w+))?';$/gm)) {
		names.push(m[2] || m[1]);
		args.push(m[1] === 'delve.validate' ? load('htdocs/luci-static/resources/delve/validate.js') : mods[m[1]]);
	}
	return new Function(...names, 'E', '_', 'L', 'cbi_update_table', src)(...args, E, s => s, L, cbi_update_table);
};
const out = JSON.parse(fs.readFileSync(0, 'utf8')).map(([file, fn, arg]) => {
	const m = load(file);
	return text(fn === 'renderResult' ? m[fn]({}, arg) : m[fn](arg)).replace(/[ \t]+/g, ' ');
});
process.stdout.write(JSON.stringify(out));
`

// render runs the harness on cases and returns the text of each.
func render(t *testing.T, cases [][3]any) []string {
	t.Helper()
	abs, _ := filepath.Abs(app)
	var texts []string
	runNode(t, renderHarness, abs, cases, &texts)
	if len(texts) != len(cases) {
		t.Fatalf("node rendered %d texts for %d cases", len(texts), len(cases))
	}
	return texts
}

// bridge is `ubus call delve METHOD ARGS` as rpcd returns it: the bridge's output.
func bridge(t *testing.T, socket, method, args string) json.RawMessage {
	t.Helper()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := ubus.Call(ctx, ubus.Options{Socket: socket, Config: "/nonexistent"}, method, strings.NewReader(args), &out); err != nil {
		t.Fatal(err)
	}
	return json.RawMessage(bytes.TrimSpace(out.Bytes()))
}

// TestViewsRenderTheDaemon: the Status page, the Overview include and the Lookup page render
// what a real daemon answers through the rpcd bridge (against the loopback unbound, with a second
// upstream that refuses connections), and what the bridge answers when the daemon is down: each
// page shows the values the daemon reported, under the names the views read them by.
func TestViewsRenderTheDaemon(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	dead, err := testenv.FreePort("tcp")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "dla")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "d.sock")
	conf := filepath.Join(dir, "delve")
	text := fmt.Sprintf("config delve 'main'\n\toption socket '%s'\n\tlist listen 'none'\n\toption ca_file '%s'\n\n"+
		"config upstream 'unbound'\n\toption address '127.0.0.1'\n\toption port '%d'\n\toption tls_name '%s'\n\n"+
		"config upstream 'refusing'\n\toption address '127.0.0.1'\n\toption port '%d'\n\toption tls_name '%s'\n",
		sock, ub.CAFile, ub.Port, ub.TLSName, dead, ub.TLSName)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := daemon.New(daemon.Options{Config: conf, Stdout: io.Discard, Stderr: io.Discard, Signals: make(chan os.Signal)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for !bytes.Contains(bridge(t, sock, "status", `{}`), []byte(`"version"`)) {
		if time.Now().After(deadline) {
			t.Fatal("the daemon did not answer status within 20 s")
		}
		time.Sleep(50 * time.Millisecond)
	}

	answer := bridge(t, sock, "lookup", `{"name":"a.delve.test"}`)
	cached := bridge(t, sock, "lookup", `{"name":"a.delve.test"}`)
	nx := bridge(t, sock, "lookup", `{"name":"missing.delve.test","type":"A","upstream":"unbound"}`)
	refused := bridge(t, sock, "lookup", `{"name":"a.delve.test","upstream":"refusing"}`)
	bridge(t, sock, "lookup", `{"name":"b.delve.test","upstream":"refusing"}`)
	bad := bridge(t, sock, "lookup", `{"name":"bad..name"}`)
	status := bridge(t, sock, "status", `{}`)
	down := bridge(t, filepath.Join(dir, "gone.sock"), "status", `{}`)
	// Where /proc cannot be read (a chroot without it) the daemon reports -1 for these.
	var noProc map[string]any
	if err := json.Unmarshal(status, &noProc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"rss_kib", "peak_rss_kib", "open_fds"} {
		noProc["process"].(map[string]any)[k] = -1
	}

	var st daemon.Status
	if err := json.Unmarshal(status, &st); err != nil || len(st.Upstreams) != 2 || !st.Upstreams[0].Healthy || st.Upstreams[1].Healthy {
		t.Fatalf("status %s: want unbound healthy and refusing down", status)
	}
	const (
		statusJS   = "htdocs/luci-static/resources/view/delve/status.js"
		lookupJS   = "htdocs/luci-static/resources/view/delve/lookup.js"
		overviewJS = "htdocs/luci-static/resources/view/status/include/45_delve.js"
	)
	cases := [][3]any{
		{statusJS, "renderState", status},
		{statusJS, "renderState", down},
		{statusJS, "renderState", noProc},
		{statusJS, "renderState", map[string]string{"rpc_error": "Object not found"}},
		{overviewJS, "render", status},
		{overviewJS, "render", down},
		{lookupJS, "renderResult", answer},
		{lookupJS, "renderResult", cached},
		{lookupJS, "renderResult", nx},
		{lookupJS, "renderResult", refused},
		{lookupJS, "renderResult", bad},
	}
	got := render(t, cases)
	u0, u1, c := st.Upstreams[0], st.Upstreams[1], st.Cache
	want := [][]string{
		{"Running", st.Version, st.Config.File, st.Config.Strategy, fmt.Sprintf("%d, of which %d failed", st.Lookups, st.Failures),
			"unbound", fmt.Sprintf("127.0.0.1:%d", ub.Port), ub.TLSName, "Healthy", fmt.Sprintf("%.1f ms", u0.SRTTms),
			"refusing", "Down", "since", u1.LastError, fmt.Sprintf("%d of %d", c.Entries, c.Size),
			fmt.Sprintf("%.1f %% (%d hits, %d misses)", 100*float64(c.Hits)/float64(c.Hits+c.Misses), c.Hits, c.Misses),
			"B resident (peak ", fmt.Sprintf("%d goroutines, %d open files", st.Process.Goroutines, st.Process.OpenFDs),
			fmt.Sprintf("%d running Go code at once", st.Process.Threads),
			"Stale answers", fmt.Sprintf("%d (expired answers given", c.Stale)},
		{"Not running", "the delve daemon is not running", "gone.sock"},
		{"- resident (peak -)", fmt.Sprintf("%d goroutines, - open files", st.Process.Goroutines)},
		{"The ubus object delve cannot be reached", "Object not found"},
		{"unbound", "smoothed RTT", "refusing", u1.LastError, fmt.Sprintf("(%d hits, %d misses; %d entries cached)", c.Hits, c.Misses, c.Entries)},
		{"Not running: the delve daemon is not running"},
		{"NOERROR", "a.delve.test.", "answered by unbound", "192.0.2.1", "2001:db8::1", "300"},
		{"NOERROR", "cached", "no time (cache)", "192.0.2.1"},
		{"NXDOMAIN", "missing.delve.test. does not exist."},
		{"The lookup failed (no_upstream)", "connection refused"},
		{"The lookup failed (bad_request)", `the name "bad..name" has an empty label`},
	}
	for i, w := range want {
		for _, s := range w {
			if !strings.Contains(got[i], s) {
				t.Errorf("%s %s of %.200s\nrendered:\n%s\nwant it to contain %q", cases[i][0], cases[i][1], cases[i][2], got[i], s)
			}
		}
	}
	for i, g := range got {
		if strings.Contains(g, "undefined") || strings.Contains(g, "NaN") {
			t.Errorf("%s %s shows a value the daemon did not send:\n%s", cases[i][0], cases[i][1], g)
		}
	}
}
