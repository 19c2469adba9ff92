package jsonrpc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/rawio"
)

// Defaults of Options.
const (
	DefaultWriteTimeout = 10 * time.Second
	DefaultIdleTimeout  = 5 * time.Minute
)

// Options configures a Server. A zero field means its default.
type Options struct {
	// Handler runs the calls. Required.
	Handler Handler
	// Immediate answers the calls it can in the goroutine that read them: see
	// SessionOptions.Immediate.
	Immediate Handler
	// Logger receives the transport's own events (refused connections, handler panics); nil
	// discards them.
	Logger *slog.Logger
	Limits Limits
	// WriteTimeout is how long a response may take to be written: a peer that stops reading
	// for longer is disconnected. Default 10 s. (A connection's deadlines are moved only when
	// they would move by more than a sixteenth of their time, so either may end up to that much
	// sooner: re-arming a timer for every request was 5 % of a cached lookup's CPU.)
	WriteTimeout time.Duration
	// IdleTimeout closes a connection that sent no request for this long and has none in
	// flight. Default 5 min; negative means never.
	IdleTimeout time.Duration
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("jsonrpc: server closed")

// Server serves JSON-RPC 2.0 on stream connections (a unix socket), one JSON value per line in
// both directions. Call Serve for each listener, then Shutdown or Close.
type Server struct {
	opts   Options
	lim    Limits
	log    *slog.Logger
	ctx    context.Context // of every handler call; canceled when the server is forced to stop
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	wg        sync.WaitGroup // Serve loops and connections
}

// NewServer returns a server; it serves nothing until Serve.
func NewServer(o Options) *Server {
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		opts:      o,
		lim:       o.Limits.WithDefaults(),
		log:       log,
		ctx:       ctx,
		cancel:    cancel,
		listeners: map[net.Listener]struct{}{},
		conns:     map[*conn]struct{}{},
	}
}

// Serve accepts connections on l until Shutdown or Close, then returns ErrServerClosed. It
// closes l when it returns.
func (s *Server) Serve(l net.Listener) error {
	if s.opts.Handler == nil {
		l.Close()
		return errors.New("jsonrpc: Options.Handler is nil")
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()

	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Most likely out of file descriptors: wait for some to be freed.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("accepting a connection", "err", err, "retry_in", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
			}
			continue
		}
		delay = 0
		s.start(nc)
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) start(nc net.Conn) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return
	}
	if len(s.conns) >= s.lim.MaxConns {
		s.mu.Unlock()
		s.log.Warn("refusing a connection: too many", "limit", s.lim.MaxConns)
		// A fresh connection's send buffer is empty, so this write does not wait; the deadline
		// is only a guard for the accept loop.
		nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		msg := "the server already has " + strconv.Itoa(s.lim.MaxConns) + " connections; try again later"
		nc.Write(append(ErrorResponse(api.CodeBusy, msg), '\n'))
		nc.Close()
		return
	}
	c := &conn{s: s, nc: nc}
	c.io.Init(nc)
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go c.serve()
}

// Shutdown stops accepting connections and reading requests, lets the calls in flight finish
// and their responses be written, then closes every connection. When ctx ends first, the calls
// still running are canceled and their connections closed, and Shutdown returns ctx.Err(). It
// returns once every goroutine of the server has ended.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.stopReading()
	}
	s.mu.Unlock()
	return Drain(ctx, s.wg.Wait, s.cancel, func() {
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
	})
}

// Drain is the waiting half of a server's Shutdown: it waits until wait returns, and when ctx
// ends first, cancels the calls in flight and runs kill (which closes what is still open), waits
// on, and returns ctx.Err(). cancel runs in any case, once the server's goroutines have ended.
// When ctx's deadline passed (a graceful shutdown that ran out of time, not a Close), the
// cancelled calls get CancelGrace to write their error replies before kill.
func Drain(ctx context.Context, wait, cancel, kill func()) error {
	done := make(chan struct{})
	go func() {
		wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			t := time.NewTimer(CancelGrace)
			select {
			case <-done:
			case <-t.C:
			}
			t.Stop()
		}
		kill()
		<-done
	}
	cancel()
	return err
}

// CancelGrace is how long Drain lets cancelled calls write their error replies.
const CancelGrace = 200 * time.Millisecond

// CloseNow runs shutdown with a context that has already ended: a server's Close, which stops
// at once and returns when every goroutine of the server has ended.
func CloseNow(shutdown func(context.Context) error) error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	shutdown(ctx)
	return nil
}

// Close stops the server at once: calls in flight are canceled, connections closed. It returns
// once every goroutine of the server has ended.
func (s *Server) Close() error { return CloseNow(s.Shutdown) }

// conn is one socket connection: the reader runs in serve, and the calls in the session's
// goroutines. Whoever has a response writes it: the reader one it answered at once (a cached
// lookup then goes from the reader to the socket with no other goroutine woken), the session's
// worker the response to a call that waited.
type conn struct {
	s  *Server
	nc net.Conn
	// io makes nc's reads and writes as raw system calls (internal/rawio): a client asking one
	// thing at a time then does not wake the runtime's monitor thread after every wait.
	io rawio.IO

	mu      sync.Mutex // orders stopReading against the reader re-arming its deadline
	closing bool
	readBy  time.Time // the read deadline last set
	writeBy time.Time // the write deadline last set, under wmu

	wmu    sync.Mutex // held while writing a response
	failed bool       // a write failed: the peer is cut off and the responses after it are dropped
	cancel context.CancelFunc
}

// Read reads the socket, for the request reader.
func (c *conn) Read(b []byte) (int, error) { return c.io.Read(c.nc, b) }

func (c *conn) stopReading() {
	c.mu.Lock()
	c.closing = true
	c.nc.SetReadDeadline(time.Now())
	c.mu.Unlock()
}

// armDeadline sets the idle deadline for the next read; false when the connection is closing.
func (c *conn) armDeadline() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	if idle := c.s.opts.IdleTimeout; idle > 0 {
		if by := time.Now().Add(idle); by.Sub(c.readBy) > idle/16 {
			c.nc.SetReadDeadline(by)
			c.readBy = by
		}
	}
	return true
}

func (c *conn) serve() {
	s := c.s
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()

	c.cancel = cancel
	sess := NewSession(ctx, SessionOptions{
		Handler: s.opts.Handler, Immediate: s.opts.Immediate, From: "socket", Limits: s.lim,
		Logger: s.log, Send: c.send,
	})
	c.read(sess)
	sess.Wait()
	c.nc.Close()
}

// send writes a response and its newline, in one system call and without a buffer of the
// connection's own (b is the sender's to give: the newline is appended to it). It waits while another response is being written, and
// a peer that does not read makes it wait up to WriteTimeout: that is how such a peer stops the
// server from reading more requests. It returns false once writing has failed.
func (c *conn) send(b []byte) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.failed {
		return false
	}
	if by := time.Now().Add(c.s.opts.WriteTimeout); by.Sub(c.writeBy) > c.s.opts.WriteTimeout/16 {
		c.nc.SetWriteDeadline(by)
		c.writeBy = by
	}
	if _, err := c.io.Write(c.nc, append(b, '\n')); err != nil {
		c.s.log.Debug("writing a response", "err", err)
		c.failed = true
		c.cancel()
		c.nc.Close() // ends the reader too
		return false
	}
	return true
}

func (c *conn) read(sess *Session) {
	max := c.s.lim.MaxMessage
	br := bufio.NewReaderSize(c, 4096)
	var line []byte
	discarding := false // skipping the rest of a line over the limit
	for {
		if !c.armDeadline() {
			return
		}
		frag, err := br.ReadSlice('\n')
		complete := err == nil
		body := frag
		if complete {
			body = frag[:len(frag)-1]
		}
		switch {
		case discarding:
			discarding = !complete
		case len(line)+len(body) > max:
			// Answer at once: the client may be waiting for a reply before sending the newline.
			line = line[:0]
			discarding = !complete
			c.send(ErrorResponse(api.CodeTooLarge, "the request is larger than "+strconv.Itoa(max)+" bytes"))
		default:
			line = append(line, body...)
			if complete {
				sess.Handle(bytes.Clone(line))
				line = line[:0]
			}
		}
		if err == nil || errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && sess.InFlight() > 0 {
			continue // not idle: waiting on our own calls (or closing, which armDeadline sees)
		}
		if len(line) > 0 && !discarding && !errors.Is(err, os.ErrDeadlineExceeded) {
			sess.Handle(bytes.Clone(line)) // a last request without its newline
		}
		return
	}
}

var tmpSeq atomic.Uint64

// ListenUnix listens on the unix socket path for Serve. It creates the directory (mode 0755)
// when missing and gives the socket mode 0660. A socket left behind by a crashed process
// (nobody answers on it) is replaced; when another process answers on it, ListenUnix refuses
// with an error naming the path. Closing the listener removes the socket file if it is still
// this listener's.
func ListenUnix(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("another delve is already serving on %s", path)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("checking the socket %s: %w", path, err)
		}
		// Stale: the rename below replaces it.
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("checking the socket %s: %w", path, err)
	}

	// Bind under a temporary name and rename into place, so that the socket never exists at
	// path with looser permissions than 0660 (umask is per process and not ours to change).
	tmp := filepath.Join(dir, fmt.Sprintf(".delve-%d-%d.sock", os.Getpid(), tmpSeq.Add(1)))
	os.Remove(tmp)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	l.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		l.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o660); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	return &unixListener{UnixListener: l, path: path, fi: fi}, nil
}

type unixListener struct {
	_ [0]func() // never compared: no equality function in the binary
	*net.UnixListener
	path string
	fi   fs.FileInfo
	once sync.Once
}

func (l *unixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		// Only our own socket: a newer server may have taken the path over.
		if fi, err := os.Lstat(l.path); err == nil && os.SameFile(fi, l.fi) {
			os.Remove(l.path)
		}
	})
	return err
}
