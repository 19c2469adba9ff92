package faults

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/testenv"
)

// behaviour is how a dotServer treats one accepted TCP connection. It owns nc until it returns;
// the server closes nc afterwards.
type behaviour func(s *dotServer, nc net.Conn)

// dotServer is an in-process DNS-over-TLS server whose behaviour a test switches at run time, for
// faults a real server will not produce on demand.
type dotServer struct {
	t      testing.TB
	ln     net.Listener // plain TCP: a behaviour decides whether and when to do TLS
	ca     *testenv.CA
	leaf   *testenv.Leaf
	tlsCfg *tls.Config
	mode   atomic.Pointer[behaviour]

	queries atomic.Int64 // DNS queries read after a handshake

	mu       sync.Mutex
	live     map[net.Conn]bool
	accepted int
	wg       sync.WaitGroup
}

type dotOptions struct {
	notBefore, notAfter time.Time // of the certificate; zero: valid now
	tune                func(*tls.Config)
}

func newDotServer(t testing.TB, o dotOptions, b behaviour) *dotServer {
	t.Helper()
	ca, err := testenv.NewCA("delve faults CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(testenv.IssueOptions{DNSNames: []string{testenv.TLSName}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: o.notBefore, NotAfter: o.notAfter})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dotServer{t: t, ln: ln, ca: ca, leaf: leaf, live: map[net.Conn]bool{},
		tlsCfg: &tls.Config{Certificates: []tls.Certificate{leaf.Certificate}, MinVersion: tls.VersionTLS12}}
	if o.tune != nil {
		o.tune(s.tlsCfg)
	}
	s.set(b)
	s.wg.Add(1)
	go s.loop()
	t.Cleanup(s.close)
	return s
}

func (s *dotServer) set(b behaviour) { s.mode.Store(&b) }

func (s *dotServer) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *dotServer) upstream(name string) upstreamConf {
	return upstreamConf{name: name, port: s.port(), tlsName: testenv.TLSName, ca: s.ca.CertPEM}
}

func (s *dotServer) loop() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.live[nc] = true
		s.accepted++
		s.mu.Unlock()
		b := *s.mode.Load()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				nc.Close()
				s.mu.Lock()
				delete(s.live, nc)
				s.mu.Unlock()
			}()
			b(s, nc)
		}()
	}
}

// liveConns is how many accepted connections are still open on the server's side.
func (s *dotServer) liveConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.live)
}

func (s *dotServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for nc := range s.live {
		nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// handshake does TLS on nc; nil when it failed.
func (s *dotServer) handshake(nc net.Conn) *dnsConn {
	tc := tls.Server(nc, s.tlsCfg)
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		return nil
	}
	_ = tc.SetDeadline(time.Time{})
	return &dnsConn{Conn: tc, r: bufio.NewReader(tc), s: s}
}

// dnsConn reads and writes length-prefixed DNS messages.
type dnsConn struct {
	net.Conn
	r *bufio.Reader
	s *dotServer
}

func (c *dnsConn) read() (*dns.Msg, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return nil, err
	}
	raw := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(c.r, raw); err != nil {
		return nil, err
	}
	c.s.queries.Add(1)
	m := new(dns.Msg)
	if err := m.Unpack(raw); err != nil {
		return nil, err
	}
	return m, nil
}

func (c *dnsConn) write(m *dns.Msg) error {
	raw, err := m.Pack()
	if err != nil {
		return err
	}
	return c.writeRaw(raw)
}

func (c *dnsConn) writeRaw(raw []byte) error {
	b := make([]byte, 2+len(raw))
	binary.BigEndian.PutUint16(b, uint16(len(raw)))
	copy(b[2:], raw)
	_, err := c.Write(b)
	return err
}

// faultAddr is the address every fault server answers with.
const faultAddr = "192.0.2.77"

// answer is the reply a well-behaved server gives: an A record for the name asked.
func answer(q *dns.Msg) *dns.Msg {
	r := new(dns.Msg)
	r.SetReply(q)
	if len(q.Question) == 1 && q.Question[0].Qtype == dns.TypeA {
		rr, _ := dns.NewRR(q.Question[0].Name + " 60 IN A " + faultAddr)
		r.Answer = append(r.Answer, rr)
	}
	return r
}

// The behaviours.

// replying is the behaviour of a server that does the handshake and then answers each query at
// once with reply(query), until either end closes.
func replying(reply func(q *dns.Msg) *dns.Msg) behaviour {
	return func(s *dotServer, nc net.Conn) {
		c := s.handshake(nc)
		if c == nil {
			return
		}
		for {
			q, err := c.read()
			if err != nil || c.write(reply(q)) != nil {
				return
			}
		}
	}
}

func healthy(s *dotServer, nc net.Conn) { replying(answer)(s, nc) }

// noHandshake accepts TCP and never answers the ClientHello; it reads (and drops) whatever comes
// until the client closes.
func noHandshake(s *dotServer, nc net.Conn) { _, _ = io.Copy(io.Discard, nc) }

// stallMidReply sends the first half of each reply and then nothing more.
func stallMidReply(s *dotServer, nc net.Conn) {
	c := s.handshake(nc)
	if c == nil {
		return
	}
	q, err := c.read()
	if err != nil {
		return
	}
	raw, _ := answer(q).Pack()
	b := append([]byte{byte(len(raw) >> 8), byte(len(raw))}, raw[:len(raw)/2]...)
	if _, err := c.Write(b); err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, c)
}

// garbage answers each query with bytes that are no DNS at all (an HTTP error, as from a
// misconfigured proxy, whose first two octets read as a length of 18516).
func garbage(s *dotServer, nc net.Conn) {
	c := s.handshake(nc)
	if c == nil {
		return
	}
	for {
		if _, err := c.read(); err != nil {
			return
		}
		if _, err := c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")); err != nil {
			return
		}
	}
}

// malformed answers each query with a message that has the query's ID and the QR bit but whose
// body does not parse.
func malformed(s *dotServer, nc net.Conn) {
	c := s.handshake(nc)
	if c == nil {
		return
	}
	for {
		q, err := c.read()
		if err != nil {
			return
		}
		raw := []byte{byte(q.Id >> 8), byte(q.Id), 0x81, 0x80, 0, 0, 0, 5, 0, 0, 0, 0, 0xc0, 0xff, 0xee}
		if c.writeRaw(raw) != nil {
			return
		}
	}
}

// closeAfterEach answers one query per connection, then closes it.
func closeAfterEach(s *dotServer, nc net.Conn) {
	c := s.handshake(nc)
	if c == nil {
		return
	}
	if q, err := c.read(); err == nil {
		_ = c.write(answer(q))
	}
}

// outOfOrder gathers the queries that arrive within 30 ms of each other and answers each batch
// in reverse order.
func outOfOrder(s *dotServer, nc net.Conn) {
	c := s.handshake(nc)
	if c == nil {
		return
	}
	qs := make(chan *dns.Msg, 256)
	go func() {
		defer close(qs)
		for {
			q, err := c.read()
			if err != nil {
				return
			}
			qs <- q
		}
	}()
	for q := range qs {
		batch := []*dns.Msg{q}
		t := time.NewTimer(30 * time.Millisecond)
	gather:
		for {
			select {
			case q, ok := <-qs:
				if !ok {
					break gather
				}
				batch = append(batch, q)
			case <-t.C:
				break gather
			}
		}
		t.Stop()
		for i := len(batch) - 1; i >= 0; i-- {
			if c.write(answer(batch[i])) != nil {
				return
			}
		}
	}
}

// spoofing sends, before each true reply, one with a wrong ID and one with the right ID but
// another question, both carrying a forged address.
func spoofing(s *dotServer, nc net.Conn) {
	c := s.handshake(nc)
	if c == nil {
		return
	}
	for {
		q, err := c.read()
		if err != nil {
			return
		}
		forged := func(name string, id uint16) *dns.Msg {
			r := new(dns.Msg)
			r.SetReply(q)
			r.Id = id
			r.Question[0].Name = name
			rr, _ := dns.NewRR(name + " 60 IN A 203.0.113.66")
			r.Answer = append(r.Answer, rr)
			return r
		}
		for _, m := range []*dns.Msg{forged(q.Question[0].Name, q.Id+1), forged("evil.example.", q.Id), answer(q)} {
			if c.write(m) != nil {
				return
			}
		}
	}
}

// proxy forwards TCP connections to target. cut resets every connection it carries; blackhole
// makes every connection it carries swallow everything from then on, and new ones too while it
// lasts, as a WAN link that went away does: connections carried across the outage stay dead.
type proxy struct {
	ln     net.Listener
	target string

	hole atomic.Bool

	mu    sync.Mutex
	conns map[net.Conn]*atomic.Bool // both ends of each carried connection, with its dead flag
	wg    sync.WaitGroup
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]*atomic.Bool{}}
	p.wg.Add(1)
	go p.loop()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *proxy) loop() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		dead := &atomic.Bool{}
		p.mu.Lock()
		dead.Store(p.hole.Load())
		p.mu.Unlock()
		var out net.Conn
		if !dead.Load() {
			if out, err = net.Dial("tcp", p.target); err != nil {
				in.Close()
				continue
			}
		}
		p.mu.Lock()
		p.conns[in] = dead
		if out != nil {
			p.conns[out] = dead
		}
		p.mu.Unlock()
		p.wg.Add(1)
		go p.pipe(in, out, dead)
		if out != nil {
			p.wg.Add(1)
			go p.pipe(out, in, dead)
		}
	}
}

// pipe copies from a to b (nil for a connection accepted during an outage) until either closes;
// once the connection is dead, what it reads is dropped.
func (p *proxy) pipe(a, b net.Conn, dead *atomic.Bool) {
	defer p.wg.Done()
	defer func() {
		a.Close()
		if b != nil {
			b.Close()
		}
		p.mu.Lock()
		delete(p.conns, a)
		delete(p.conns, b)
		p.mu.Unlock()
	}()
	buf := make([]byte, 16<<10)
	for {
		n, err := a.Read(buf)
		if n > 0 && !dead.Load() && b != nil {
			if _, err := b.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// blackhole starts (true) or ends an outage. Connections carried during it stay dead after it.
func (p *proxy) blackhole(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hole.Store(on)
	if on {
		for _, dead := range p.conns {
			dead.Store(true)
		}
	}
}

// cut resets every connection the proxy carries (RST, as the far end of a connection that lost
// its route does when it finally hears from it).
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.Close()
	}
}
