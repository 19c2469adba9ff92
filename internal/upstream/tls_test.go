package upstream

import (
	"crypto/tls"
	"errors"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/testenv"
	"github.com/delvedns/delve/internal/version"
)

// TestTLSErrorTexts: each TLS failure is one sentence that names its cause with what the
// certificate or the server said (names, dates, the CA file, the server's key) and what to do,
// with no phrase said twice (the unknown-authority error used to read "certificate signed by an
// unknown authority: x509: certificate signed by unknown authority").
func TestTLSErrorTexts(t *testing.T) {
	t.Parallel()
	// The clock is fixed so that the dates in the texts are known; the test CA is valid around it.
	clock := time.Now().Truncate(time.Minute).Add(30 * time.Second)
	fixed := func(o *Options) { o.Now = func() time.Time { return clock } }
	day := 24 * time.Hour
	other := mustCA(t)
	cases := []struct {
		name string
		cert certOpts
		tune func(*Options)
		kind TLSKind
		want func(srv *faultServer) string // the text after "upstream NAME (ADDRESS:PORT): "
	}{
		{"name mismatch", certOpts{names: []string{"other.delve.test", "two.delve.test"}}, nil, TLSNameMismatch, func(*faultServer) string {
			return `certificate name mismatch: it is valid for "other.delve.test", "two.delve.test", 127.0.0.1, not for "dot.delve.test"; set tls_name (or #NAME after @ADDRESS on the command line) to the server's own name`
		}},
		{"unknown authority, CA file", certOpts{}, func(o *Options) { o.RootCAs, o.CAFile = other.Pool(), "/etc/delve/ca.pem" }, TLSUnknownAuthority, func(*faultServer) string {
			return `certificate signed by an unknown authority: "delve test CA" is not in the CA file /etc/delve/ca.pem; pass --ca FILE or set ca_file to the CA that signed it`
		}},
		{"unknown authority, system roots", certOpts{}, func(o *Options) { o.RootCAs = nil }, TLSUnknownAuthority, func(*faultServer) string {
			return `certificate signed by an unknown authority: "delve test CA" is not among the system roots; on OpenWrt install the ca-bundle package, or pass --ca FILE or set ca_file to the CA that signed it`
		}},
		{"expired", certOpts{notBefore: clock.Add(-3 * day), notAfter: clock.Add(-day)}, nil, TLSExpired, func(*faultServer) string {
			return `certificate expired: certificate "dot.delve.test" expired at ` + stamp(clock.Add(-day)) + `, before the system clock's ` + stamp(clock) + `; the server must renew it (or, if the clock is wrong, set it)`
		}},
		{"not yet valid", certOpts{notBefore: clock.Add(day), notAfter: clock.Add(3 * day)}, nil, TLSNotYetValid, func(*faultServer) string {
			return `certificate not valid yet: certificate "dot.delve.test" is valid only from ` + stamp(clock.Add(day)) + `, after the system clock's ` + stamp(clock) + `; set the system clock (NTP), or, on a router without a real-time clock, set tolerate_unset_clock`
		}},
		{"pin mismatch", certOpts{}, func(o *Options) { o.Pins = [][32]byte{{1}} }, TLSPinMismatch, func(srv *faultServer) string {
			return `SPKI pin mismatch: no configured pin matches a key of the certificate chain (the server's own key is sha256/` + srv.leaf.Pin + `); update pin only if its operator changed the key`
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := newFaultServer(t, c.cert, echoServe)
			u := srv.upstream(t, func(o *Options) {
				fixed(o)
				if c.tune != nil {
					c.tune(o)
				}
			})
			_, err := u.Exchange(ctxT(t, 5*time.Second), query("tls.example."))
			checkTLSText(t, err, c.kind, "upstream fault (127.0.0.1:"+strconv.Itoa(srv.port())+"): "+c.want(srv))
		})
	}
}

// TestTLSHandshakeTexts: the handshake failures that come before any certificate, from real
// servers: one that speaks plain DNS on the port, one that offers only TLS 1.0 and 1.1, one that
// refuses the handshake with an alert.
func TestTLSHandshakeTexts(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	leaf, err := ca.Issue(testenv.IssueOptions{DNSNames: []string{"dot.delve.test"}})
	if err != nil {
		t.Fatal(err)
	}
	// serve accepts connections on l (closed at cleanup) and runs each through handle.
	serve := func(l net.Listener, handle func(net.Conn)) net.Listener {
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					handle(c)
				}()
			}
		}()
		return l
	}
	tcp := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	tlsWith := func(cfg *tls.Config) net.Listener {
		cfg.Certificates = []tls.Certificate{leaf.Certificate}
		return tls.NewListener(tcp(), cfg)
	}
	handshake := func(c net.Conn) { c.(*tls.Conn).Handshake() }
	plain := func() net.Listener {
		// A plain-DNS server over TCP: it answers the first bytes it reads with a short DNS reply.
		return serve(tcp(), func(c net.Conn) {
			buf := make([]byte, 512)
			if _, err := c.Read(buf); err == nil {
				c.Write([]byte{0, 12, buf[2], buf[3], 0x81, 0x81, 0, 0, 0, 0, 0, 0, 0, 0})
			}
		})
	}
	old := func() net.Listener {
		return serve(tlsWith(&tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}), handshake)
	}
	clientCert := func() net.Listener {
		// TLS 1.2, so that the refusal comes within the handshake (1.3 sends it after).
		return serve(tlsWith(&tls.Config{MaxVersion: tls.VersionTLS12, ClientAuth: tls.RequireAnyClientCert}), handshake)
	}
	cases := []struct {
		name   string
		listen func() net.Listener
		want   string
	}{
		{"plain DNS on the port", plain, "TLS handshake failed: the server answered in plain text, not TLS; use a DNS-over-TLS server's address and port (853), not a plain DNS one"},
		{"TLS 1.0 and 1.1 only", old, "TLS handshake failed: the server offers only TLS versions older than 1.2, which delve refuses (RFC 8996); use a server that speaks TLS 1.2 or 1.3"},
		{"a client certificate required", clientCert, `TLS handshake failed: the server refused it with the alert "handshake failure"; check that the address and port are a DNS-over-TLS server's and its tls_name is right`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			l := c.listen()
			port := l.Addr().(*net.TCPAddr).Port
			u, err := New(Options{Name: "hs", Address: "127.0.0.1", Port: port, TLSName: "dot.delve.test", RootCAs: ca.Pool()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { u.Close() })
			_, err = u.Exchange(ctxT(t, 5*time.Second), query("tls.example."))
			checkTLSText(t, err, TLSHandshake, "upstream hs (127.0.0.1:"+strconv.Itoa(port)+"): "+c.want)
		})
	}
}

// TestUnsetClockChecksExpiryAtBuild (issue 20, finding 6): with tolerate_unset_clock and the
// clock at 1970, the chain is checked at the build time (version.Built), a lower bound of the
// real time: a certificate that expired before the build is refused, one valid now passes, and
// so does one that is valid only from after the build (issued after it), which is what the
// tolerance is for.
func TestUnsetClockChecksExpiryAtBuild(t *testing.T) {
	t.Parallel()
	built := version.Built()
	now := time.Now()
	if !built.Before(now) {
		t.Fatalf("version.Built() %v is not before now %v", built, now)
	}
	epoch := time.Unix(0, 0)
	var told []time.Time
	tolerate := func(o *Options) {
		o.Now = func() time.Time { return epoch }
		o.ClockUnsynced = version.ClockBeforeBuild
		o.OnClockTolerance = func(_ string, _, at time.Time) { told = append(told, at) }
	}
	cases := []struct {
		name string
		cert certOpts
		ok   bool
	}{
		{"expired in 2020, before the build", certOpts{notBefore: time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC), notAfter: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)}, false},
		{"expired a second before the build", certOpts{notBefore: built.Add(-48 * time.Hour), notAfter: built.Add(-time.Second)}, false},
		{"valid now", certOpts{notBefore: now.Add(-time.Hour), notAfter: now.Add(24 * time.Hour)}, true},
		{"valid from tomorrow", certOpts{notBefore: now.Add(24 * time.Hour), notAfter: now.Add(48 * time.Hour)}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			told = nil
			srv := newFaultServer(t, c.cert, echoServe)
			u := srv.upstream(t, tolerate)
			_, err := u.Exchange(ctxT(t, 5*time.Second), query("clock.example."))
			if c.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				// The check was at the later of the build and the certificate's start.
				want := built
				if nb := srv.leaf.Cert.NotBefore.Add(time.Second); nb.After(want) {
					want = nb
				}
				if len(told) != 1 || !told[0].Equal(want) {
					t.Fatalf("checked at %v, want once at %v", told, want)
				}
				return
			}
			checkTLSText(t, err, TLSExpired, "upstream fault (127.0.0.1:"+strconv.Itoa(srv.port())+`): certificate expired: certificate "dot.delve.test" expired at `+
				stamp(c.cert.notAfter)+", before this build of delve ("+stamp(built)+"), so it has expired whatever the unset clock says; the server must renew it")
			if len(told) != 0 {
				t.Fatal("the tolerance was reported for a refused certificate")
			}
		})
	}
}

// checkTLSText asserts that err is a *TLSError of kind, says exactly want, and is one sentence
// without a phrase of three words said twice.
func checkTLSText(t *testing.T, err error, kind TLSKind, want string) {
	t.Helper()
	var te *TLSError
	if !errors.As(err, &te) {
		t.Fatalf("err = %v, want a *TLSError", err)
	}
	if te.Kind != kind {
		t.Fatalf("kind %d, want %d: %v", te.Kind, kind, err)
	}
	if got := te.Error(); got != want {
		t.Fatalf("error text\n got: %s\nwant: %s", got, want)
	}
	if strings.Contains(te.Text, ". ") || strings.HasSuffix(te.Text, ".") {
		t.Errorf("more than one sentence: %q", te.Text)
	}
	if p := repeatedPhrase(te.Text); p != "" {
		t.Errorf("%q is said twice in %q", p, te.Text)
	}
}

// repeatedPhrase returns a sequence of three words that occurs twice in s, ignoring case,
// punctuation, numbers and quoted names, or "".
func repeatedPhrase(s string) string {
	s = regexp.MustCompile(`"[^"]*"`).ReplaceAllString(s, " ")
	words := regexp.MustCompile(`[a-z]+('[a-z]+)?`).FindAllString(strings.ToLower(s), -1)
	seen := map[string]bool{}
	for i := 0; i+3 <= len(words); i++ {
		p := strings.Join(words[i:i+3], " ")
		if seen[p] {
			return p
		}
		seen[p] = true
	}
	return ""
}

func TestRepeatedPhrase(t *testing.T) {
	if p := repeatedPhrase("certificate signed by an unknown authority: x509: certificate signed by unknown authority"); p != "certificate signed by" {
		t.Fatalf("the old unknown-authority text: found %q, want %q", p, "certificate signed by")
	}
	if p := repeatedPhrase("one two three four five"); p != "" {
		t.Fatalf("found %q in a text without repetition", p)
	}
}
