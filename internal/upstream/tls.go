package upstream

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
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
	Upstream string // "name (address:port)"
	Kind     TLSKind
	Err      error
}

func (e *TLSError) Error() string {
	var what string
	switch e.Kind {
	case TLSNameMismatch:
		what = "certificate name mismatch"
	case TLSUnknownAuthority:
		what = "certificate signed by an unknown authority"
	case TLSExpired:
		what = "certificate has expired"
	case TLSNotYetValid:
		what = "certificate is not valid yet (is the system clock right?)"
	case TLSPinMismatch:
		what = "no certificate key matches the configured SPKI pins"
	case TLSInvalid:
		what = "certificate is invalid"
	default:
		what = "TLS handshake failed"
	}
	return fmt.Sprintf("upstream %s: %s: %v", e.Upstream, what, e.Err)
}

func (e *TLSError) Unwrap() error { return e.Err }

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
		return u.tlsErr(TLSHandshake, errors.New("the server sent no certificate"))
	}
	if u.opts.TLSName == "" {
		// Pin-only profile: nothing but the pin authenticates the server, and the handshake proves
		// possession of the leaf key only, so only the leaf may match.
		if !u.pinned(certs[:1]) {
			return u.tlsErr(TLSPinMismatch, ErrPinMismatch)
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
	return u.tlsErr(TLSPinMismatch, ErrPinMismatch)
}

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
	chains, err := certs[0].Verify(opts)
	if err == nil {
		return chains, nil
	}
	kind := classify(err, certs, now)
	if kind == TLSNotYetValid && u.opts.ClockUnsynced != nil && u.opts.ClockUnsynced(now) {
		// A router without a real-time clock boots in the past; NTP may need DNS to fix that.
		// Accept a chain whose only fault is "not valid yet" by checking it at the moment it
		// becomes valid; expiry and everything else are still checked.
		opts.CurrentTime = latestNotBefore(certs)
		if chains, err2 := certs[0].Verify(opts); err2 == nil {
			if u.opts.OnClockTolerance != nil {
				u.opts.OnClockTolerance(u.label(), now, opts.CurrentTime)
			}
			return chains, nil
		}
	}
	return nil, u.tlsErr(kind, err)
}

func classify(err error, certs []*x509.Certificate, now time.Time) TLSKind {
	var hn x509.HostnameError
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &hn):
		return TLSNameMismatch
	case errors.As(err, &ua):
		return TLSUnknownAuthority
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		for _, c := range certs {
			if now.Before(c.NotBefore) {
				return TLSNotYetValid
			}
		}
		return TLSExpired
	}
	return TLSInvalid
}

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

func (u *Upstream) tlsErr(kind TLSKind, err error) *TLSError {
	return &TLSError{Upstream: u.label(), Kind: kind, Err: err}
}
