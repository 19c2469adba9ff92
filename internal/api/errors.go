package api

import "errors"

// Code names the kind of a failure. The same names appear in JSON-RPC error data and in the
// {"error":..., "code":...} object the rpcd bridge returns through ubus.
type Code string

// Error codes.
const (
	CodeParse          Code = "parse_error"      // the request is not JSON
	CodeInvalidRequest Code = "invalid_request"  // JSON, but not a JSON-RPC 2.0 request
	CodeMethodNotFound Code = "method_not_found" // no such method
	CodeBadRequest     Code = "bad_request"      // invalid params: a bad name, type or upstream
	CodeTimeout        Code = "timeout"          // the lookup deadline passed
	CodeNoUpstream     Code = "no_upstream"      // no upstream could answer
	CodeBadAnswer      Code = "bad_answer"       // the name's answer does not parse (its zone's data)
	CodeConfig         Code = "config_error"     // reload: the new configuration was refused
	CodeTooLarge       Code = "too_large"        // the request is over a size limit
	CodeBusy           Code = "busy"             // a concurrency limit was reached
	CodeInternal       Code = "internal"         // a bug
	CodeDaemonDown     Code = "daemon_down"      // the bridge found no daemon on the socket
)

// rpcCodes maps codes to JSON-RPC 2.0 error numbers: the standard ones where they exist, and
// delve's own in the implementation-defined server-error range (-32000 to -32099). A table, not
// a map: a map literal is code that builds it at start, some 800 bytes of the armv7 binary.
var rpcCodes = [...]struct {
	code Code
	n    int
}{
	{CodeParse, -32700},
	{CodeInvalidRequest, -32600},
	{CodeMethodNotFound, -32601},
	{CodeBadRequest, -32602},
	{CodeInternal, -32603},
	{CodeTimeout, -32001},
	{CodeNoUpstream, -32002},
	{CodeConfig, -32003},
	{CodeTooLarge, -32004},
	{CodeBusy, -32005},
	{CodeDaemonDown, -32006},
	{CodeBadAnswer, -32007},
}

// RPC is the JSON-RPC error number of c.
func (c Code) RPC() int {
	for _, e := range rpcCodes {
		if e.code == c {
			return e.n
		}
	}
	return -32603
}

// CodeFromRPC is the inverse of RPC.
func CodeFromRPC(n int) Code {
	for _, e := range rpcCodes {
		if e.n == n {
			return e.code
		}
	}
	return CodeInternal
}

// Error is a failure with a code and a one-sentence message for people.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return e.Message }

// NewError returns an *Error with the given code and message.
func NewError(code Code, msg string) *Error { return &Error{Code: code, Message: msg} }

// CodeOf returns the code of err when it is (or wraps) an *Error, else CodeInternal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
