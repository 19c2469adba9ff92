// Package jsonrpc is delve's JSON-RPC 2.0 transport on a unix socket: line framing, dispatch with
// limits shared with the WebSocket transport, a pipelining client and the hub of lookup events.
package jsonrpc
