package testenv

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCAIssue(t *testing.T) {
	t.Parallel()
	ca, err := NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewCA("unknown CA")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tests := []struct {
		name    string
		issuer  *CA
		opts    IssueOptions
		verify  string
		wantErr func(error) bool
	}{
		{"valid name", ca, IssueOptions{DNSNames: []string{"dot.example.test"}}, "dot.example.test", nil},
		{"valid IP", ca, IssueOptions{IPs: []net.IP{net.IPv6loopback}}, "::1", nil},
		{"other name", ca, IssueOptions{DNSNames: []string{"other.test"}}, "dot.example.test", isErr[x509.HostnameError]},
		{"expired", ca, IssueOptions{DNSNames: []string{"dot.example.test"}, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)},
			"dot.example.test", isInvalid(x509.Expired)},
		{"not yet valid", ca, IssueOptions{DNSNames: []string{"dot.example.test"}, NotBefore: now.Add(24 * time.Hour), NotAfter: now.Add(48 * time.Hour)},
			"dot.example.test", isInvalid(x509.Expired)},
		{"unknown CA", other, IssueOptions{DNSNames: []string{"dot.example.test"}}, "dot.example.test", isErr[x509.UnknownAuthorityError]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf, err := tt.issuer.Issue(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			// Verify through a real TLS handshake on loopback, as a DoT client would.
			err = handshake(t, leaf, ca.ClientConfig(tt.verify))
			switch {
			case tt.wantErr == nil && err != nil:
				t.Errorf("handshake: %v", err)
			case tt.wantErr != nil && !tt.wantErr(err):
				t.Errorf("handshake error %v, not the expected kind", err)
			}
		})
	}
	if _, err := ca.Issue(IssueOptions{}); err == nil {
		t.Error("Issue with no names succeeded")
	}
}

func isErr[E error](err error) bool {
	var e E
	return errors.As(err, &e)
}

func isInvalid(reason x509.InvalidReason) func(error) bool {
	return func(err error) bool {
		var e x509.CertificateInvalidError
		return errors.As(err, &e) && e.Reason == reason
	}
}

// handshake serves leaf on a loopback listener and returns the client's handshake error.
func handshake(t *testing.T, leaf *Leaf, client *tls.Config) error {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{leaf.Certificate}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.SetDeadline(time.Now().Add(3 * time.Second))
		c.(*tls.Conn).Handshake()
		c.Close()
	}()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", l.Addr().String(), client)
	if err != nil {
		return err
	}
	c.Close()
	return nil
}

// TestLeafPin checks the pin against openssl's pipeline, the one RFC 7858 §4.2 users run.
func TestLeafPin(t *testing.T) {
	t.Parallel()
	RequireTool(t, "openssl", "openssl")
	ca, err := NewCA("pin CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(IssueOptions{DNSNames: []string{"pin.test"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "leaf.pem"), filepath.Join(dir, "leaf.key")
	if err := leaf.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "sh", "-c",
		`openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | openssl base64 -A`,
		"sh", certFile)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != leaf.Pin {
		t.Errorf("Pin %s, openssl says %s", leaf.Pin, got)
	}
	if SPKIPin(ca.Cert) == leaf.Pin {
		t.Error("the CA and the leaf have the same pin")
	}
	// The written files load back as a key pair, and the CA file parses.
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		t.Error(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := ca.WriteFile(caFile); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, ca.CertPEM) || !x509.NewCertPool().AppendCertsFromPEM(b) {
		t.Error("the CA file does not hold the CA certificate")
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode: %v %v", fi.Mode(), err)
	}
}

func TestFreePort(t *testing.T) {
	t.Parallel()
	for _, network := range []string{"tcp", "tcp4", "udp", "udp4", "tcp+udp", "tcp6", "udp6"} {
		t.Run(network, func(t *testing.T) {
			port, err := FreePort(network)
			if strings.HasSuffix(network, "6") && err != nil {
				if l, lerr := net.Listen("tcp6", "[::1]:0"); lerr != nil {
					t.Skipf("no IPv6 loopback here: %v", lerr)
				} else {
					l.Close()
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			if lo, hi := portRange(); port < MinPort || port < lo || port > hi {
				t.Fatalf("port %d outside %d..%d, the range outside the kernel's ephemeral ports", port, lo, hi)
			}
			host := "127.0.0.1"
			if strings.HasSuffix(network, "6") {
				host = "::1"
			}
			addr := net.JoinHostPort(host, strconv.Itoa(port))
			if strings.HasPrefix(network, "tcp") {
				l, err := net.Listen("tcp", addr)
				if err != nil {
					t.Fatalf("port %d is not free for TCP: %v", port, err)
				}
				l.Close()
			}
			if strings.HasPrefix(network, "udp") || network == "tcp+udp" {
				c, err := net.ListenPacket("udp", addr)
				if err != nil {
					t.Fatalf("port %d is not free for UDP: %v", port, err)
				}
				c.Close()
			}
		})
	}
	if _, err := FreePort("unix"); err == nil {
		t.Error("FreePort(unix) succeeded")
	}
}

// TestDeadPort: a connect to the dead port is refused, and nothing else can bind it meanwhile.
func TestDeadPort(t *testing.T) {
	port := DeadPort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatalf("a connect to the dead port %d succeeded", port)
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("a connect to the dead port %d: %v, want connection refused", port, err)
	}
	if l, err := net.Listen("tcp", addr); err == nil {
		l.Close()
		t.Fatalf("another listener could bind the dead port %d", port)
	}
}
