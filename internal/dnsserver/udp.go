package dnsserver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/resolver"
)

// maxPacket is the read buffer: a UDP datagram can be this large, and a shorter buffer would
// silently cut one into something that might parse.
const maxPacket = 65535

// bufPool holds reply buffers for the goroutines that wait for an upstream.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// readUDP is one of a few readers of a UDP socket. It answers what it can at once (delve's own
// replies, cache hits) and hands queries that need an upstream to a goroutine of their own.
func (s *Server) readUDP(c *net.UDPConn) {
	defer s.loops.Done()
	buf := make([]byte, maxPacket)
	out := make([]byte, 0, 4096)
	for {
		n, src, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if s.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			// ICMP errors surface as read errors on Linux (ECONNREFUSED from an earlier reply):
			// they concern one client, not the socket.
			continue
		}
		out = s.handleUDP(c, buf[:n], src, out)
	}
}

// handleUDP answers or dispatches one packet; it returns out for reuse.
func (s *Server) handleUDP(c *net.UDPConn, pkt []byte, src netip.AddrPort, out []byte) []byte {
	defer s.recoverPacket()
	client := src.Addr().Unmap()
	if s.limited(client) {
		s.stats.limited.Add(1)
		return out
	}
	m := parse(pkt)
	if m == nil {
		s.stats.malformed.Add(1)
		return out
	}
	s.stats.udp.Add(1)
	q := &query{msg: m, udp: true, client: client}
	if r := s.policy(q); r != nil {
		return s.sendUDP(c, src, q, r, resolver.Info{}, true, out)
	}
	if w, info, ok := s.cachedWire(q, pkt, out[:0]); ok {
		s.account(q, int(w[3]&0xF), w[2]&flagTC != 0, info, false)
		if _, err := c.WriteToUDPAddrPort(w, src); err != nil {
			s.log.Debug("sending a reply", "client", src, "err", err)
		}
		return w
	}
	if s.fast != nil {
		if r, info, ok := s.fast.Cached(m); ok {
			return s.sendUDP(c, src, q, s.answer(q, r, nil), info, false, out)
		}
	}
	uq := s.upstreamQuery(q)
	if int(s.inflight.Add(1)) > s.opts.MaxInFlight {
		s.inflight.Add(-1)
		s.stats.overloaded.Add(1)
		return out
	}
	s.handlers.Add(1)
	go func() {
		defer s.handlers.Done()
		defer s.inflight.Add(-1)
		defer s.recoverPacket()
		r, info, err := s.exchange(uq)
		bp := bufPool.Get().(*[]byte)
		*bp = s.sendUDP(c, src, q, s.answer(q, r, err), info, err != nil, *bp)
		bufPool.Put(bp)
	}()
	return out
}

// cachedWire answers q from the resolver's packed cache when it can. Padded queries take the
// message path, which pads the reply.
func (s *Server) cachedWire(q *query, pkt, dst []byte) ([]byte, resolver.Info, bool) {
	if s.wire == nil || (q.opt != nil && padded(q.opt)) {
		return dst, resolver.Info{}, false
	}
	w, info, ok := s.wire.AppendCached(dst, q.msg)
	if !ok {
		return dst, info, false
	}
	if w, ok = q.patchWire(w, pkt); !ok {
		return dst, info, false
	}
	return w, info, true
}

func (s *Server) exchange(uq *dns.Msg) (*dns.Msg, resolver.Info, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.Timeout)
	defer cancel()
	return s.res.Exchange(ctx, uq, "")
}

func (s *Server) sendUDP(c *net.UDPConn, dst netip.AddrPort, q *query, reply *dns.Msg, info resolver.Info, own bool, buf []byte) []byte {
	out, err := q.pack(reply, buf[:0])
	if err != nil {
		s.log.Debug("packing a reply", "err", err)
		return buf
	}
	// Counted first, so that a client that has its reply sees it in Stats.
	s.account(q, reply.Rcode, reply.Truncated, info, own)
	if _, err := c.WriteToUDPAddrPort(out, dst); err != nil {
		s.log.Debug("sending a reply", "client", dst, "err", err)
	}
	return out
}

// limited reports whether client is over its rate.
func (s *Server) limited(client netip.Addr) bool {
	if s.limiter == nil || (client.IsLoopback() && !s.opts.LimitLoopback) {
		return false
	}
	return !s.limiter.allow(client, time.Now())
}

// recoverPacket keeps a bug in parsing or packing some odd message (a fuzzer's find) from taking
// the router's DNS down: the packet is dropped and counted as malformed, and the panic logged.
func (s *Server) recoverPacket() {
	if v := recover(); v != nil {
		s.stats.malformed.Add(1)
		s.log.Error("dropping a packet that made the listener panic", "panic", v)
	}
}
