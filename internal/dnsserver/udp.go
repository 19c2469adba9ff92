package dnsserver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/resolver"
)

// UDP reading: each reader takes up to udpBatch datagrams per system call (recvmmsg on Linux)
// and sends the replies it can give at once in one call too (sendmmsg). A query larger than
// udpBufSize is not a query a stub sends: it arrives cut (MSG_TRUNC) and is dropped as malformed.
const (
	udpBatch   = 16
	udpBufSize = 4096
)

// bufPool holds reply buffers for the goroutines that wait for an upstream.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// packet is one datagram of a batch.
type packet struct {
	buf   []byte         // read: the buffer, n bytes of it the datagram; write: the datagram
	n     int            // read
	trunc bool           // read: the datagram was larger than buf, and cut (MSG_TRUNC)
	addr  netip.AddrPort // read: the source; write: the destination
}

// readUDP is one of a few readers of a UDP socket. It answers what it can at once (delve's own
// replies, cache hits) and hands queries that need an upstream to a goroutine of their own.
func (s *Server) readUDP(c *net.UDPConn) {
	defer s.loops.Done()
	bc, err := newBatchConn(c, udpBatch)
	if err != nil {
		s.log.Error("reading UDP", "addr", c.LocalAddr(), "err", err)
		return
	}
	// Replies that had to wait for an upstream go out through rp, from the goroutines that
	// waited (see udpReplier).
	rbc, err := newBatchConn(c, 1)
	if err != nil {
		s.log.Error("reading UDP", "addr", c.LocalAddr(), "err", err)
		return
	}
	rp := &udpReplier{bc: rbc}
	in := make([]packet, udpBatch)
	for i := range in {
		in[i].buf = make([]byte, udpBufSize)
	}
	out := make([]packet, udpBatch)
	outBufs := make([][]byte, udpBatch)
	for i := range out {
		outBufs[i] = make([]byte, 0, ednsSize+64)
	}
	for {
		n, err := bc.readBatch(in)
		if err != nil {
			if s.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Not expected on an unconnected socket (a deadline is Close's): say so, and do
			// not spin on an error that repeats.
			s.log.Debug("reading a UDP packet", "addr", c.LocalAddr(), "err", err)
			select {
			case <-s.stopping:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		replies := 0
		for i := range n {
			p := &in[i]
			if !p.addr.IsValid() || p.trunc {
				s.stats.malformed.Add(1)
				continue
			}
			reply, ok := s.handleUDP(rp, p.buf[:p.n], p.addr, outBufs[replies][:0])
			if !ok {
				continue
			}
			if cap(reply) > cap(outBufs[replies]) {
				outBufs[replies] = reply[:0] // keep the larger buffer
			}
			out[replies].buf = reply
			out[replies].addr = p.addr
			replies++
		}
		s.sendAll(bc, out[:replies])
	}
}

// udpReplier sends the replies of one reader's queries that waited for an upstream, from the
// goroutines that waited, one at a time. It is a batchConn, not the socket's WriteToUDPAddrPort,
// because batchConn's system calls are raw (see batchConn.run): the reply of a miss is then not
// the call that wakes the runtime's monitor thread after the wait.
type udpReplier struct {
	_   [0]func() // never compared: no equality function in the binary
	mu  sync.Mutex
	bc  *batchConn
	one [1]packet
}

func (r *udpReplier) send(w []byte, to netip.AddrPort) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.one[0] = packet{buf: w, addr: to}
	_, err := r.bc.writeBatch(r.one[:])
	r.one[0] = packet{}
	return err
}

// sendAll sends ps in as few system calls as it can.
func (s *Server) sendAll(bc *batchConn, ps []packet) {
	for sent := 0; sent < len(ps); {
		k, err := bc.writeBatch(ps[sent:])
		if err != nil {
			// One client's error (a source port 0, which the kernel will not send to) must
			// not cost the others their replies: skip the one that failed.
			s.log.Debug("sending a reply", "client", ps[sent+k].addr, "err", err)
			k++
		}
		sent += k
	}
}

// handleUDP answers one packet: a reply to send at once in out's buffer (ok true), or nothing
// (dropped, or handed to a goroutine that sends its reply itself).
func (s *Server) handleUDP(rp *udpReplier, pkt []byte, src netip.AddrPort, out []byte) (reply []byte, ok bool) {
	defer s.recoverPacket()
	client := src.Addr().Unmap()
	if s.limited(client) {
		s.stats.limited.Add(1)
		return nil, false
	}
	m := parse(pkt)
	if m == nil {
		s.stats.malformed.Add(1)
		return nil, false
	}
	s.stats.udp.Add(1)
	q := &query{msg: m, udp: true, client: client}
	if r := s.policy(q); r != nil {
		return s.packUDP(q, r, resolver.Info{}, true, out)
	}
	if w, info, ok := s.cachedWire(q, pkt, out); ok {
		s.account(q, int(w[3]&0xF), w[2]&flagTC != 0, info, false)
		return w, true
	}
	if s.fast != nil {
		if r, info, ok := s.fast.Cached(m); ok {
			return s.packUDP(q, s.answer(q, r, nil), info, false, out)
		}
	}
	uq := s.upstreamQuery(q)
	if int(s.inflight.Add(1)) > s.opts.MaxInFlight {
		s.inflight.Add(-1)
		s.stats.overloaded.Add(1)
		return nil, false
	}
	s.handlers.Add(1)
	// It runs on one of the resolver's goroutines when it keeps some (goResolver).
	task := func() {
		defer s.handlers.Done()
		defer s.inflight.Add(-1)
		defer s.recoverPacket()
		r, info, err := s.exchange(uq)
		bp := bufPool.Get().(*[]byte)
		defer bufPool.Put(bp)
		w, ok := s.packUDP(q, s.answer(q, r, err), info, err != nil, *bp)
		if !ok {
			return
		}
		if cap(w) > cap(*bp) {
			*bp = w[:0]
		}
		if err := rp.send(w, src); err != nil {
			s.log.Debug("sending a reply", "client", src, "err", err)
		}
	}
	if s.workers == nil || !s.workers.Go(task) {
		go task()
	}
	return nil, false
}

// packUDP packs reply into buf and counts it; ok is false when it cannot be packed.
func (s *Server) packUDP(q *query, reply *dns.Msg, info resolver.Info, own bool, buf []byte) ([]byte, bool) {
	out, err := q.pack(reply, buf)
	if err != nil {
		s.log.Debug("packing a reply", "err", err)
		return nil, false
	}
	// Counted before it is sent, so that a client that has its reply sees it in Stats.
	s.account(q, reply.Rcode, reply.Truncated, info, own)
	return out, true
}

// cachedWire answers q from the resolver's packed cache when it can. Padded queries take the
// message path, which pads the reply.
func (s *Server) cachedWire(q *query, pkt, dst []byte) ([]byte, resolver.Info, bool) {
	if s.wire == nil || (q.opt != nil && hasOption(q.opt, dns.EDNS0PADDING)) {
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
	if s.opts.Timeout < 0 {
		return s.res.Exchange(s.ctx, uq, "")
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.Timeout)
	defer cancel()
	return s.res.Exchange(ctx, uq, "")
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
