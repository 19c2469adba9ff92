package jsonrpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/json"
)

// SessionOptions configures a Session.
type SessionOptions struct {
	Handler Handler
	// Immediate, when set, runs a call in the goroutine that read it, before the call is given to
	// a worker: it answers the calls it can without waiting for anything (a lookup whose answer is
	// cached), and returns ErrWouldWait for the others, which then run on a worker as Handler's;
	// or, with ErrWouldWait, a Handler as the result to run on the worker instead, which goes on
	// with what Immediate has done (the params it decoded). A call answered at once costs no
	// hand-off between goroutines; one given to a worker costs two (to the worker and back).
	Immediate Handler
	// From names the transport for the handler: "socket", "websocket".
	From   string
	Limits Limits
	Logger *slog.Logger
	// Send hands one response, without framing, to the connection's writer; the response is
	// the transport's from then on (the socket appends its newline to it). It returns false
	// when the connection is gone. It may block while the writer is busy: that is how a peer
	// that does not read its responses stops the server from reading more requests.
	Send func([]byte) bool
}

// Session dispatches the messages of one connection. Requests run concurrently, at most
// Limits.MaxInFlight at a time, and their responses are sent as they finish, so they may come
// back out of order (the peer matches them by id). Every transport uses it, so the protocol is
// written once.
type Session struct {
	ctx   context.Context
	h     Handler
	now   Handler
	from  string
	lim   Limits
	log   *slog.Logger
	send  func([]byte) bool
	msgs  chan struct{} // a slot per pending request or batch, held until its response is sent
	calls chan struct{} // a slot per running handler call
	wg    sync.WaitGroup

	// Requests run on worker goroutines that wait for the next one when they are done, at most
	// maxIdleWorkers of them: a goroutine that ran a call has grown its stack to what a call
	// needs, and starting a fresh goroutine for every request paid for that growth
	// (runtime.copystack) each time, a tenth of the daemon's CPU on cached lookups.
	work     chan func() // unbuffered: a send succeeds only when a worker is idle
	idle     atomic.Int32
	quit     chan struct{} // closed by Wait: idle workers end
	quitOnce sync.Once
	workers  sync.WaitGroup
}

// maxIdleWorkers bounds the goroutines a session keeps for its next requests: a client asking
// one question at a time needs one; a burst beyond the bound gets goroutines that end with it.
const maxIdleWorkers = 4

// NewSession returns a session whose handler calls get ctx: cancel it to abandon them.
func NewSession(ctx context.Context, o SessionOptions) *Session {
	lim := o.Limits.WithDefaults()
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Session{
		ctx:   ctx,
		h:     o.Handler,
		now:   o.Immediate,
		from:  o.From,
		lim:   lim,
		log:   log,
		send:  o.Send,
		msgs:  make(chan struct{}, lim.MaxInFlight),
		calls: make(chan struct{}, lim.MaxInFlight),
		work:  make(chan func()),
		quit:  make(chan struct{}),
	}
}

// run runs f on an idle worker, or on a new one.
func (s *Session) run(f func()) {
	select {
	case s.work <- f:
	default:
		s.workers.Add(1)
		go s.worker(f)
	}
}

func (s *Session) worker(f func()) {
	defer s.workers.Done()
	for {
		f()
		if s.idle.Add(1) > maxIdleWorkers {
			s.idle.Add(-1)
			return
		}
		select {
		case f = <-s.work:
			s.idle.Add(-1)
		case <-s.quit:
			s.idle.Add(-1)
			return
		}
	}
}

// InFlight is the number of requests and batches whose responses have not been sent yet.
func (s *Session) InFlight() int { return len(s.msgs) }

// Wait waits until every request handed to Handle has been answered (or abandoned), then ends
// the session's goroutines. Call it after the last Handle.
func (s *Session) Wait() {
	s.wg.Wait()
	s.quitOnce.Do(func() { close(s.quit) })
	s.workers.Wait()
}

// Handle dispatches one message: a request, a notification or a batch. It keeps msg, so the
// caller must not reuse it. It returns once the message is checked and its calls are started;
// it blocks while MaxInFlight requests are pending, and gives up when the session's context
// is canceled. Messages over Limits.MaxMessage are the transport's to refuse before this.
func (s *Session) Handle(msg []byte) {
	data := trimSpace(msg)
	if len(data) == 0 {
		return // a blank line between requests is harmless
	}
	// JSON decoding silently replaces invalid UTF-8 with U+FFFD: a name would change under us.
	if !utf8.Valid(data) {
		s.send(appendError(nil, nil, api.CodeParse, "the request is not valid UTF-8"))
		return
	}
	if tooDeep(data, MaxDepth) {
		s.send(appendError(nil, nil, api.CodeInvalidRequest,
			"the request nests arrays and objects deeper than "+strconv.Itoa(MaxDepth)+" levels"))
		return
	}
	if !json.Valid(data) {
		s.send(appendError(nil, nil, api.CodeParse, "the request is not valid JSON: "+syntaxError(data)))
		return
	}
	switch data[0] {
	case '{':
		r, errResp := parseRequest(data)
		if r == nil {
			s.send(errResp)
			return
		}
		if s.now != nil {
			res, err := s.invoke(r, s.now)
			if !errors.Is(err, ErrWouldWait) {
				if resp := s.respond(r, res, err); resp != nil {
					s.send(resp)
				}
				return
			}
			r.later, _ = res.(Handler)
		}
		if !s.acquire(s.msgs) {
			return
		}
		s.wg.Add(1)
		s.run(func() {
			defer s.wg.Done()
			defer s.release(s.msgs)
			if !s.acquire(s.calls) {
				return
			}
			resp := s.call(r)
			s.release(s.calls)
			if resp != nil {
				s.send(resp)
			}
		})
	case '[':
		elems := json.Elements(data, s.lim.MaxBatch)
		if len(elems) == 0 {
			s.send(appendError(nil, nil, api.CodeInvalidRequest, "an empty batch is not a request"))
			return
		}
		if len(elems) > s.lim.MaxBatch {
			s.send(appendError(nil, nil, api.CodeTooLarge,
				"the batch has more than "+strconv.Itoa(s.lim.MaxBatch)+" members"))
			return
		}
		if !s.acquire(s.msgs) {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.release(s.msgs)
			if resp := s.batch(elems); resp != nil {
				s.send(resp)
			}
		}()
	default:
		s.send(appendError(nil, nil, api.CodeInvalidRequest,
			"a request must be a JSON object or an array of them, not "+json.Kind(data)))
	}
}

func (s *Session) acquire(sem chan struct{}) bool {
	select {
	case sem <- struct{}{}:
		return true
	case <-s.ctx.Done():
		return false
	}
}

func (s *Session) release(sem chan struct{}) { <-sem }

// batch runs the members of a batch concurrently and returns the array of their responses, or
// nil when every member was a notification.
func (s *Session) batch(elems [][]byte) []byte {
	resps := make([][]byte, len(elems))
	var wg sync.WaitGroup
	for i, e := range elems {
		r, errResp := parseRequest(e)
		if r == nil {
			resps[i] = errResp
			continue
		}
		if !s.acquire(s.calls) {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.release(s.calls)
			resps[i] = s.call(r)
		}()
	}
	wg.Wait()
	var b []byte
	for _, r := range resps {
		if r == nil {
			continue
		}
		if b == nil {
			b = append(b, '[')
		} else {
			b = append(b, ',')
		}
		b = append(b, r...)
	}
	if b == nil {
		return nil
	}
	return append(b, ']')
}

// request is a checked JSON-RPC request.
type request struct {
	id     []byte // raw, as received; nil for a notification
	method string
	later  Handler         // runs the call instead of the session's Handler: see SessionOptions.Immediate
	params json.RawMessage // nil when absent
	// badParams, when set, is the invalid-params message: params is neither object nor array.
	badParams string
}

// parseRequest checks one request object (valid JSON). On failure it returns the error response.
func parseRequest(data []byte) (*request, []byte) {
	if data[0] != '{' {
		return nil, appendError(nil, nil, api.CodeInvalidRequest, "a request must be a JSON object, not "+json.Kind(data))
	}
	ms, err := json.Members(data)
	if err != nil {
		return nil, appendError(nil, nil, api.CodeInvalidRequest, "the request is not valid: "+err.Error())
	}
	var r request
	var version, method []byte
	for _, m := range ms {
		switch m.Key {
		case "jsonrpc":
			version = m.Value
		case "method":
			method = m.Value
		case "id":
			r.id = m.Value
		case "params":
			r.params = m.Value
		}
	}
	if r.id != nil {
		switch r.id[0] {
		case '{', '[', 't', 'f':
			return nil, appendError(nil, nil, api.CodeInvalidRequest,
				"the request id must be a string, a number or null, not "+json.Kind(r.id))
		}
	}
	if version == nil || version[0] != '"' || json.Unquote(version) != "2.0" {
		return nil, appendError(nil, r.id, api.CodeInvalidRequest, `the request must have "jsonrpc":"2.0"`)
	}
	if method == nil {
		return nil, appendError(nil, r.id, api.CodeInvalidRequest, `the request has no "method"`)
	}
	if method[0] != '"' {
		return nil, appendError(nil, r.id, api.CodeInvalidRequest, "the method must be a string, not "+json.Kind(method))
	}
	r.method = json.Unquote(method)
	if r.params != nil && r.params[0] != '{' && r.params[0] != '[' {
		r.badParams = "params must be an object or an array, not " + json.Kind(r.params)
	}
	return &r, nil
}

// call runs one request and returns its response, or nil for a notification.
func (s *Session) call(r *request) []byte {
	h := s.h
	if r.later != nil {
		h = r.later
	}
	res, err := s.invoke(r, h)
	return s.respond(r, res, err)
}

// respond returns the response to r of a call that returned res and err, or nil for a
// notification.
func (s *Session) respond(r *request, res any, err error) []byte {
	if r.id == nil {
		if err != nil {
			s.log.Debug("notification failed", "from", s.from, "method", r.method, "err", err)
		}
		return nil
	}
	if err != nil {
		var ae *api.Error
		if errors.As(err, &ae) {
			return appendError(nil, r.id, ae.Code, ae.Message)
		}
		s.log.Warn("method failed", "from", s.from, "method", r.method, "err", err)
		return appendError(nil, r.id, api.CodeInternal, err.Error())
	}
	b := append(make([]byte, 0, 512), `{"jsonrpc":"2.0","id":`...)
	b = append(append(b, r.id...), `,"result":`...)
	if a, ok := res.(Appender); ok {
		return append(a.AppendJSON(b), '}')
	}
	j, err := json.Marshal(res)
	if err != nil {
		s.log.Error("encoding result", "from", s.from, "method", r.method, "err", err)
		return appendError(nil, r.id, api.CodeInternal, "encoding the result of "+r.method+" failed")
	}
	return append(append(b, j...), '}')
}

func (s *Session) invoke(r *request, h Handler) (res any, err error) {
	if r.badParams != "" {
		return nil, api.NewError(api.CodeBadRequest, r.badParams)
	}
	if strings.HasPrefix(r.method, "rpc.") {
		// JSON-RPC 2.0 reserves these names for the protocol; delve defines none.
		return nil, api.NewError(api.CodeMethodNotFound, "there is no method "+strconv.Quote(r.method))
	}
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("method panicked", "from", s.from, "method", r.method, "panic", p, "stack", string(debug.Stack()))
			res, err = nil, api.NewError(api.CodeInternal, "the method "+r.method+" failed unexpectedly")
		}
	}()
	return h(s.ctx, r.method, r.params, s.from)
}

// syntaxError describes why data (not valid JSON) is invalid, with the byte offset.
func syntaxError(data []byte) string {
	var v struct{}
	err := json.Unmarshal(data, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	}
	if err != nil {
		return err.Error()
	}
	return "unknown error"
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}
