package jsonrpc

import (
	"context"
	"errors"
	"strconv"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/json"
)

// Handler runs one method call. params is the raw "params" member (nil when absent). from names
// the transport ("socket", "websocket"). It returns a result to marshal, or an error: an
// *api.Error keeps its code; any other error is reported as CodeInternal. ctx is canceled when
// the connection breaks or the server is forced to stop, and the handler must then return.
type Handler func(ctx context.Context, method string, params json.RawMessage, from string) (any, error)

// ErrWouldWait is what a Session's Immediate handler returns for a call it cannot answer without
// waiting for something.
var ErrWouldWait = errors.New("jsonrpc: the call would wait")

// Defaults of Limits.
const (
	DefaultMaxMessage  = 64 << 10 // bytes in one request line or frame
	DefaultMaxBatch    = 100      // members in one batch
	DefaultMaxInFlight = 16       // requests pending on one connection
	DefaultMaxConns    = 64       // connections served at once
	// MaxDepth is how deep arrays and objects may nest in a request. delve's params are flat;
	// the bound keeps deeply nested input from costing the decoder anything.
	MaxDepth = 32
)

// Limits bound what one peer can make a server hold. A zero field means its default.
//
// Memory is bounded by MaxConns × MaxInFlight × MaxMessage for requests waiting on handlers
// (64 MiB with the defaults, reached only by many large requests on slow methods) plus one line
// buffer of MaxMessage per connection.
type Limits struct {
	// MaxMessage is the largest request line (socket, without its newline) or frame
	// (WebSocket) in bytes: default 64 KiB. A bigger line is answered with too_large and
	// skipped; a bigger frame closes that WebSocket connection with code 1009.
	MaxMessage int
	// MaxBatch is the largest batch: default 100 members. A bigger one is answered with a
	// single too_large error.
	MaxBatch int
	// MaxInFlight is how many requests (a batch counts once) may be pending on one connection,
	// and how many handler calls one connection may run at once: default 16. A pipelining
	// client beyond it waits: the server stops reading until a response has been written.
	MaxInFlight int
	// MaxConns is how many connections a server holds: default 64. Further ones are refused
	// with a busy error (socket) or HTTP 503 (WebSocket).
	MaxConns int
}

// WithDefaults returns l with its zero fields set to the defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxMessage <= 0 {
		l.MaxMessage = DefaultMaxMessage
	}
	if l.MaxBatch <= 0 {
		l.MaxBatch = DefaultMaxBatch
	}
	if l.MaxInFlight <= 0 {
		l.MaxInFlight = DefaultMaxInFlight
	}
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultMaxConns
	}
	return l
}

var nullID = []byte("null")

// Appender is a result that writes its own JSON, exactly what encoding/json writes for it (it
// is also a json.Marshaler, for the transports that marshal results): a session appends it to
// the response in place, without encoding/json's reflection and the copy of its output.
type Appender interface {
	AppendJSON(b []byte) []byte
}

// appendError appends an error response. A nil id is written as null.
func appendError(b, id []byte, code api.Code, msg string) []byte {
	if id == nil {
		id = nullID
	}
	if api.CodeFromRPC(code.RPC()) != code {
		code = api.CodeInternal // a code api does not know: a bug, but the peer gets a valid error
	}
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"error":{"code":`...)
	b = strconv.AppendInt(b, int64(code.RPC()), 10)
	b = append(b, `,"message":`...)
	m, _ := json.Marshal(msg) // a string always marshals
	b = append(b, m...)
	b = append(b, `,"data":{"code":`...)
	c, _ := json.Marshal(string(code))
	b = append(b, c...)
	return append(b, "}}}"...)
}

// ErrorResponse is the JSON-RPC error response with a null id, for a transport that must refuse
// a connection or message before any request is read (for example, too many connections).
func ErrorResponse(code api.Code, msg string) []byte {
	return appendError(nil, nil, code, msg)
}
