package api

import (
	"fmt"
	"strings"
)

// Param is one named argument of a method. Every argument delve takes is a string.
type Param struct {
	Name     string
	Required bool
	Doc      string
}

// Method is one entry of the method table shared by the JSON-RPC transports and the rpcd bridge.
type Method struct {
	Name   string
	Params []Param
	// Write marks methods that change the daemon's state; the rpcd ACL grants them to the
	// "write" side only.
	Write bool
	Doc   string
}

// Method names.
const (
	MethodLookup = "lookup"
	MethodStatus = "status"
	MethodReload = "reload"
	MethodFlush  = "flush"
	MethodRedial = "redial"
)

// Methods returns the table of methods the daemon serves, in the order they are documented.
func Methods() []Method {
	return []Method{
		{Name: MethodLookup, Doc: "look a name up over DNS-over-TLS", Params: []Param{
			{Name: "name", Required: true, Doc: "domain name, or an IP address for its PTR record"},
			{Name: "type", Doc: `record type such as "AAAA" or "MX"; default: the UCI type list`},
			{Name: "upstream", Doc: "upstream section name; default: the configured strategy"},
		}},
		{Name: MethodStatus, Doc: "version, uptime, upstreams, cache and configuration"},
		{Name: MethodReload, Write: true, Doc: "re-read the UCI configuration"},
		{Name: MethodFlush, Write: true, Doc: "empty the cache"},
		{Name: MethodRedial, Write: true, Doc: "drop every upstream connection and forget their failures, as SIGUSR1 does"},
	}
}

// NoSuchMethod is the error for a call of a method the table does not have; it lists the
// table's methods.
func NoSuchMethod(method string) *Error {
	names := make([]string, 0, len(Methods()))
	for _, m := range Methods() {
		names = append(names, m.Name)
	}
	return NewError(CodeMethodNotFound, fmt.Sprintf("there is no method %q (methods: %s)", method, strings.Join(names, ", ")))
}

// FindMethod returns the method named name.
func FindMethod(name string) (Method, bool) {
	for _, m := range Methods() {
		if m.Name == name {
			return m, true
		}
	}
	return Method{}, false
}
