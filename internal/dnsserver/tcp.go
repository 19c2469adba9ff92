package dnsserver

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/resolver"
)

const (
	// tcpPipeline bounds the queries in flight on one connection; the reader waits for a slot,
	// so a client that pipelines more is slowed down, not dropped.
	tcpPipeline = 16
	// tcpWriteTimeout bounds a reply write to a client that does not read.
	tcpWriteTimeout = 5 * time.Second
)

// tcpConn is one client connection (RFC 7766): queries are read one after another and answered
// as they complete, possibly out of order (§6.2.1.1, §7), each reply written whole (§8).
type tcpConn struct {
	_      [0]func() // never compared: the binary then carries no equality function for it
	nc     *net.TCPConn
	addr   netip.Addr // the client's address
	client netip.Addr // what MaxTCPPerClient counts: addr, or its /64
	wmu    sync.Mutex
	busy   sync.WaitGroup // queries in flight on this connection
	sem    chan struct{}
}

func (s *Server) acceptTCP(l *net.TCPListener) {
	defer s.loops.Done()
	for {
		nc, err := l.AcceptTCP()
		if err != nil {
			if s.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors, most likely: give the others a moment to finish.
			select {
			case <-s.stopping:
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		addr := nc.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
		c := &tcpConn{nc: nc, addr: addr, client: tcpClient(addr), sem: make(chan struct{}, tcpPipeline)}
		s.mu.Lock()
		if s.closed || len(s.conns) >= s.opts.MaxTCPConns || s.perTCP[c.client] >= s.opts.MaxTCPPerClient {
			closed := s.closed
			s.mu.Unlock()
			if !closed {
				// Counted before the close, so that a client that saw it sees the count too.
				s.stats.tcpRefused.Add(1)
				s.log.Debug("closing a TCP connection at accept: too many", "client", addr, "limit", s.opts.MaxTCPConns, "per_client", s.opts.MaxTCPPerClient)
			}
			_ = nc.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.perTCP[c.client]++
		// This loop holds a count of s.loops, so adding here never races with a Wait at zero.
		s.loops.Add(1)
		s.mu.Unlock()
		go s.serveTCP(c)
	}
}

// tcpClient is the client MaxTCPPerClient counts a connection from: its IPv4 address, or the /64
// of its IPv6 address, within which a host may use as many addresses as it likes (RFC 8981).
func tcpClient(a netip.Addr) netip.Addr {
	if a.Is4() {
		return a
	}
	p, _ := a.WithZone("").Prefix(64)
	return p.Addr()
}

func (s *Server) serveTCP(c *tcpConn) {
	defer s.loops.Done()
	defer func() {
		c.busy.Wait()
		_ = c.nc.Close()
		s.mu.Lock()
		delete(s.conns, c)
		if s.perTCP[c.client]--; s.perTCP[c.client] <= 0 {
			delete(s.perTCP, c.client)
		}
		s.mu.Unlock()
	}()
	r := bufio.NewReaderSize(c.nc, 2048)
	var hdr [2]byte
	for {
		// Close sets a past deadline after marking the server closed; checking after setting
		// ours means one of the two wins either way.
		_ = c.nc.SetReadDeadline(time.Now().Add(s.opts.TCPIdle))
		if s.isClosed() {
			return
		}
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		pkt := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(r, pkt); err != nil {
			return
		}
		s.handleTCP(c, pkt)
	}
}

func (s *Server) handleTCP(c *tcpConn, pkt []byte) {
	defer s.recoverPacket()
	m := parse(pkt)
	if m == nil {
		s.stats.malformed.Add(1)
		return
	}
	s.stats.tcp.Add(1)
	client := c.addr
	q := &query{msg: m, client: client}
	if r := s.policy(q); r != nil {
		s.sendTCP(c, q, r, resolver.Info{}, true)
		return
	}
	if s.limited(client) {
		s.stats.limited.Add(1)
		s.sendTCP(c, q, q.refuse(dns.RcodeRefused, edeProhibited, "rate limit exceeded"), resolver.Info{}, true)
		return
	}
	bp := bufPool.Get().(*[]byte)
	w, info, ok := s.cachedWire(q, pkt, (*bp)[:0])
	if ok {
		s.account(q, int(w[3]&0xF), false, info, false)
		s.writeTCP(c, q, w)
	}
	if cap(w) > cap(*bp) {
		*bp = w[:0]
	}
	bufPool.Put(bp)
	if ok {
		return
	}
	if s.fast != nil {
		if r, info, ok := s.fast.Cached(m); ok {
			s.sendTCP(c, q, s.answer(q, r, nil), info, false)
			return
		}
	}
	uq := s.upstreamQuery(q)
	c.sem <- struct{}{}
	c.busy.Add(1)
	s.handlers.Add(1)
	s.inflight.Add(1)
	go func() {
		defer func() {
			s.inflight.Add(-1)
			s.handlers.Done()
			c.busy.Done()
			<-c.sem
		}()
		defer s.recoverPacket()
		r, info, err := s.exchange(uq)
		s.sendTCP(c, q, s.answer(q, r, err), info, err != nil)
	}()
}

func (s *Server) sendTCP(c *tcpConn, q *query, reply *dns.Msg, info resolver.Info, own bool) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	out, err := q.pack(reply, *bp)
	if err != nil {
		s.log.Debug("packing a reply", "err", err)
		return
	}
	if cap(out) > cap(*bp) {
		*bp = out[:0]
	}
	s.account(q, reply.Rcode, reply.Truncated, info, own)
	s.writeTCP(c, q, out)
}

// writeTCP writes one reply with its length prefix, in one write (RFC 7766 §8).
func (s *Server) writeTCP(c *tcpConn, q *query, out []byte) {
	var hdr [2]byte
	binary.BigEndian.PutUint16(hdr[:], uint16(len(out)))
	c.wmu.Lock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(tcpWriteTimeout))
	bufs := net.Buffers{hdr[:], out}
	_, err := bufs.WriteTo(c.nc)
	c.wmu.Unlock()
	if err != nil {
		s.log.Debug("sending a reply", "client", q.client, "err", err)
	}
}
