package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"
)

// CA is a throwaway certificate authority that lives only as long as a test. Its key never
// leaves memory; its certificate can be written out for clients such as kdig (+tls-ca=FILE).
type CA struct {
	// Cert is the self-signed CA certificate.
	Cert *x509.Certificate
	// CertPEM is Cert in PEM form.
	CertPEM []byte

	key *ecdsa.PrivateKey
}

// NewCA makes a self-signed CA named commonName, valid from 30 days ago to a year from now, so
// that leaves dated in the past or the future still chain to a valid CA.
func NewCA(commonName string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"delve tests"}},
		NotBefore:             now.Add(-30 * 24 * time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("signing CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing CA certificate: %w", err)
	}
	return &CA{
		Cert:    cert,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:     key,
	}, nil
}

// Pool returns a new pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// WriteFile writes the CA certificate in PEM form to path (mode 0644).
func (ca *CA) WriteFile(path string) error {
	if err := os.WriteFile(path, ca.CertPEM, 0o644); err != nil {
		return fmt.Errorf("writing CA certificate: %w", err)
	}
	return nil
}

// ClientConfig returns a TLS client configuration that trusts only this CA and expects serverName.
func (ca *CA) ClientConfig(serverName string) *tls.Config {
	return &tls.Config{RootCAs: ca.Pool(), ServerName: serverName, MinVersion: tls.VersionTLS12}
}

// IssueOptions says what a leaf certificate is for. Zero times mean now-1h and now+24h.
type IssueOptions struct {
	// DNSNames and IPs become the subject alternative names; at least one is needed.
	DNSNames []string
	IPs      []net.IP
	// NotBefore and NotAfter bound the validity; set them in the past or the future to make an
	// expired or a not-yet-valid certificate.
	NotBefore time.Time
	NotAfter  time.Time
}

// Leaf is a server certificate issued by a CA, with its key.
type Leaf struct {
	// Certificate is ready for tls.Config.Certificates (leaf only; clients hold the CA).
	Certificate tls.Certificate
	// Cert is the parsed leaf.
	Cert *x509.Certificate
	// CertPEM is the leaf certificate and KeyPEM its PKCS #8 private key, both PEM.
	CertPEM []byte
	KeyPEM  []byte
	// Pin is the RFC 7858 §4.2 SPKI pin of the key: standard base64 of SHA-256 over the DER
	// SubjectPublicKeyInfo, as given to kdig +tls-pin= or delve --pin.
	Pin string
}

// Issue signs a new leaf certificate with a fresh ECDSA P-256 key.
func (ca *CA) Issue(opts IssueOptions) (*Leaf, error) {
	if len(opts.DNSNames) == 0 && len(opts.IPs) == 0 {
		return nil, errors.New("issuing certificate: no DNS name or IP address given")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating leaf key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	notBefore, notAfter := opts.NotBefore, opts.NotAfter
	if notBefore.IsZero() {
		notBefore = now.Add(-time.Hour)
	}
	if notAfter.IsZero() {
		notAfter = now.Add(24 * time.Hour)
	}
	cn := ""
	if len(opts.DNSNames) > 0 {
		cn = opts.DNSNames[0]
	} else {
		cn = opts.IPs[0].String()
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     opts.DNSNames,
		IPAddresses:  opts.IPs,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("signing leaf certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing leaf certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding leaf key: %w", err)
	}
	return &Leaf{
		Certificate: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert},
		Cert:        cert,
		CertPEM:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:      pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		Pin:         SPKIPin(cert),
	}, nil
}

// WriteFiles writes the leaf certificate and its key in PEM form; the key file is mode 0600.
func (l *Leaf) WriteFiles(certPath, keyPath string) error {
	if err := os.WriteFile(certPath, l.CertPEM, 0o644); err != nil {
		return fmt.Errorf("writing certificate: %w", err)
	}
	if err := os.WriteFile(keyPath, l.KeyPEM, 0o600); err != nil {
		return fmt.Errorf("writing key: %w", err)
	}
	return nil
}

// SPKIPin returns the RFC 7858 §4.2 pin of cert's public key: standard base64 of the SHA-256 of
// the DER SubjectPublicKeyInfo.
func SPKIPin(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("making serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}
