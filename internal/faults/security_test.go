package faults

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/testenv"
)

// TestSocketModeAndOwner: the socket is 0660 whatever the umask the daemon was started with, and
// belongs to the user and group the daemon runs as; a user outside them cannot call it.
func TestSocketModeAndOwner(t *testing.T) {
	t.Parallel()
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	check := func(t *testing.T, socket string, uid, gid int) {
		t.Helper()
		fi, err := os.Lstat(socket)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 || int(st.Uid) != uid || int(st.Gid) != gid {
			t.Fatalf("socket %v owner %d:%d, want a socket 0660 owned by %d:%d", fi.Mode(), st.Uid, st.Gid, uid, gid)
		}
	}
	for _, umask := range []string{"000", "077", "022"} {
		t.Run("umask "+umask, func(t *testing.T) {
			t.Parallel()
			c := newConf(t)
			c.addUnbound("u0", ub)
			p := serve(t, c, serveOptions{wrap: []string{"sh", "-c", "umask " + umask + "; exec \"$@\"", "sh"}})
			check(t, c.socket, os.Getuid(), os.Getgid())
			if _, _, err := lookup(p.client(t), "a.delve.test", "A"); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("as another user", func(t *testing.T) {
		t.Parallel()
		if os.Getuid() != 0 {
			t.Skip("needs root to start the daemon as nobody")
		}
		const nobody = 65534
		bin := delveBinary(t, "")
		for dir := filepath.Dir(bin); dir != "/" && dir != os.TempDir(); dir = filepath.Dir(dir) {
			_ = os.Chmod(dir, 0o755) // the binary's directory, for nobody to run it
		}
		c := newConf(t)
		c.addUnbound("u0", ub)
		if err := os.Chmod(c.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(c.dir, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		p := serve(t, c, serveOptions{bin: bin, attrs: &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}})
		check(t, c.socket, nobody, nobody)
		if _, _, err := lookup(p.client(t), "a.delve.test", "A"); err != nil {
			t.Fatal(err)
		}
		// A user in neither the owner nor the group: the rpcd bridge run as that user is refused.
		cmd := exec.Command(bin, "rpcd", "call", "status")
		cmd.Env = append(os.Environ(), "DELVE_SOCKET="+c.socket)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody - 1, Gid: nobody - 1}}
		cmd.Stdin = strings.NewReader("{}")
		out, err := cmd.Output()
		if err != nil || !strings.Contains(string(out), `"code":"daemon_down"`) || !strings.Contains(string(out), "permission denied") {
			t.Fatalf("a stranger calling status: %s %v", out, err)
		}
	})
}

// TestWebSocketWithoutTokenRefused: a WebSocket on an address that is not loopback needs a token;
// without one the daemon does not start (exit 2, naming the option), and a reload that asks for
// it is refused while the old WebSocket keeps serving. (ws.TestLoopbackOnlyWithoutToken covers
// ws.Listen and Serve; uci.TestLoadBadValues the file check.)
func TestWebSocketWithoutTokenRefused(t *testing.T) {
	t.Parallel()
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	port, err := testenv.FreePort("tcp")
	if err != nil {
		t.Fatal(err)
	}
	const want = "delve.main.websocket_token: must be set because websocket %s is not a loopback address"
	for _, addr := range []string{"0.0.0.0:" + strconv.Itoa(port), "[::]:" + strconv.Itoa(port)} {
		c := newConf(t)
		c.addUnbound("u0", ub)
		c.main = []string{"option websocket '" + addr + "'"}
		p := startProc(t, c.write(t), serveOptions{})
		if code := p.wait(t, 15*time.Second); code != 2 || !strings.Contains(p.log.String(), fmt.Sprintf(want, addr)) {
			t.Fatalf("%s: exit %d, log %q", addr, code, p.log.String())
		}
		if conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second); err == nil {
			conn.Close()
			t.Fatalf("something listens on %s", addr)
		}
	}

	c := newConf(t)
	c.addUnbound("u0", ub)
	loop := "127.0.0.1:" + strconv.Itoa(port)
	c.main = []string{"option websocket '" + loop + "'"}
	p := serve(t, c, serveOptions{})
	c.main = []string{"option websocket '0.0.0.0:" + strconv.Itoa(port) + "'"}
	c.write(t)
	err = call(p.client(t), "reload", nil, nil)
	wantCode(t, err, api.CodeConfig, fmt.Sprintf(want, "0.0.0.0:"+strconv.Itoa(port)))
	ws := wsDial(t, loop, nil)
	if m := wsCall(t, ws, `{"jsonrpc":"2.0","id":1,"method":"status"}`); m.Error != nil {
		t.Fatalf("the old WebSocket stopped serving: %+v", m.Error)
	}
}

// TestNoSecretInLogs: the WebSocket token never appears in the daemon's log, at debug level, in
// anything a client or a bad configuration file can make it log: refused and accepted
// WebSocket clients, malformed HTTP requests carrying the token, reloads of broken files that
// hold it (by the method and by SIGHUP), a token change. Nor does status show it.
func TestNoSecretInLogs(t *testing.T) {
	t.Parallel()
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	secret := func() string {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		return "tok" + hex.EncodeToString(b)
	}
	token, token2 := secret(), secret()
	port, err := testenv.FreePort("tcp")
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	c := newConf(t)
	c.addUnbound("u0", ub)
	withToken := func(tok string) []string {
		return []string{"option log_level 'debug'", "option websocket '" + addr + "'", "option websocket_token '" + tok + "'"}
	}
	c.main = withToken(token)
	p := serve(t, c, serveOptions{})
	cl := p.client(t)
	good := c.text(t)

	// WebSocket clients: none, a wrong and the right token, as header and as query.
	for _, h := range []http.Header{nil, {"Authorization": {"Bearer wrong" + token}}, {"Authorization": {"Bearer " + token[:len(token)-1]}}} {
		if conn, resp, err := websocket.DefaultDialer.Dial("ws://"+addr+"/", h); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			if conn != nil {
				conn.Close()
			}
			t.Fatalf("header %v: %v %v", h, resp, err)
		}
	}
	for _, u := range []string{"ws://" + addr + "/?token=" + token, "ws://" + addr + "/?token=x" + token} {
		if conn, _, err := websocket.DefaultDialer.Dial(u, nil); err == nil {
			wsCall(t, conn, `{"jsonrpc":"2.0","id":1,"method":"lookup","params":{"name":"a.delve.test"}}`)
			conn.Close()
		}
	}
	ws := wsDial(t, addr, http.Header{"Authorization": {"Bearer " + token}})
	if m := wsCall(t, ws, `{"jsonrpc":"2.0","id":1,"method":"lookup","params":{"name":"`+token+`.delve.test"}}`); m.Error != nil {
		t.Fatalf("lookup over the WebSocket: %+v", m.Error)
	}
	// Malformed requests that carry the token.
	for _, req := range []string{
		"GET /?token=" + token + "\r\n\r\n",
		"GET/?token=" + token + " HTTP/1.1\r\nHost: " + addr + "\r\n\r\n",
		"GET /?token=" + token + " HTTP/1.1 extra\r\nHost: " + addr + "\r\n\r\n",
		"GET /?token=" + token + " HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: Bearer " + token + "\r\nBad Header\r\n\r\n",
		"GET /nowhere?token=" + token + " HTTP/1.1\r\nHost: " + addr + "\r\n\r\n",
		"GET /?token=" + token + " HTTP/1.1\r\nHost: evil.example\r\n\r\n",
		"GET /?token=" + token + " HTTP/1.1\r\nHost: " + addr + "\r\nOrigin: http://evil.example\r\n\r\n",
		"GET /?token=" + token + " HTTP/2.0\r\nHost: " + addr + "\r\n\r\n",
		"GET /?token=%zz" + token + " HTTP/1.1\r\nHost: " + addr + "\r\n\r\n",
	} {
		rawHTTP(t, addr, req)
	}
	// Broken files that hold the token, by the reload method and by SIGHUP.
	broken := []string{
		strings.Replace(good, "'"+token+"'", "'"+token, 1),               // unterminated quote
		strings.Replace(good, "'"+token+"'", `"`+token, 1),               // unterminated double quote
		strings.Replace(good, "'"+token+"'", "'"+token+"' extra", 1),     // too many arguments
		strings.Replace(good, "'"+token+"'", token[:9]+" "+token[9:], 1), // a space, unquoted
		strings.Replace(good, "option websocket_token '"+token+"'", "list websocket_token '"+token+"'\n\tlist websocket_token '"+token2+"'", 1),
		strings.Replace(strings.Replace(good, "option websocket_token", "option websocket_tokn", 1), "option websocket '"+addr+"'", "option websocket '0.0.0.0:"+strconv.Itoa(port)+"'", 1),
		good + "\x00" + token,
		"config delve 'main'\n\toption websocket_token '" + token + "'\n\toption enabled '0'\n",
	}
	for i, text := range broken {
		if err := os.WriteFile(c.path(), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		err := call(cl, "reload", nil, nil)
		if codeOf(err) != api.CodeConfig {
			t.Fatalf("broken file %d: reload %v", i, err)
		}
		if strings.Contains(err.Error(), token) {
			t.Errorf("broken file %d: the reload error shows the token: %v", i, err)
		}
		p.signal(t, syscall.SIGHUP)
		p.waitCount(t, "reload refused", i+1)
	}
	// A good reload to another token, and status.
	c.main = withToken(token2)
	c.write(t)
	tokenChanged := call(cl, "reload", nil, nil)
	if tokenChanged != nil && (strings.Contains(tokenChanged.Error(), token) || strings.Contains(tokenChanged.Error(), token2)) {
		t.Errorf("the reload error shows a token: %v", tokenChanged)
	}
	var st map[string]any
	if err := call(cl, "status", nil, &st); err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprint(st); strings.Contains(s, token) || strings.Contains(s, token2) {
		t.Errorf("status shows a token: %s", s)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	log := p.log.String()
	if !strings.Contains(log, "level=DEBUG") {
		t.Fatalf("nothing was logged at debug level:\n%s", log)
	}
	for _, tok := range []string{token, token2} {
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, tok) {
				t.Errorf("a log line shows the token: %s", line)
			}
		}
	}
	t.Logf("%d log lines, none with the token", strings.Count(log, "\n"))
	t.Run("a reload changes the token", func(t *testing.T) {
		if tokenChanged != nil {
			t.Fatalf("a reload that changes only websocket_token is refused: %v", tokenChanged)
		}
	})
}

// rawHTTP sends one raw request and reads what comes back, with a bound.
func rawHTTP(t *testing.T, addr, req string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	_, _ = conn.Write([]byte(req))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return err.Error()
	}
	resp.Body.Close()
	return resp.Status
}

type wsMsg struct {
	ID     []byte `json:"-"`
	Result any    `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    struct {
			Code string `json:"code"`
		} `json:"data"`
	} `json:"error"`
}

func wsDial(t testing.TB, addr string, h http.Header) *websocket.Conn {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/", h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// wsCall sends one message and reads one.
func wsCall(t testing.TB, conn *websocket.Conn, msg string) wsMsg {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	var m wsMsg
	if err := conn.ReadJSON(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestUpstreamTLSNeverDowngraded: an upstream that offers only TLS 1.0 and 1.1 is refused; so is
// a plain DNS server on the DoT port, whether it answers the ClientHello with DNS or waits; in
// no case does a query leave in clear text: the servers see a TLS ClientHello and nothing of
// the name asked. (Certificate faults and pins: upstream.TestTLSFailures and TestPins; replies
// whose ID or question do not match: upstream.TestSpoofedRepliesDropped and the "spoofs" case of
// TestFaultyUpstreams.)
func TestUpstreamTLSNeverDowngraded(t *testing.T) {
	t.Parallel()
	const qname = "leakcheck.example"
	wire := []byte("\x09leakcheck\x07example") // how the name would look in a DNS query
	old := newDotServer(t, dotOptions{tune: func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 }}, healthy)
	chatty := newCapture(t, "", func(first []byte) []byte {
		// A plain DNS server answering what it took for a query: FORMERR, ID from the bytes.
		m := new(dns.Msg)
		m.Id = uint16(first[2])<<8 | uint16(first[3])
		m.Response, m.Rcode = true, dns.RcodeFormatError
		raw, _ := m.Pack()
		return append([]byte{0, byte(len(raw))}, raw...)
	})
	plain := testenv.UnboundT(t, testenv.UnboundOptions{Plain: true})
	quiet := newCapture(t, plain.PlainAddr(), nil) // a real plain-DNS server behind the capture

	cases := []struct {
		name string
		up   upstreamConf
		cap  *capture
		want string // in the lookup error
	}{
		{"TLS 1.0 and 1.1 only", old.upstream("old"), nil, "TLS handshake failed: the server offers only TLS versions older than 1.2, which delve refuses (RFC 8996); use a server that speaks TLS 1.2 or 1.3"},
		{"plain DNS that answers", upstreamConf{name: "chatty", port: chatty.port(), tlsName: testenv.TLSName, ca: old.ca.CertPEM}, chatty,
			"TLS handshake failed: the server answered in plain text, not TLS; use a DNS-over-TLS server's address and port (853), not a plain DNS one"},
		{"plain DNS that waits (unbound)", upstreamConf{name: "quiet", port: quiet.port(), tlsName: testenv.TLSName, ca: old.ca.CertPEM}, quiet,
			// The lookups time out (2 s) while the dial goes on; a lookup's deadline is not the
			// upstream's failure (the failure model, internal/resolver), the dial that cannot
			// finish within its own 5 s is, and the last lookup, still waiting for it, names it.
			"the TLS handshake did not finish within the dial timeout (5s) although TCP connected; check that port " + strconv.Itoa(quiet.port()) + " serves DNS over TLS and is not overloaded"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newConf(t)
			c.ups = []upstreamConf{tc.up}
			p := serve(t, c, serveOptions{})
			cl := p.client(t)
			var errs []string
			for range 3 {
				_, _, err := lookup(cl, qname, "A")
				if err == nil {
					t.Fatal("a lookup succeeded")
				}
				errs = append(errs, err.Error())
			}
			// The first lookups fail with the cause (or, waiting, time out); once the upstream is
			// down, every error names it.
			if !strings.Contains(errs[len(errs)-1], tc.want) {
				t.Fatalf("the last error does not say %q: %q", tc.want, errs)
			}
			st := status(t, cl)
			if !strings.Contains(st.Upstreams[0].LastError, tc.want) {
				t.Fatalf("status last_error %q does not say %q", st.Upstreams[0].LastError, tc.want)
			}
			if st.Upstreams[0].ConnsOpened != 0 {
				t.Fatalf("%d connections counted as open", st.Upstreams[0].ConnsOpened)
			}
			if tc.cap != nil {
				got := tc.cap.bytes()
				if len(got) == 0 || got[0] != 0x16 {
					t.Fatalf("the server saw %q first, not a TLS handshake record", got[:min(len(got), 16)])
				}
				if bytes.Contains(bytes.ToLower(got), wire) {
					t.Fatalf("the name asked went out in clear text")
				}
			}
			if tc.name == "TLS 1.0 and 1.1 only" && old.queries.Load() != 0 {
				t.Fatalf("the old server read %d queries", old.queries.Load())
			}
			t.Logf("errors: %q; last_error %q", errs, st.Upstreams[0].LastError)
		})
	}
}

// capture is a TCP server that records every byte it receives and, when reply is set, answers
// the first read with what reply makes of it; with target set it forwards to target instead.
type capture struct {
	ln     net.Listener
	reply  func(first []byte) []byte
	target string

	mu  sync.Mutex
	got []byte
	wg  sync.WaitGroup
}

func newCapture(t testing.TB, target string, reply func([]byte) []byte) *capture {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &capture{ln: ln, reply: reply, target: target}
	var conns sync.Map
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(nc, true)
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				defer nc.Close()
				c.serve(nc)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		c.wg.Wait()
	})
	return c
}

func (c *capture) serve(nc net.Conn) {
	var out net.Conn
	if c.target != "" {
		var err error
		if out, err = net.Dial("tcp", c.target); err != nil {
			return
		}
		defer out.Close()
		c.wg.Add(1)
		go func() { defer c.wg.Done(); _, _ = io.Copy(nc, out); nc.Close() }()
	}
	r := bufio.NewReader(nc)
	buf := make([]byte, 4096)
	first := true
	for {
		n, err := r.Read(buf)
		if n > 0 {
			c.mu.Lock()
			c.got = append(c.got, buf[:n]...)
			c.mu.Unlock()
			if out != nil {
				_, _ = out.Write(buf[:n])
			} else if first && c.reply != nil && n >= 4 {
				_, _ = nc.Write(c.reply(buf[:n]))
			}
			first = false
		}
		if err != nil {
			return
		}
	}
}

func (c *capture) port() int { return c.ln.Addr().(*net.TCPAddr).Port }

func (c *capture) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.got...)
}
