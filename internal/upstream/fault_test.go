package upstream

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/testenv"
)

// faultServer is an in-process TLS server whose behaviour each test scripts, for faults a real
// server will not produce on demand (out-of-order and spoofed replies, stalls, closes).
type faultServer struct {
	t     *testing.T
	ln    net.Listener
	ca    *testenv.CA
	leaf  *testenv.Leaf
	serve func(c *srvConn)

	mu     sync.Mutex
	conns  []net.Conn
	accept int
	wg     sync.WaitGroup
}

// srvConn is one accepted connection with framed DNS reads and writes.
type srvConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *srvConn) read() (*dns.Msg, []byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return nil, nil, err
	}
	raw := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(c.r, raw); err != nil {
		return nil, nil, err
	}
	m := new(dns.Msg)
	if err := m.Unpack(raw); err != nil {
		return nil, raw, err
	}
	return m, raw, nil
}

func (c *srvConn) write(m *dns.Msg) error {
	raw, err := m.Pack()
	if err != nil {
		return err
	}
	return c.writeRaw(raw)
}

func (c *srvConn) writeRaw(raw []byte) error {
	b := make([]byte, 2+len(raw))
	binary.BigEndian.PutUint16(b, uint16(len(raw)))
	copy(b[2:], raw)
	_, err := c.Write(b)
	return err
}

// answer is the reply every fault server gives when it does answer: an A record for the name.
func answer(q *dns.Msg) *dns.Msg {
	r := new(dns.Msg)
	r.SetReply(q)
	rr, _ := dns.NewRR(q.Question[0].Name + " 60 IN A 192.0.2.1")
	r.Answer = append(r.Answer, rr)
	return r
}

type certOpts struct {
	names     []string
	notBefore time.Time
	notAfter  time.Time
	alpn      []string // the server's ALPN protocols; a client offering none of them is refused
}

func newFaultServer(t *testing.T, co certOpts, serve func(c *srvConn)) *faultServer {
	t.Helper()
	ca, err := testenv.NewCA("delve test CA")
	if err != nil {
		t.Fatal(err)
	}
	if co.names == nil {
		co.names = []string{"dot.delve.test"}
	}
	leaf, err := ca.Issue(testenv.IssueOptions{DNSNames: co.names, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: co.notBefore, NotAfter: co.notAfter})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{leaf.Certificate}, MinVersion: tls.VersionTLS12, NextProtos: co.alpn})
	if err != nil {
		t.Fatal(err)
	}
	s := &faultServer{t: t, ln: ln, ca: ca, leaf: leaf, serve: serve}
	s.wg.Add(1)
	go s.loop()
	t.Cleanup(s.close)
	return s
}

func (s *faultServer) loop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.accept++
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			if tc, ok := c.(*tls.Conn); ok {
				if err := tc.Handshake(); err != nil {
					return
				}
			}
			s.serve(&srvConn{Conn: c, r: bufio.NewReader(c)})
		}()
	}
}

func (s *faultServer) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accept
}

// closeConns closes every accepted connection (the server stays up).
func (s *faultServer) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.conns = nil
}

func (s *faultServer) close() {
	_ = s.ln.Close()
	s.closeConns()
	s.wg.Wait()
}

func (s *faultServer) port() int {
	return s.ln.Addr().(*net.TCPAddr).Port
}

// upstream returns an Upstream for the server, trusting its CA, with opts applied on top.
func (s *faultServer) upstream(t *testing.T, tune func(*Options)) *Upstream {
	t.Helper()
	o := Options{Name: "fault", Address: "127.0.0.1", Port: s.port(), TLSName: "dot.delve.test", RootCAs: s.ca.Pool()}
	if tune != nil {
		tune(&o)
	}
	u, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = u.Close() })
	return u
}

// echoServe answers every query in order.
func echoServe(c *srvConn) {
	for {
		q, _, err := c.read()
		if err != nil {
			return
		}
		if err := c.write(answer(q)); err != nil {
			return
		}
	}
}

func query(name string) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeA)
	return q
}

func itoa(i int) string { return strconv.Itoa(i) }
