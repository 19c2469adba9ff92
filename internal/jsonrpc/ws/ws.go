// Package ws serves delve's JSON-RPC 2.0 methods on a WebSocket, one message per text frame, with
// the dispatch of package jsonrpc, plus "subscribe" to a live stream of lookup events.
//
// Limits, before and after the upgrade:
//   - a connection must send its upgrade request (headers included) within 5 s of connecting,
//     and at most Options.MaxPending (16) connections may be waiting for or sending theirs: a
//     newer one closes the oldest of them that has not sent a whole request, so connections
//     that send nothing cannot hold the daemon's descriptors (which its upstream dials need) or
//     keep a client out;
//   - at most Limits.MaxConns (64) WebSocket connections; more are answered HTTP 503;
//   - a frame of at most Limits.MaxMessage (64 KiB); a bigger one closes the connection (1009).
package ws

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/json"
	"github.com/delvedns/delve/internal/jsonrpc"
)

// Methods the WebSocket adds to the handler's.
const (
	MethodSubscribe   = "subscribe"
	MethodUnsubscribe = "unsubscribe"
	// NotifyLookup is the method of the notifications a subscriber receives.
	NotifyLookup = "lookup"
)

// Defaults of Options.
const (
	DefaultWriteTimeout   = 10 * time.Second
	DefaultPingInterval   = 30 * time.Second
	DefaultMaxPending     = 16
	DefaultRequestTimeout = 5 * time.Second
)

// Options configures a Server. A zero field means its default.
type Options struct {
	// Handler runs the calls. Required.
	Handler jsonrpc.Handler
	// Hub is where lookup events come from for "subscribe"; nil leaves the method out.
	Hub *jsonrpc.Hub
	// Token, when set, is required from every client, as "Authorization: Bearer TOKEN" or as
	// "?token=TOKEN" (browsers cannot set headers on a WebSocket). When empty, only loopback
	// addresses may be served.
	Token string
	// Logger receives the transport's own events; nil discards them.
	Logger *slog.Logger
	// Limits as for the socket; MaxMessage bounds a frame (a bigger one closes the connection
	// with 1009) and MaxConns the WebSocket connections (more get HTTP 503).
	Limits jsonrpc.Limits
	// MaxPending bounds the connections that have not finished their upgrade; a newer one closes
	// the oldest of them that has not sent a whole request (see track). Default 16.
	MaxPending int
	// RequestTimeout is how long a connection may take, from accept (or, kept alive, from the
	// first byte of its next request) to the last header of its request, and how long a kept-alive
	// connection may wait between requests. Default 5 s: a client sends its upgrade request a
	// round trip after connecting, and one that sends nothing holds its descriptor, goroutine
	// and buffers no longer than that.
	RequestTimeout time.Duration
	// WriteTimeout is how long one message may take to be written: a peer that stops reading
	// for longer is disconnected. Default 10 s.
	WriteTimeout time.Duration
	// PingInterval is how often the server pings; a peer that sends nothing, not even a pong,
	// for two intervals is disconnected. Default 30 s.
	PingInterval time.Duration
}

// Server serves JSON-RPC 2.0 on WebSocket connections at path "/".
type Server struct {
	opts     Options
	lim      jsonrpc.Limits
	log      *slog.Logger
	tokenSum [sha256.Size]byte
	upgrader websocket.Upgrader
	ctx      context.Context // of every handler call; canceled when the server is forced to stop
	cancel   context.CancelFunc

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	plain     map[*httpConn]struct{} // HTTP connections not (yet) upgraded
	pending   int                    // those of them not evicted
	seq       uint64                 // of the last connection accepted
	evictions uint64                 // connections closed to make room (track)
	plainWG   sync.WaitGroup         // their goroutines, until they close or upgrade
	conns     map[*conn]struct{}
	wg        sync.WaitGroup // WebSocket connections
}

// NewServer returns a server; it serves nothing until Serve.
func NewServer(o Options) *Server {
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.PingInterval <= 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts:     o,
		lim:      o.Limits.WithDefaults(),
		log:      log,
		tokenSum: sha256.Sum256([]byte(o.Token)),
		ctx:      ctx,
		cancel:   cancel,
		conns:    map[*conn]struct{}{},

		listeners: map[net.Listener]struct{}{},
		plain:     map[*httpConn]struct{}{},
		upgrader: websocket.Upgrader{
			ReadBufferSize:  4096,
			WriteBufferSize: 4096,
			// ServeHTTP has checked the origin already, with its own error message.
			CheckOrigin: func(*http.Request) bool { return true },
		},
	}
	return s
}

// CheckAddr refuses a listen address that is not loopback when no token is configured.
func (s *Server) CheckAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("websocket address %q: %w", addr, err)
	}
	if s.opts.Token != "" || isLoopback(host) {
		return nil
	}
	return fmt.Errorf("refusing to serve the WebSocket on %s without a token: set websocket_token, or listen on 127.0.0.1 or ::1", addr)
}

// Listen checks addr (see CheckAddr) and listens on it for Serve.
func (s *Server) Listen(addr string) (net.Listener, error) {
	if err := s.CheckAddr(addr); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for the WebSocket: %w", err)
	}
	return l, nil
}

// Serve serves connections on l until Shutdown or Close, then returns jsonrpc.ErrServerClosed.
// It refuses a listener on a non-loopback address when no token is configured.
func (s *Server) Serve(l net.Listener) error {
	if s.opts.Handler == nil {
		l.Close()
		return errors.New("ws: Options.Handler is nil")
	}
	if err := s.CheckAddr(l.Addr().String()); err != nil {
		l.Close()
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return jsonrpc.ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return jsonrpc.ErrServerClosed
			}
			// Out of file descriptors and the like: wait as net/http does, 5 ms doubling to 1 s.
			if te, ok := err.(interface{ Temporary() bool }); ok && te.Temporary() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Debug("accepting a WebSocket connection", "err", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		hc := &httpConn{nc: nc}
		if !s.track(hc) {
			nc.Close()
			continue // the next Accept fails on the closed listener
		}
		go s.serveHTTP1(hc)
	}
}

// Shutdown stops accepting connections and reading requests, lets the calls in flight finish,
// then closes every connection with 1001 (going away). When ctx ends first, the calls still
// running are canceled and their connections closed, and Shutdown returns ctx.Err(). It returns
// once every goroutine of the server has ended.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.stopReading()
	}
	for l := range s.listeners {
		l.Close()
	}
	for hc := range s.plain {
		if !hc.active {
			hc.nc.Close() // idle: a request in flight gets its answer, then the connection closes
		}
	}
	s.mu.Unlock()
	wait := func() {
		s.plainWG.Wait()
		s.wg.Wait()
	}
	return jsonrpc.Drain(ctx, wait, s.cancel, func() {
		s.mu.Lock()
		for c := range s.conns {
			c.kill()
		}
		for hc := range s.plain {
			hc.nc.Close()
		}
		s.mu.Unlock()
	})
}

// Close stops the server at once: calls in flight are canceled, connections closed. It returns
// once every goroutine of the server has ended.
func (s *Server) Close() error { return jsonrpc.CloseNow(s.Shutdown) }

// ServeHTTP checks the request (path, token, host, origin, connection limit) and serves the
// WebSocket connection it upgrades to.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	if s.opts.Token != "" && !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="delve"`)
		http.Error(w, "a valid token is required: Authorization: Bearer TOKEN, or ?token=TOKEN", http.StatusUnauthorized)
		return
	}
	if s.opts.Token == "" && !isLoopback(hostOnly(r.Host)) {
		// Without a token, a page whose name was rebound to 127.0.0.1 would pass the origin
		// check below; only names that are loopback by definition get through.
		http.Error(w, "host "+strconv.Quote(r.Host)+" is not allowed without a token", http.StatusForbidden)
		return
	}
	if !sameOrigin(r) {
		http.Error(w, "cross-origin WebSocket requests are refused", http.StatusForbidden)
		return
	}
	c := &conn{s: s}
	if msg := s.add(c); msg != "" {
		http.Error(w, msg, http.StatusServiceUnavailable)
		return
	}
	defer s.remove(c)
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	c.mu.Lock()
	c.ws = ws // a Shutdown since add has set closing: serve then only says goodbye
	c.mu.Unlock()
	c.serve()
}

// add registers c, or says why it cannot be served.
func (s *Server) add(c *conn) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "the server is shutting down"
	}
	if len(s.conns) >= s.lim.MaxConns {
		s.log.Warn("refusing a WebSocket connection: too many", "limit", s.lim.MaxConns)
		return "the server already has " + strconv.Itoa(s.lim.MaxConns) + " WebSocket connections; try again later"
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return ""
}

func (s *Server) remove(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

func (s *Server) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		tok = r.URL.Query().Get("token")
	}
	// Hashing first makes the comparison constant-time in the length too.
	sum := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1
}

// sameOrigin accepts requests without an Origin (not from a browser) and those whose Origin
// names the host they were sent to.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	host, _, _ = strings.Cut(host, "%") // a zone
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// conn is one WebSocket connection: the reader runs in serve (the HTTP handler's goroutine), the
// writer in its own goroutine, which also owns the subscription.
type conn struct {
	s  *Server
	ws *websocket.Conn

	mu      sync.Mutex // orders stopReading against the reader re-arming its deadline
	closing bool

	dead chan struct{}   // closed when writing failed
	subs chan subRequest // handler to writer
}

type subRequest struct{ on bool }

func (c *conn) stopReading() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closing = true
	if c.ws != nil {
		c.ws.SetReadDeadline(time.Now())
	}
}

// kill closes the network connection under the reader and the writer.
func (c *conn) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ws != nil {
		c.ws.NetConn().Close()
	}
}

// arm extends the read deadline; false when the connection is closing.
func (c *conn) arm() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.ws.SetReadDeadline(time.Now().Add(2 * c.s.opts.PingInterval))
	return true
}

func (c *conn) serve() {
	s := c.s
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	c.ws.SetReadLimit(int64(s.lim.MaxMessage))
	c.ws.SetPongHandler(func(string) error { c.arm(); return nil })

	out := make(chan []byte, s.lim.MaxInFlight)
	c.dead = make(chan struct{})
	c.subs = make(chan subRequest)
	send := func(b []byte) bool {
		select {
		case out <- b:
			return true
		case <-c.dead:
			return false
		}
	}
	sess := jsonrpc.NewSession(ctx, jsonrpc.SessionOptions{
		Handler: c.handle, From: "websocket", Limits: s.lim, Logger: s.log, Send: send,
	})
	wdone := make(chan struct{})
	closeCode := websocket.CloseGoingAway
	linger := false
	go func() {
		defer close(wdone)
		c.write(out, cancel, &closeCode)
	}()

read:
	for c.arm() {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			switch {
			case errors.Is(err, websocket.ErrReadLimit):
				// gorilla has sent 1009 (message too big) already.
				s.log.Debug("WebSocket frame over the limit", "limit", s.lim.MaxMessage)
				closeCode = 0
				linger = true
			case errors.As(err, &ce):
				closeCode = 0 // gorilla has answered the peer's close
			default:
				s.log.Debug("reading WebSocket", "err", err)
			}
			break read
		}
		// Text or binary alike: the JSON is checked either way.
		sess.Handle(msg)
	}
	sess.Wait()
	close(out) // every sender has finished; closeCode is no longer written
	<-wdone
	if linger {
		c.lingeringClose()
	}
	c.ws.Close()
}

// lingeringClose lets the peer read the close frame: closing a TCP connection with the rest of
// a large frame still unread would reset it, and the peer could lose the frame that says why.
// So: send FIN, then discard what the peer is still sending, for a second at most.
func (c *conn) lingeringClose() {
	nc := c.ws.NetConn()
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	c.mu.Lock()
	if !c.closing {
		nc.SetReadDeadline(time.Now().Add(time.Second))
	}
	c.mu.Unlock()
	io.Copy(io.Discard, io.LimitReader(nc, 64<<20))
}

// handle adds subscribe and unsubscribe to the server's handler.
func (c *conn) handle(ctx context.Context, method string, params json.RawMessage, from string) (any, error) {
	switch method {
	case MethodSubscribe, MethodUnsubscribe:
		if c.s.opts.Hub == nil {
			return nil, api.NewError(api.CodeMethodNotFound, "there is no method "+strconv.Quote(method)+": this server publishes no events")
		}
		select {
		case c.subs <- subRequest{on: method == MethodSubscribe}:
			return true, nil
		case <-c.dead:
			return nil, errors.New("the connection is closed")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return c.s.opts.Handler(ctx, method, params, from)
}

// write is the connection's only writer: responses, events, pings and the final close.
func (c *conn) write(out <-chan []byte, cancel context.CancelFunc, closeCode *int) {
	s := c.s
	hub := s.opts.Hub
	ping := time.NewTicker(s.opts.PingInterval)
	defer ping.Stop()
	var sub *jsonrpc.Subscription
	var events <-chan jsonrpc.Event
	var told uint64 // misses already reported
	unsubscribe := func() {
		if sub != nil {
			hub.Unsubscribe(sub)
			sub, events = nil, nil
		}
	}
	defer unsubscribe()

	failed := false
	writeMsg := func(b []byte) {
		c.ws.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
		if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
			s.log.Debug("writing WebSocket", "err", err)
			failed = true
			close(c.dead)
			cancel()
			unsubscribe()
			c.ws.NetConn().Close() // ends the reader too
		}
	}
	for {
		select {
		case b, ok := <-out:
			if !ok {
				if !failed && *closeCode != 0 {
					c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(*closeCode, ""), time.Now().Add(time.Second))
				}
				return
			}
			if !failed {
				writeMsg(b)
			}
		case r := <-c.subs:
			switch {
			case r.on && sub == nil:
				sub = hub.Subscribe()
				events, told = sub.C, 0
			case !r.on:
				unsubscribe()
			}
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			m := sub.Missed()
			ev.Missed, told = m-told, m
			writeMsg(notification(ev))
		case <-ping.C:
			if !failed {
				c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(s.opts.WriteTimeout))
			}
		}
	}
}

func notification(ev jsonrpc.Event) []byte {
	p, _ := json.Marshal(ev) // an Event always marshals
	b := make([]byte, 0, len(p)+48)
	b = append(b, `{"jsonrpc":"2.0","method":"`+NotifyLookup+`","params":`...)
	b = append(b, p...)
	return append(b, '}')
}
