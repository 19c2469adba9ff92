package upstream

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/delvedns/delve/internal/version"
)

// TLSKind classifies why a server failed authentication, so callers can name the cause.
type TLSKind int

// TLS failure kinds.
const (
	TLSHandshake        TLSKind = iota // the handshake itself failed (protocol, version, alert)
	TLSNameMismatch                    // the certificate is not valid for the configured tls_name
	TLSUnknownAuthority                // the chain does not lead to a trusted root
	TLSExpired                         // a certificate in the chain has expired
	TLSNotYetValid                     // a certificate in the chain is not valid yet (often: the clock is wrong)
	TLSPinMismatch                     // no key in the chain matches a configured SPKI pin
	TLSInvalid                         // any other certificate problem
)

// TLSError is a failure to set up an authenticated TLS session with an upstream. It is never
// retried in clear text (RFC 7858 §3.1, RFC 8310 §5 strict profile).
type TLSError struct {
	_        [0]func() // never compared: the binary then carries no equality function for it
	Upstream string    // "name (address:port)"
	Kind     TLSKind
	Err      error
	// Text is the sentence after "upstream NAME: ": the cause, with what the error itself says
	// (names, dates, keys), and what to do. Empty: the kind's label and Err.
	Text string
}

func (e *TLSError) Error() string {
	if e.Text != "" {
		return "upstream " + e.Upstream + ": " + e.Text
	}
	return fmt.Sprintf("upstream %s: %s: %v", e.Upstream, e.Kind.label(), e.Err)
}

func (e *TLSError) Unwrap() error { return e.Err }

// label is the kind's name, the start of each error text.
func (k TLSKind) label() string {
	switch k {
	case TLSNameMismatch:
		return "certificate name mismatch"
	case TLSUnknownAuthority:
		return "certificate signed by an unknown authority"
	case TLSExpired:
		return "certificate expired"
	case TLSNotYetValid:
		return "certificate not valid yet"
	case TLSPinMismatch:
		return "SPKI pin mismatch"
	case TLSInvalid:
		return "certificate invalid"
	}
	return "TLS handshake failed"
}

// ErrPinMismatch is wrapped by a TLSError of kind TLSPinMismatch.
var ErrPinMismatch = errors.New("SPKI pin mismatch")

// SPKIPin returns the RFC 7858 §4.2 pin of a certificate: SHA-256 over its DER SubjectPublicKeyInfo.
func SPKIPin(cert *x509.Certificate) [32]byte {
	return sha256.Sum256(cert.RawSubjectPublicKeyInfo)
}

func (u *Upstream) tlsConfig() *tls.Config {
	return &tls.Config{
		ServerName: u.serverName(),
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"dot"},
		// The chain is verified in VerifyConnection instead of by crypto/tls, so that pins, the
		// "not yet valid" tolerance for routers without a clock, and precise error kinds all live
		// in one place. VerifyConnection runs on every handshake, resumed ones included.
		InsecureSkipVerify: true, //nolint:gosec // verified in verifyConnection
		VerifyConnection:   u.verifyConnection,
		ClientSessionCache: tls.NewLRUClientSessionCache(4),
	}
}

// serverName is the SNI sent: the authentication name, or nothing for a pin-only upstream
// (an IP address is not a valid SNI value).
func (u *Upstream) serverName() string {
	return u.opts.TLSName
}

func (u *Upstream) verifyConnection(cs tls.ConnectionState) error {
	certs := cs.PeerCertificates
	if len(certs) == 0 {
		return u.tlsErr(TLSHandshake, errNoCertificate)
	}
	if u.opts.TLSName == "" {
		// Pin-only profile: nothing but the pin authenticates the server, and the handshake proves
		// possession of the leaf key only, so only the leaf may match.
		if !u.pinned(certs[:1]) {
			return u.pinErr(certs[0])
		}
		return nil
	}
	chains, err := u.verifyChain(certs, u.now())
	if err != nil {
		return err
	}
	if len(u.pins) == 0 {
		return nil
	}
	// Name and pins configured: both must pass (RFC 8310 §6). Any key of a verified chain may
	// match, so a pin on the CA's key survives a leaf renewal.
	for _, chain := range chains {
		if u.pinned(chain) {
			return nil
		}
	}
	return u.pinErr(certs[0])
}

// errNoCertificate is wrapped by a TLSError of kind TLSHandshake.
var errNoCertificate = errors.New("the server sent no certificate")

func (u *Upstream) verifyChain(certs []*x509.Certificate, now time.Time) ([][]*x509.Certificate, error) {
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{
		DNSName:       u.opts.TLSName,
		Roots:         u.opts.RootCAs,
		Intermediates: inter,
		CurrentTime:   now,
	}
	if u.opts.ClockUnsynced != nil && u.opts.ClockUnsynced(now) {
		// A router without a real-time clock boots in the past, and NTP may need DNS to fix that.
		// The clock is earlier than this build, so the real time is at least the build time: the
		// chain must be valid at some moment from then on, the first of which is the later of
		// the build time and the chain's latest NotBefore. Checked there, a chain whose only
		// fault at the clock's time is "not valid yet" passes, and one that expired before the
		// build does not, whatever the clock says.
		floor := version.Built()
		opts.CurrentTime = latestNotBefore(certs)
		if opts.CurrentTime.Before(floor) {
			opts.CurrentTime = floor
		}
		chains, err := certs[0].Verify(opts)
		if err != nil {
			return nil, u.chainErr(err, certs, opts.CurrentTime, true)
		}
		if latestNotBefore(certs).After(now) && u.opts.OnClockTolerance != nil {
			u.opts.OnClockTolerance(u.label(), now, opts.CurrentTime)
		}
		return chains, nil
	}
	chains, err := certs[0].Verify(opts)
	if err != nil {
		return nil, u.chainErr(err, certs, now, false)
	}
	return chains, nil
}

// chainErr turns a failed verification at time at into a TLSError whose text says which
// certificate failed and why, and what to do. unsynced: at is not the clock's time but the first
// moment the chain could be valid after this build (tolerate_unset_clock).
func (u *Upstream) chainErr(err error, certs []*x509.Certificate, at time.Time, unsynced bool) *TLSError {
	var hn x509.HostnameError
	var ua x509.UnknownAuthorityError
	var sr x509.SystemRootsError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &hn):
		return u.tlsText(TLSNameMismatch, err, fmt.Sprintf("it is valid for %s, not for %q; set tls_name (or #NAME after @ADDRESS on the command line) to the server's own name",
			certNames(hn.Certificate), hn.Host))
	case errors.As(err, &sr):
		return u.tlsText(TLSUnknownAuthority, err, "no system roots were found to check it against; on OpenWrt install the ca-bundle package, or pass --ca FILE or set ca_file to a PEM bundle")
	case errors.As(err, &ua):
		issuer := "its issuer"
		if ua.Cert != nil && ua.Cert.Issuer.CommonName != "" {
			issuer = strconv.Quote(ua.Cert.Issuer.CommonName)
		} else if ua.Cert != nil {
			issuer = strconv.Quote(ua.Cert.Issuer.String())
		}
		if u.opts.RootCAs == nil {
			return u.tlsText(TLSUnknownAuthority, err, issuer+" is not among the system roots; on OpenWrt install the ca-bundle package, or pass --ca FILE or set ca_file to the CA that signed it")
		}
		roots := "the CA file " + u.opts.CAFile
		if u.opts.CAFile == "" {
			roots = "the configured roots"
		}
		return u.tlsText(TLSUnknownAuthority, err, issuer+" is not in "+roots+"; pass --ca FILE or set ca_file to the CA that signed it")
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		for _, c := range certs {
			if at.Before(c.NotBefore) {
				return u.tlsText(TLSNotYetValid, err, u.notYetValid(c, at))
			}
		}
		c := ci.Cert
		for _, cc := range certs {
			if at.After(cc.NotAfter) {
				c = cc
				break
			}
		}
		if unsynced {
			return u.tlsText(TLSExpired, err, fmt.Sprintf("%s expired at %s, before this build of delve (%s), so it has expired whatever the unset clock says; the server must renew it",
				certLabel(c), stamp(c.NotAfter), stamp(version.Built())))
		}
		return u.tlsText(TLSExpired, err, fmt.Sprintf("%s expired at %s, before the system clock's %s; the server must renew it (or, if the clock is wrong, set it)",
			certLabel(c), stamp(c.NotAfter), stamp(at)))
	}
	return u.tlsText(TLSInvalid, err, strings.TrimPrefix(err.Error(), "x509: "))
}

// notYetValid says that c is not valid at at, the clock's time, and what to do.
func (u *Upstream) notYetValid(c *x509.Certificate, at time.Time) string {
	todo := "set the system clock (NTP), or, on a router without a real-time clock, set tolerate_unset_clock"
	if u.opts.ClockUnsynced != nil {
		todo = "set the system clock (NTP): tolerate_unset_clock applies only while the clock is earlier than this build of delve (" + stamp(version.Built()) + ")"
	}
	return fmt.Sprintf("%s is valid only from %s, after the system clock's %s; %s", certLabel(c), stamp(c.NotBefore), stamp(at), todo)
}

// pinErr is the TLSError of a chain none of whose keys matches a pin; it names the server's key,
// for comparison with the pin the server's operator publishes.
func (u *Upstream) pinErr(leaf *x509.Certificate) *TLSError {
	pin := SPKIPin(leaf)
	return u.tlsText(TLSPinMismatch, ErrPinMismatch, fmt.Sprintf("no configured pin matches a key of the certificate chain (the server's own key is sha256/%s); update pin only if its operator changed the key",
		base64.StdEncoding.EncodeToString(pin[:])))
}

// handshakeErr is the TLSError of a handshake that failed before a certificate was checked.
func (u *Upstream) handshakeErr(err error) *TLSError {
	var rh tls.RecordHeaderError
	var oe *net.OpError
	msg := err.Error()
	switch {
	case errors.Is(err, errNoCertificate):
		return u.tlsText(TLSHandshake, err, "the server sent no certificate; use a DNS-over-TLS server's address and port")
	case errors.As(err, &rh):
		return u.tlsText(TLSHandshake, err, "the server answered in plain text, not TLS; use a DNS-over-TLS server's address and port (853), not a plain DNS one")
	case strings.Contains(msg, "protocol version not supported"), strings.Contains(msg, "unsupported protocol version"):
		return u.tlsText(TLSHandshake, err, "the server offers only TLS versions older than 1.2, which delve refuses (RFC 8996); use a server that speaks TLS 1.2 or 1.3")
	case errors.As(err, &oe) && oe.Op == "remote error":
		return u.tlsText(TLSHandshake, err, "the server refused it with the alert "+strconv.Quote(strings.TrimPrefix(oe.Err.Error(), "tls: "))+"; check that the address and port are a DNS-over-TLS server's and its tls_name is right")
	}
	return u.tlsText(TLSHandshake, err, strings.TrimPrefix(msg, "tls: "))
}

// certLabel names a certificate in an error: its subject's common name, else its first name.
func certLabel(c *x509.Certificate) string {
	switch {
	case c == nil:
		return "a certificate"
	case c.Subject.CommonName != "":
		return "certificate " + strconv.Quote(c.Subject.CommonName)
	case len(c.DNSNames) > 0:
		return "certificate for " + strconv.Quote(c.DNSNames[0])
	}
	return "certificate " + strconv.Quote(c.Subject.String())
}

// certNames lists the names a certificate is valid for, as x509's HostnameError does.
func certNames(c *x509.Certificate) string {
	if c == nil {
		return "no name"
	}
	var names []string
	for _, n := range c.DNSNames {
		names = append(names, strconv.Quote(n))
	}
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "no name (it has no subject alternative names)"
	}
	return strings.Join(names, ", ")
}

// stamp formats a time in an error: to the minute, in UTC.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

func latestNotBefore(certs []*x509.Certificate) time.Time {
	var t time.Time
	for _, c := range certs {
		if c.NotBefore.After(t) {
			t = c.NotBefore
		}
	}
	return t.Add(time.Second)
}

func (u *Upstream) pinned(certs []*x509.Certificate) bool {
	for _, c := range certs {
		sum := SPKIPin(c)
		for _, p := range u.pins {
			if subtle.ConstantTimeCompare(sum[:], p[:]) == 1 {
				return true
			}
		}
	}
	return false
}

// tlsErr is the TLSError of a failed handshake (kind TLSHandshake) or of a kind with no more to
// say than its label.
func (u *Upstream) tlsErr(kind TLSKind, err error) *TLSError {
	if kind == TLSHandshake {
		return u.handshakeErr(err)
	}
	return &TLSError{Upstream: u.label(), Kind: kind, Err: err}
}

func (u *Upstream) tlsText(kind TLSKind, err error, text string) *TLSError {
	return &TLSError{Upstream: u.label(), Kind: kind, Err: err, Text: kind.label() + ": " + text}
}
