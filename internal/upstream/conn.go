package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
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

	"github.com/miekg/dns"
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

// errConnGone is errConnLost for a connection found closed before the query was sent on it: a
// reused connection that ended between acquire and roundTrip. Nothing was sent, so sending the
// query elsewhere is not one of its attempts.
var errConnGone = fmt.Errorf("%w, before the query was sent", errConnLost)

// ErrStalled closes a connection that read nothing at all for StallInterval while queries were
// owed on it, a probe included (see StallInterval).
var ErrStalled = errors.New("the server stopped answering on this connection")

// The stall rule, the only one by which a connection that is open and writable is given up on. A
// connection is stalled when queries are owed on it (sent, not answered: including those whose
// callers gave up, for LateWindow) and nothing at all has been read from it for StallInterval.
// One slow query cannot make it so: after StallProbe of quiet the connection is sent a probe, a
// question every recursive server answers at once from its cache (". NS"), and any reply to
// anything, the probe's or a late one, ends the quiet. No caller's deadline is part of the rule:
// a caller that gives up only forgets its query.
const (
	// StallProbe is how long a connection with queries owed may read nothing before it is sent a
	// probe: longer than a round trip to any DoT server on a sane path, short enough that a
	// connection a middlebox silently dropped is found well within StallInterval.
	StallProbe = time.Second
	// StallInterval is how long a connection with queries owed may read nothing at all before it
	// is closed as stalled (ErrStalled), a fault of the upstream (Upstream.Faults). It leaves the
	// probe StallInterval-StallProbe (2 s) to be answered: a server that answers nothing, not
	// even a cached question, in that time is not answering on this connection.
	StallInterval = 3 * time.Second
	// LateWindow is how long the ID of a query whose caller gave up stays reserved, and its reply
	// owed: recursive servers give up on a dead authority and answer SERVFAIL within about that
	// (unbound's default), and a reply after it is dropped as unmatched.
	LateWindow = 10 * time.Second
	// maxOwed bounds the queries kept owed on one connection after their callers gave up (a LAN
	// client retrying dead names at a high rate), so that pending, and the search for a free ID,
	// stay small whatever the clients do; past it a query is forgotten at once.
	maxOwed = 1024
)

// writeTimeout bounds a write that the server does not take (its window and our buffer full).
// One deadline serves many writes: it is moved to writeTimeout from now only when writeSlack has
// passed since it last was, so a write may wait between writeTimeout-writeSlack and writeTimeout,
// and a connection busy with one query after another resets its deadline (a runtime timer) once
// per writeSlack, not per query.
const (
	writeTimeout = 5 * time.Second
	writeSlack   = time.Second
)

// maxMsg is the largest DNS message a 2-octet length prefix can carry.
const maxMsg = 65535

// call is one query in flight on a connection.
type call struct {
	id       uint16
	frame    []byte // length prefix and message, ID filled in
	question []byte // packed question section, to match the reply
	// done receives one value once the reply (msg) or the connection's failure (err) is in:
	// they are set before the send. A channel of struct{} is one allocation, not two.
	done chan struct{}
	msg  []byte
	err  error
	// abandoned is set (under conn.mu) when nobody waits for the reply any more: a caller that
	// gave up, or a stall probe. The call stays in pending, owed, until its reply or LateWindow.
	abandoned bool
	since     time.Time // when it was abandoned
}

// conn is one TLS connection with pipelining: a reader goroutine routes replies to their callers
// by ID and question, in whatever order they arrive (RFC 7858 §3.3, RFC 7766 §7). A query that is
// the only one in flight is written by its caller (roundTrip): one client at a time costs no
// hand-off to another goroutine. Queries that overlap others are queued to a writer goroutine
// that coalesces them into as few TLS records as it can.
type conn struct {
	u      *Upstream
	nc     net.Conn
	writeq chan *call
	done   chan struct{} // closed when the connection is finished
	wg     sync.WaitGroup

	// wmu is held by whoever writes to nc: the writer goroutine, or a caller writing its own
	// query. After wdl the write deadline is moved (see writeTimeout).
	wmu sync.Mutex
	wdl time.Time

	reads    atomic.Int64 // replies read so far: a stalled connection reads none
	lastRead atomic.Int64 // UnixNano of the last message read
	// owed is len(pending), set under mu wherever pending changes, read without it by the
	// quick-ACK wrapper under TLS (quickAckConn.Read).
	owed atomic.Int32

	mu       sync.Mutex
	pending  map[uint16]*call
	inflight int  // reserved slots, including calls not yet in pending
	draining bool // take no new queries; close when the last reply is in
	closed   bool
	err      error
	idle     time.Duration
	idleT    *time.Timer
	lastUse  time.Time

	// The stall watch (see StallInterval): armed while pending is not empty.
	owedSince time.Time // when pending last became non-empty
	probeAt   time.Time // when the last probe was sent
	watching  bool
	stallT    *time.Timer
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
	if tc, ok := nc.(*tls.Conn); ok {
		watchOwed(tc.NetConn(), c)
	}
	c.idleT = time.AfterFunc(c.idle, c.idleCheck)
	c.stallT = time.AfterFunc(StallProbe, c.stallCheck)
	c.stallT.Stop()
	c.wg.Add(2)
	go c.writeLoop()
	go c.readLoop()
	return c
}

// roundTrip sends one query (frame: the length prefix and the message, whose ID it overwrites)
// and waits for the reply. The frame is the connection's until it fails: it may be written out
// after roundTrip returned. The caller must hold a slot (see Upstream.acquire); roundTrip
// releases it.
func (c *conn) roundTrip(ctx context.Context, frame, question []byte) ([]byte, error) {
	cl := &call{frame: frame, question: question, done: make(chan struct{}, 1)}

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.release()
		return nil, errConnGone
	}
	c.addLocked(cl)
	// Alone on the connection, with nothing queued: write it here rather than wake the writer.
	// With other queries in flight the writer's coalescing saves more than the hand-off costs.
	alone := c.inflight == 1 && len(c.writeq) == 0
	c.mu.Unlock()

	if alone {
		// The writer may be sending a stall probe (it holds no slot): then this waits for it. A
		// write the server does not take holds this caller as it would hold the writer: until
		// the connection fails (writeTimeout, or the stall rule closes it).
		c.wmu.Lock()
		err := c.writeLocked(cl.frame)
		c.wmu.Unlock()
		if err != nil {
			c.fail(err) // answers every pending call, this one included
		}
	} else {
		// writeq has room for every reserved slot, so this blocks only while the writer is
		// behind probes (at most one at a time); the connection's end or the caller's give up
		// ends the wait.
		select {
		case c.writeq <- cl:
		case <-c.done:
			// fail has answered every pending call, this one included.
		case <-ctx.Done():
			c.unqueue(cl)
			return nil, ctx.Err()
		}
	}

	select {
	case <-cl.done:
		c.release()
		return cl.msg, cl.err
	case <-ctx.Done():
		c.forget(cl)
		return nil, ctx.Err()
	}
}

// addLocked gives cl a free ID, puts it in pending and arms the stall watch. c.mu is held.
func (c *conn) addLocked(cl *call) {
	for {
		cl.id = uint16(rand.Uint32())
		if _, busy := c.pending[cl.id]; !busy {
			break
		}
	}
	binary.BigEndian.PutUint16(cl.frame[2:], cl.id)
	if len(c.pending) == 0 {
		c.owedSince = time.Now()
	}
	c.pending[cl.id] = cl
	c.owed.Store(int32(len(c.pending)))
	if !c.watching {
		c.watching = true
		c.stallT.Reset(StallProbe)
	}
}

// dropLocked takes the call with id out of pending. c.mu is held.
func (c *conn) dropLocked(id uint16) {
	delete(c.pending, id)
	c.owed.Store(int32(len(c.pending)))
}

// forget is for a call whose caller gave up: it frees the slot and nothing else. The query stays
// owed (its ID reserved, its reply dropped when it comes) for LateWindow; whether the connection
// is stalled is the stall watch's business, not this caller's.
func (c *conn) forget(cl *call) {
	c.mu.Lock()
	if p, ok := c.pending[cl.id]; ok && p == cl {
		if len(c.pending) > maxOwed {
			c.dropLocked(cl.id) // owed enough already: its late reply is dropped as unmatched
		} else {
			cl.abandoned, cl.since = true, time.Now()
		}
	}
	c.mu.Unlock()
	c.release()
}

// unqueue is forget for a call that was never handed to the writer: nothing is owed for it.
func (c *conn) unqueue(cl *call) {
	c.mu.Lock()
	if p, ok := c.pending[cl.id]; ok && p == cl {
		c.dropLocked(cl.id)
	}
	c.mu.Unlock()
	c.release()
}

// stallCheck runs on the stall timer while queries are owed: it drops abandoned calls older than
// LateWindow, sends a probe after StallProbe of quiet, and closes the connection as stalled after
// StallInterval of it (see StallInterval).
func (c *conn) stallCheck() {
	now := time.Now()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	for id, cl := range c.pending {
		if cl.abandoned && now.Sub(cl.since) >= LateWindow {
			c.dropLocked(id)
		}
	}
	if len(c.pending) == 0 {
		c.watching = false
		c.mu.Unlock()
		return
	}
	quiet := c.owedSince
	if lr := time.Unix(0, c.lastRead.Load()); lr.After(quiet) {
		quiet = lr
	}
	idle := now.Sub(quiet)
	switch {
	case idle >= StallInterval:
		c.mu.Unlock()
		c.u.stats.stalls.Add(1)
		c.fail(ErrStalled)
		return
	case idle >= StallProbe && c.probeAt.Before(quiet):
		c.probeAt = now
		p := probe(now)
		c.addLocked(p)
		select {
		case c.writeq <- p:
		default: // the writer is behind a full queue: nothing to add to it
		}
		c.stallT.Reset(StallInterval - idle)
	case idle >= StallProbe:
		c.stallT.Reset(StallInterval - idle)
	default:
		c.stallT.Reset(StallProbe - idle)
	}
	c.mu.Unlock()
}

// release frees a slot taken by Upstream.acquire.
func (c *conn) release() {
	c.mu.Lock()
	c.inflight--
	n := c.inflight
	if n == 0 {
		// The idle timer stays armed while the connection is open (idleCheck): it reads
		// lastUse when it fires, so a release resets no timer.
		c.lastUse = time.Now()
		if c.draining {
			c.mu.Unlock()
			c.fail(errConnLost)
			c.u.changed()
			return
		}
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
		c.wmu.Lock()
		err := c.writeLocked(buf)
		c.wmu.Unlock()
		if err != nil {
			c.fail(err)
			return
		}
		if cap(buf) > 64*1024 {
			buf = nil
		}
	}
}

// writeLocked writes b (whole frames) to the connection; c.wmu is held.
func (c *conn) writeLocked(b []byte) error {
	if now := time.Now(); now.After(c.wdl) {
		c.wdl = now.Add(writeSlack)
		_ = c.nc.SetWriteDeadline(now.Add(writeTimeout))
	}
	_, err := c.nc.Write(b)
	return err
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
		msg := c.u.getBuf(n)
		if _, err := io.ReadFull(r, msg); err != nil {
			c.fail(err)
			return
		}
		c.lastRead.Store(time.Now().UnixNano())
		c.reads.Add(1)
		c.deliver(msg)
	}
}

// deliver routes a reply to the call with its ID and question. Anything else (a reply nobody is
// waiting for, a wrong question, a message that is not a reply) is dropped and counted.
func (c *conn) deliver(msg []byte) {
	if len(msg) < 12 || msg[2]&0x80 == 0 {
		c.u.stats.unmatched.Add(1)
		c.u.putBuf(msg)
		return
	}
	id := binary.BigEndian.Uint16(msg)
	c.mu.Lock()
	cl, ok := c.pending[id]
	if !ok || !sameQuestion(msg, cl.question) {
		c.mu.Unlock()
		c.u.stats.unmatched.Add(1)
		c.u.putBuf(msg)
		return
	}
	c.dropLocked(id)
	c.mu.Unlock()
	if cl.abandoned {
		c.u.putBuf(msg)
		return // a late reply or a probe's: it has done its work by being read
	}
	cl.msg = msg
	cl.done <- struct{}{}
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
	if d < c.u.opts.IdleTimeout && d != c.idle {
		c.idle = d
		if c.inflight == 0 && !c.closed {
			// The release before this reply was read armed the timer with the old value.
			c.idleT.Reset(max(0, d-time.Since(c.lastUse)))
		}
	}
}

// idleCheck runs on the idle timer, which stays armed while the connection is open: it closes a
// connection unused for c.idle, else sets the timer for when it would be.
func (c *conn) idleCheck() {
	c.mu.Lock()
	idle := c.inflight == 0 && time.Since(c.lastUse) >= c.idle-time.Millisecond
	wait := c.idle - time.Since(c.lastUse)
	if c.inflight > 0 {
		wait = c.idle // in use: unused for c.idle at the earliest from now
	}
	closed := c.closed
	if !idle && !closed {
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
	c.owed.Store(0)
	c.mu.Unlock()

	c.idleT.Stop()
	c.stallT.Stop()
	close(c.done)
	_ = c.nc.Close()
	lost := errConnLost
	if c.reads.Load() > 0 {
		lost = errConnDone
	}
	owed := false
	for _, cl := range pending {
		if !cl.abandoned {
			owed = true
			cl.err = lost
			cl.done <- struct{}{}
		}
	}
	// A connection the server ended (a read or write failed: not our own close for idling, a
	// reset, a drain, a stall or Close) before answering anything while queries waited is one
	// connection fault, however many queries it fails.
	if owed && lost == errConnLost && !errors.Is(err, errConnLost) && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrStalled) {
		c.u.stats.dropped.Add(1)
	}
	c.u.removeConn(c)
}

// wait blocks until both goroutines of a failed connection have returned.
func (c *conn) wait() { c.wg.Wait() }

// probe is a stall probe sent at now: ". NS", a question every recursive server answers from its
// cache, packed for each probe (one per StallProbe of quiet at most).
func probe(now time.Time) *call {
	q := new(dns.Msg)
	q.SetQuestion(".", dns.TypeNS)
	f, err := wireFrame(q)
	if err != nil {
		panic(err) // a fixed, valid question
	}
	return &call{frame: f, question: f[2+12 : 2+QuestionEnd(f[2:])], abandoned: true, since: now}
}
