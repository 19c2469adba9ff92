package ubus_test

import (
	"context"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/json"
	"github.com/delvedns/delve/internal/jsonrpc"
	"github.com/delvedns/delve/internal/testenv"
	"github.com/delvedns/delve/ubus"
	"github.com/delvedns/delve/ubus/blob"
	"github.com/delvedns/delve/ubus/ubusd"
)

// TestNativeCloseLeavesNoGoroutines: Close unregisters the object and ends the session, its
// connection, the calls in flight and the event subscription.
func TestNativeCloseLeavesNoGoroutines(t *testing.T) {
	bus := standIn(t, shortDir(t))
	before := runtime.NumGoroutine()
	started := make(chan struct{}, 1)
	var hub jsonrpc.Hub
	log := &testenv.SyncBuffer{}
	n := ubus.StartNative(ubus.NativeOptions{
		Socket: bus.Path, Hub: &hub, Logger: slog.New(slog.NewTextHandler(log, nil)),
		Call: func(ctx context.Context, method string, _ map[string]string) (json.RawMessage, error) {
			if method == "lookup" {
				started <- struct{}{}
				<-ctx.Done() // a lookup that never ends by itself
			}
			return json.RawMessage(`{}`), nil
		},
	})
	waitFor(t, "registered", func() bool { return n.Status().Registered })
	_, unsubscribe, err := bus.Subscribe(ubus.ObjectName)
	if err != nil {
		t.Fatal(err)
	}
	defer unsubscribe()
	waitFor(t, "following the hub", func() bool { return hub.Subscribers() == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		var w blob.Buf
		w.AddString("name", "x.test")
		_, _, _ = bus.Call(ctx, ubus.ObjectName, "lookup", w.Bytes())
	}()
	<-started
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	cancel()
	if hub.Subscribers() != 0 {
		t.Fatal("the hub subscription outlived Close")
	}
	waitFor(t, "the object unregistered", func() bool { return !bus.Registered(ubus.ObjectName) })
	for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
	}
	if !strings.Contains(log.String(), "ubus object registered") {
		t.Fatalf("log:\n%s", log)
	}
}

// BenchmarkHandle is the codec and dispatch of one cached lookup's call (as in make bench's ubus
// section): blobmsg arguments to JSON, the checks, the call, its JSON result to blobmsg.
func BenchmarkHandle(b *testing.B) {
	const result = `{"name":"a.delve.test.","types":["A","AAAA"],"rcode":"NOERROR","answers":[` +
		`{"name":"a.delve.test.","type":"A","ttl":299,"data":"192.0.2.1"},` +
		`{"name":"a.delve.test.","type":"AAAA","ttl":299,"data":"2001:db8::1"}],` +
		`"addresses":["192.0.2.1","2001:db8::1"],"upstream":"test","rtt_ms":0,"cached":true,"secure":false}`
	call := func(context.Context, string, map[string]string) (json.RawMessage, error) {
		return json.RawMessage(result), nil
	}
	var w blob.Buf
	w.AddString("name", "a.delve.test")
	req := &ubusd.Request{Method: "lookup", Data: w.Bytes()}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, st := ubus.Handle(ctx, call, req); st != ubusd.StatusOK {
			b.Fatal(st)
		}
	}
}
