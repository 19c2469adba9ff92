package ubus

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/json"
	"github.com/delvedns/delve/uci"
)

// Environment variables read by Run (see the package documentation).
const (
	EnvSocket = "DELVE_SOCKET"
	EnvConfig = "DELVE_CONFIG"
)

// Exit statuses of Run. rpcd ignores them; they are for people running `delve rpcd` by hand.
const (
	ExitOK    = 0 // list printed, or call answered (possibly with an error object)
	ExitFail  = 1 // list could not be written
	ExitUsage = 2 // bad arguments to `delve rpcd` itself
)

const usage = "usage: delve rpcd list | delve rpcd call METHOD (the arguments as a JSON object on stdin)"

// Run is `delve rpcd ARGS...`: args are the words after "rpcd". getenv reads EnvSocket and
// EnvConfig (os.Getenv in the real program). ctx ending (SIGTERM) ends a call early with a
// timeout error object.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	switch {
	case len(args) == 1 && args[0] == "list":
		// No daemon and no network: rpcd waits for this without a timeout while it starts.
		sig := Signature()
		if native(getenv) {
			// The daemon registers the object itself: rpcd registers nothing for an empty
			// list, which leaves the name to the daemon.
			sig = []byte("{}")
		}
		if _, err := stdout.Write(append(sig, '\n')); err != nil {
			fmt.Fprintln(stderr, "delve rpcd list:", err)
			return ExitFail
		}
		return ExitOK
	case len(args) == 2 && args[0] == "call":
		o := Options{Socket: getenv(EnvSocket), Config: getenv(EnvConfig)}
		if o.Config == "" {
			o.Config = uci.DefaultPath
		}
		Call(ctx, o, args[1], stdin, stdout)
		return ExitOK
	}
	fmt.Fprintln(stderr, usage)
	return ExitUsage
}

// native reports whether the configuration (EnvConfig, else uci.DefaultPath) says option ubus
// 'native'. A file that cannot be read leaves the bridge on, as before the option existed.
func native(getenv func(string) string) bool {
	path := getenv(EnvConfig)
	if path == "" {
		path = uci.DefaultPath
	}
	cfg, err := uci.Load(path)
	return err == nil && cfg.Ubus == uci.UbusNative
}

// sampleString is the sample value of a string argument in the signature: rpcd declares an
// argument with a string sample as blobmsg STRING, which `ubus -v list` shows as "String".
const sampleString = "string"

// Signature is the object `delve rpcd list` prints, generated from api.Methods in the table's
// order: each method maps to an object of its arguments with sample values, e.g.
// {"lookup":{"name":"string",...},"status":{},...}.
func Signature() []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range api.Methods() {
		if i > 0 {
			b.WriteByte(',')
		}
		writeJSONString(&b, m.Name)
		b.WriteString(":{")
		for j, p := range m.Params {
			if j > 0 {
				b.WriteByte(',')
			}
			writeJSONString(&b, p.Name)
			b.WriteByte(':')
			writeJSONString(&b, sampleString)
		}
		b.WriteByte('}')
	}
	b.WriteByte('}')
	return b.Bytes()
}

func writeJSONString(b *bytes.Buffer, s string) {
	q, _ := json.Marshal(s) // a string always encodes
	b.Write(q)
}
