package ws

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// The WebSocket needs HTTP/1.1 for one request per connection, the upgrade, and the short
// refusals before it (401, 403, 404, 503, gorilla's 400 and 405). net/http's Server would do that
// too, but it brings the whole server with its bundled HTTP/2 into the binary (half a megabyte on
// armv7, where flash is what a router has least of), so this file reads the requests with
// http.ReadRequest and answers them itself, with the limits the Server had been given.
const (
	writeTimeout   = 10 * time.Second // of an answer before the upgrade
	maxHeaderBytes = 16 << 10
	// readLimit is what one request may read, as net/http counts it: the header limit plus a
	// bufio.Reader's worth.
	readLimit = maxHeaderBytes + 4096
)

// httpConn is a plain HTTP connection, from accept until it closes or is hijacked for a WebSocket.
type httpConn struct {
	nc      net.Conn
	seq     uint64 // accept order
	active  bool   // a request has been read and is being answered; Shutdown closes only the others
	evicted bool   // closed to make room for a newer connection (see track)
}

// track registers a new connection; false when it must be closed: the server is shutting down,
// or MaxPending connections are being answered. When MaxPending connections have not finished
// their upgrade, the oldest of them that has not sent a whole request is closed to make room: a
// client that connects and sends nothing (or trickles its headers) cannot keep a newer client
// out, and the descriptors, goroutines and buffers of connections that are not WebSockets yet
// stay bounded. A legitimate client sends its request within a round trip of connecting, so only
// a flood of new connections within that time can evict it.
func (s *Server) track(hc *httpConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.pending >= s.opts.MaxPending {
		var oldest *httpConn
		for c := range s.plain {
			if !c.active && !c.evicted && (oldest == nil || c.seq < oldest.seq) {
				oldest = c
			}
		}
		if oldest == nil {
			return false
		}
		oldest.evicted = true
		s.pending--
		oldest.nc.Close() // its goroutine ends, and untracks it
		s.evictions++
		if s.evictions&(s.evictions-1) == 0 { // 1, 2, 4, 8...: a flood is one line per doubling
			s.log.Warn("closing WebSocket connections that have not sent their upgrade request, to make room for newer ones",
				"limit", s.opts.MaxPending, "closed_so_far", s.evictions)
		}
	}
	s.seq++
	hc.seq = s.seq
	s.plain[hc] = struct{}{}
	s.pending++
	s.plainWG.Add(1)
	return true
}

// untrack forgets hc: it was closed or handed to a WebSocket.
func (s *Server) untrack(hc *httpConn) {
	s.mu.Lock()
	_, ok := s.plain[hc]
	if ok {
		delete(s.plain, hc)
		if !hc.evicted {
			s.pending--
		}
	}
	s.mu.Unlock()
	if ok {
		s.plainWG.Done()
	}
}

// setActive marks hc busy or idle; false when the server is shutting down, and hc should close.
func (s *Server) setActive(hc *httpConn, active bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	hc.active = active
	return !s.closed
}

// limitReader ends the stream after remain bytes: net/http's guard against endless headers.
type limitReader struct {
	r      io.Reader
	remain int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.remain <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.remain {
		p = p[:l.remain]
	}
	n, err := l.r.Read(p)
	l.remain -= int64(n)
	return n, err
}

// serveHTTP1 reads requests from nc and answers them until the client closes, a request is
// upgraded (the WebSocket then runs in this goroutine), or the server shuts down.
func (s *Server) serveHTTP1(hc *httpConn) {
	nc := hc.nc
	hijacked := false
	defer func() {
		if v := recover(); v != nil && v != http.ErrAbortHandler {
			s.log.Debug("panic serving a WebSocket connection", "remote", nc.RemoteAddr().String(), "panic", v, "stack", string(debug.Stack()))
		}
		if !hijacked {
			nc.Close()
			s.untrack(hc)
		}
	}()
	lr := &limitReader{r: nc}
	br := bufio.NewReaderSize(lr, 4096)
	bw := bufio.NewWriterSize(nc, 4096)
	for first := true; ; first = false {
		if !first {
			// Idle: wait for the next request's first byte as long as RequestTimeout.
			nc.SetReadDeadline(time.Now().Add(s.opts.RequestTimeout))
			lr.remain = math.MaxInt64
			if _, err := br.Peek(1); err != nil {
				return
			}
		}
		nc.SetReadDeadline(time.Now().Add(s.opts.RequestTimeout))
		lr.remain = readLimit
		r, err := http.ReadRequest(br)
		if !s.setActive(hc, true) {
			return // shutting down: a request read now gets no answer
		}
		if err != nil {
			s.refuse(nc, err, lr.remain <= 0)
			return
		}
		if status, msg := checkRequest(r); status != 0 {
			writeRaw(nc, status, msg)
			return
		}
		lr.remain = math.MaxInt64
		nc.SetReadDeadline(time.Time{})
		r.RemoteAddr = nc.RemoteAddr().String()

		w := &response{nc: nc, brw: bufio.NewReadWriter(br, bw), header: http.Header{}}
		w.onHijack = func() {
			hijacked = true
			s.untrack(hc)
		}
		s.ServeHTTP(w, r)
		if hijacked {
			return
		}
		// A body the handler left unread would be taken for the next request: close instead.
		closing := r.Close || r.ContentLength != 0 || len(r.TransferEncoding) > 0 || !s.setActive(hc, false)
		if err := w.finish(r, closing); err != nil || closing {
			return
		}
	}
}

// refuse answers a request that could not be read, as net/http's server does.
func (s *Server) refuse(nc net.Conn, err error, tooLarge bool) {
	var ne net.Error
	switch {
	case tooLarge:
		writeRaw(nc, http.StatusRequestHeaderFieldsTooLarge, "")
		// The client may still be sending: closing with its bytes unread would reset the
		// connection, and the client could lose the answer. Half-close and drain a little.
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		io.Copy(io.Discard, io.LimitReader(nc, 256<<10))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed), errors.As(err, &ne):
		// The client went away or was too slow: nobody to answer.
	default:
		s.log.Debug("reading an HTTP request", "remote", nc.RemoteAddr().String(), "err", s.redact(err.Error()))
		writeRaw(nc, http.StatusBadRequest, "")
	}
}

// redact hides what a request may carry of the token in a message quoting it (http.ReadRequest's
// errors quote the malformed request line or header line): the token itself, and every query
// string, where it may be percent-encoded.
func (s *Server) redact(msg string) string {
	if s.opts.Token != "" {
		msg = strings.ReplaceAll(msg, s.opts.Token, "<token>")
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(msg, '?')
		if i < 0 {
			b.WriteString(msg)
			return b.String()
		}
		b.WriteString(msg[:i+1])
		b.WriteString("…")
		msg = msg[i+1:]
		if j := strings.IndexAny(msg, " \"\\"); j >= 0 {
			msg = msg[j:]
		} else {
			msg = ""
		}
	}
}

// checkRequest applies the checks net/http's server makes beyond http.ReadRequest (which has
// moved the Host header to r.Host).
func checkRequest(r *http.Request) (status int, msg string) {
	switch {
	case r.ProtoMajor != 1:
		return http.StatusHTTPVersionNotSupported, "unsupported protocol version"
	case r.ProtoAtLeast(1, 1) && r.Host == "" && r.Method != "CONNECT":
		return http.StatusBadRequest, "missing required Host header"
	case !validHost(r.Host):
		return http.StatusBadRequest, "malformed Host header"
	}
	return 0, ""
}

// validHost allows the bytes net/http allows in a Host header.
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!$%&'()*+,-.:;=[]_~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// writeRaw answers with status and closes: a request that could not be read gets no keep-alive.
func writeRaw(nc net.Conn, status int, detail string) {
	text := strconv.Itoa(status) + " " + http.StatusText(status)
	if detail != "" {
		text += ": " + detail
	}
	nc.SetWriteDeadline(time.Now().Add(time.Second))
	io.WriteString(nc, "HTTP/1.1 "+text+"\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"+text)
}

// response is the http.ResponseWriter of one request. The answers before an upgrade are short
// refusals, so the body is buffered and sent with a Content-Length when the handler returns;
// Hijack hands the connection and its buffers to gorilla's Upgrader.
type response struct {
	nc       net.Conn
	brw      *bufio.ReadWriter
	header   http.Header
	status   int
	body     bytes.Buffer
	hijacked bool
	onHijack func()
}

var _ http.Hijacker = (*response)(nil)

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.status == 0 && !w.hijacked {
		w.status = code
	}
}

func (w *response) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	w.hijacked = true
	w.onHijack()
	return w.nc, w.brw, nil
}

// finish writes the response: status line, the handler's headers, Date, Content-Length, and
// Connection: close when the connection ends after it.
func (w *response) finish(r *http.Request, closing bool) error {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	bw := w.brw.Writer
	proto := "HTTP/1.1 "
	if !r.ProtoAtLeast(1, 1) {
		proto = "HTTP/1.0 "
	}
	bw.WriteString(proto + strconv.Itoa(w.status) + " " + http.StatusText(w.status) + "\r\n")
	h := w.header
	h.Del("Content-Length")
	h.Del("Connection")
	h.Del("Transfer-Encoding")
	if closing {
		h.Set("Connection", "close")
	} else if !r.ProtoAtLeast(1, 1) {
		h.Set("Connection", "keep-alive")
	}
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	h.Set("Content-Length", strconv.Itoa(w.body.Len()))
	h.Write(bw)
	bw.WriteString("\r\n")
	if r.Method != http.MethodHead {
		bw.Write(w.body.Bytes())
	}
	w.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	err := bw.Flush()
	w.nc.SetWriteDeadline(time.Time{})
	return err
}
