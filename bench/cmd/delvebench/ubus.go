package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/json"
	"github.com/delvedns/delve/ubus"
	"github.com/delvedns/delve/ubus/blob"
	"github.com/delvedns/delve/ubus/ubusd"
	"github.com/delvedns/delve/ubus/ubusd/ubusdtest"
)

// ubusResult is the cost of the native ubus object without ubusd (issue 23): the codec and
// dispatch of one cached lookup in process, and whole calls through a unix socket and the
// stand-in ubusd, one at a time.
type ubusResult struct {
	handle, socket testing.BenchmarkResult
	argBytes       int
	replyBytes     int
}

// ubusLookup is a cached lookup's result object, as the daemon returns it for a two-address name.
const ubusLookup = `{"name":"a.delve.test.","types":["A","AAAA"],"rcode":"NOERROR","answers":[` +
	`{"name":"a.delve.test.","type":"A","ttl":299,"data":"192.0.2.1"},` +
	`{"name":"a.delve.test.","type":"AAAA","ttl":299,"data":"2001:db8::1"}],` +
	`"addresses":["192.0.2.1","2001:db8::1"],"upstream":"test","rtt_ms":0,"cached":true,"secure":false}`

func runUbus(ctx context.Context) (*ubusResult, error) {
	call := func(context.Context, string, map[string]string) (json.RawMessage, error) {
		return json.RawMessage(ubusLookup), nil
	}
	var args blob.Buf
	if err := blob.AddJSON(&args, []byte(`{"name":"a.delve.test"}`)); err != nil {
		return nil, err
	}
	req := &ubusd.Request{Method: "lookup", Data: args.Bytes()}
	reply, st := ubus.Handle(ctx, call, req)
	if st != ubusd.StatusOK {
		return nil, fmt.Errorf("ubus.Handle: status %v", st)
	}
	r := &ubusResult{argBytes: len(args.Bytes()), replyBytes: len(reply)}
	r.handle = testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ubus.Handle(ctx, call, req)
		}
	})

	dir, err := os.MkdirTemp("", "delvebench-ubus")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	s, err := ubusdtest.Listen(filepath.Join(dir, "ubus.sock"))
	if err != nil {
		return nil, err
	}
	defer s.Close()
	c, err := ubusd.Dial(ctx, s.Path, ubusd.Options{})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if _, err := c.Add(ctx, &ubusd.Object{Name: ubus.ObjectName, Methods: ubus.Methods(),
		Handler: func(ctx context.Context, r *ubusd.Request) ([]byte, ubusd.Status) { return ubus.Handle(ctx, call, r) }}); err != nil {
		return nil, err
	}
	var failed error
	r.socket = testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, st, err := s.Call(cctx, ubus.ObjectName, "lookup", args.Bytes())
			cancel()
			if err == nil && st != ubusd.StatusOK {
				err = st
			}
			if err != nil {
				failed = err
				return
			}
		}
	})
	if failed != nil {
		return nil, fmt.Errorf("a call through the stand-in ubusd: %w", failed)
	}
	return r, nil
}

func (b *bench) ubusRun(ctx context.Context) error {
	r, err := runUbus(ctx)
	if err != nil {
		return err
	}
	b.ubus = r
	b.logf("ubus: codec and dispatch %s/call, through a socket and the stand-in ubusd %s/call",
		time.Duration(r.handle.NsPerOp()), time.Duration(r.socket.NsPerOp()))
	return nil
}

func (r *ubusResult) report(p func(string, ...any)) {
	p("\n== Native ubus object without ubusd (issue 23): a cached lookup's call, one at a time\n\n")
	p("  codec and dispatch in process (ubus.Handle: %d bytes of blobmsg arguments -> JSON -> checks -> the call -> JSON -> %d bytes of blobmsg):\n", r.argBytes, r.replyBytes)
	p("    %.1f µs/call, %d allocs and %d bytes per call, %d calls\n", float64(r.handle.NsPerOp())/1e3, r.handle.AllocsPerOp(), r.handle.AllocedBytesPerOp(), r.handle.N)
	p("  whole calls through a unix socket: the stand-in ubusd (ubusdtest) sends INVOKE, the client answers DATA and STATUS:\n")
	p("    %.1f µs/call (%.0f calls/s), %d calls; allocs counted for both ends: %d per call\n", float64(r.socket.NsPerOp())/1e3, 1e9/float64(max(r.socket.NsPerOp(), 1)), r.socket.N, r.socket.AllocsPerOp())
	p("  (with a real ubusd, `ubus call` adds its own start, connection and lookup of the object: see the README's ubus section)\n")
}
