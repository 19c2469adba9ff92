package upstream

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// errConnLost means the connection ended before the reply came. The query may not have reached
// the server, or the server may have dropped it: it is retried on a fresh connection
// (RFC 7766 §6.2.4) and, for a connection that had worked before, not held against the upstream.
var errConnLost = errors.New("connection closed before the reply")

// errConnDone is errConnLost on a connection that had answered other queries: the server is up,
// and closes its connections after a query or a few (some servers do not pipeline), or closed an
// idle one just as this query went out. Sending the query again is not one of its attempts (see
// exchange): those are for connections that never answer anything.
var errConnDone = fmt.Errorf("%w, after answering other queries", errConnLost)

// errStalled closes a connection on which a query timed out while nothing at all was read.
var errStalled = errors.New("the server stopped answering on this connection")

const writeTimeout = 5 * time.Second

// maxMsg is the largest DNS message a 2-octet length prefix can carry.
const maxMsg = 65535

// call is one query in flight on a connection.
type call struct {
	id       uint16
	frame    []byte // length prefix and message, ID filled in
	question []byte // packed question section, to match the reply
	sent     int64  // reads counter of the connection when the query was queued
	reply    chan result
}

type result struct {
	msg []byte
	err error
}

// conn is one TLS connection with pipelining: a writer goroutine that coalesces queued queries
// into as few TLS records as it can, and a reader goroutine that routes replies to their callers
// by ID and question, in whatever order they arrive (RFC 7858 §3.3, RFC 7766 §7).
type conn struct {
	u      *Upstream
	nc     net.Conn
	writeq chan *call
	done   chan struct{} // closed when the connection is finished
	wg     sync.WaitGroup

	reads atomic.Int64 // replies read so far: a stalled connection reads none

	mu       sync.Mutex
	pending  map[uint16]*call
	inflight int  // reserved slots, including calls not yet in pending
	draining bool // take no new queries; close when the last reply is in
	closed   bool
	err      error
	idle     time.Duration
	idleT    *time.Timer
	lastUse  time.Time
}

func newConn(u *Upstream, nc net.Conn) *conn {
	c := &conn{
		u:       u,
		nc:      nc,
		writeq:  make(chan *call, u.opts.MaxInFlight),
		done:    make(chan struct{}),
		pending: make(map[uint16]*call),
		idle:    u.opts.IdleTimeout,
		lastUse: time.Now(),
	}
	c.idleT = time.AfterFunc(c.idle, c.idleCheck)
	c.wg.Add(2)
	go c.writeLoop()
	go c.readLoop()
	return c
}

// roundTrip sends one query (msg without its length prefix; its ID is overwritten) and waits for
// the reply. The caller must hold a slot (see Upstream.acquire); roundTrip releases it.
func (c *conn) roundTrip(ctx context.Context, msg, question []byte) ([]byte, error) {
	cl := &call{
		frame:    make([]byte, 2+len(msg)),
		question: question,
		reply:    make(chan result, 1),
	}
	binary.BigEndian.PutUint16(cl.frame, uint16(len(msg)))
	copy(cl.frame[2:], msg)

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.release()
		return nil, errConnLost
	}
	for {
		cl.id = uint16(rand.Uint32())
		if _, busy := c.pending[cl.id]; !busy {
			break
		}
	}
	binary.BigEndian.PutUint16(cl.frame[2:], cl.id)
	cl.sent = c.reads.Load()
	c.pending[cl.id] = cl
	c.mu.Unlock()

	// writeq has room for every reserved slot, so this never blocks.
	c.writeq <- cl

	select {
	case r := <-cl.reply:
		c.release()
		return r.msg, r.err
	case <-ctx.Done():
		c.forget(cl)
		return nil, ctx.Err()
	}
}

// forget drops a call whose caller gave up. If nothing at all was read on the connection since
// the query went out, the server is not answering on it: close it so the next query reconnects
// instead of queueing behind a stall.
func (c *conn) forget(cl *call) {
	c.mu.Lock()
	if p, ok := c.pending[cl.id]; ok && p == cl {
		delete(c.pending, cl.id)
	}
	stalled := c.reads.Load() == cl.sent
	c.mu.Unlock()
	c.release()
	if stalled {
		c.fail(errStalled)
	}
}

// release frees a slot taken by Upstream.acquire.
func (c *conn) release() {
	c.mu.Lock()
	c.inflight--
	n := c.inflight
	if n == 0 {
		c.lastUse = time.Now()
		if c.draining {
			c.mu.Unlock()
			c.fail(errConnLost)
			c.u.changed()
			return
		}
		c.idleT.Reset(c.idle)
	}
	c.mu.Unlock()
	c.u.changed()
}

// tryReserve takes a slot for a query if the connection is usable and below its limit.
func (c *conn) tryReserve(max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.draining || c.inflight >= max {
		return false
	}
	c.inflight++
	return true
}

func (c *conn) load() (inflight int, usable bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inflight, !c.closed && !c.draining
}

func (c *conn) writeLoop() {
	defer c.wg.Done()
	var buf []byte
	for {
		var cl *call
		select {
		case cl = <-c.writeq:
		case <-c.done:
			return
		}
		buf = append(buf[:0], cl.frame...)
		if len(c.writeq) == 0 {
			// Let the callers that are about to queue a query do so first: under load that
			// makes one TLS record and one write of several queries instead of one each. With
			// nothing else to run it returns at once.
			runtime.Gosched()
		}
		// Coalesce what else is queued, so that a burst of queries leaves in one TLS record
		// (RFC 7858 §3.3: hand the prefix and message to TCP in one write).
	more:
		for len(buf) < 16*1024 {
			select {
			case cl = <-c.writeq:
				buf = append(buf, cl.frame...)
			default:
				break more
			}
		}
		_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := c.nc.Write(buf); err != nil {
			c.fail(err)
			return
		}
		if cap(buf) > 64*1024 {
			buf = nil
		}
	}
}

func (c *conn) readLoop() {
	defer c.wg.Done()
	r := bufio.NewReaderSize(c.nc, 16*1024)
	var hdr [2]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			c.fail(err)
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[:]))
		msg := make([]byte, n)
		if _, err := io.ReadFull(r, msg); err != nil {
			c.fail(err)
			return
		}
		c.reads.Add(1)
		c.deliver(msg)
	}
}

// deliver routes a reply to the call with its ID and question. Anything else (a reply nobody is
// waiting for, a wrong question, a message that is not a reply) is dropped and counted.
func (c *conn) deliver(msg []byte) {
	if len(msg) < 12 || msg[2]&0x80 == 0 {
		c.u.stats.unmatched.Add(1)
		return
	}
	id := binary.BigEndian.Uint16(msg)
	c.mu.Lock()
	cl, ok := c.pending[id]
	if !ok || !sameQuestion(msg, cl.question) {
		c.mu.Unlock()
		c.u.stats.unmatched.Add(1)
		return
	}
	delete(c.pending, id)
	c.mu.Unlock()
	cl.reply <- result{msg: msg}
}

// setKeepalive applies the server's edns-tcp-keepalive timeout (RFC 7828 §3.3.1): close before it
// expires; zero means send nothing more and close once the pending replies are in.
func (c *conn) setKeepalive(timeout uint16) {
	c.mu.Lock()
	if timeout == 0 {
		c.draining = true
		idle := c.inflight == 0
		c.mu.Unlock()
		if idle {
			// The reply that said so was the last one pending: close now, not at a release.
			c.fail(errConnLost)
		}
		return
	}
	defer c.mu.Unlock()
	d := time.Duration(timeout) * 100 * time.Millisecond
	// Leave a margin so that we close first, not the server under a query in flight.
	if d > time.Second {
		d -= 500 * time.Millisecond
	}
	if d < c.u.opts.IdleTimeout {
		c.idle = d
	}
}

func (c *conn) idleCheck() {
	c.mu.Lock()
	idle := c.inflight == 0 && time.Since(c.lastUse) >= c.idle-time.Millisecond
	wait := c.idle - time.Since(c.lastUse)
	closed := c.closed
	if !idle && !closed && c.inflight == 0 {
		c.idleT.Reset(wait)
	}
	c.mu.Unlock()
	if idle {
		c.fail(errConnLost)
		c.u.changed()
	}
}

// fail closes the connection once, failing every call still waiting on it.
func (c *conn) fail(err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.err = err
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()

	c.idleT.Stop()
	close(c.done)
	_ = c.nc.Close()
	lost := errConnLost
	if c.reads.Load() > 0 {
		lost = errConnDone
	}
	for _, cl := range pending {
		cl.reply <- result{err: lost}
	}
	c.u.removeConn(c)
}

// wait blocks until both goroutines of a failed connection have returned.
func (c *conn) wait() { c.wg.Wait() }
