package ubusd_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/delvedns/delve/ubus/blob"
	"github.com/delvedns/delve/ubus/ubusd"
	"github.com/delvedns/delve/ubus/ubusd/ubusdtest"
)

func standIn(t *testing.T) *ubusdtest.Server {
	t.Helper()
	dir, err := os.MkdirTemp("", "ubusd") // unix socket paths are short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s, err := ubusdtest.Listen(filepath.Join(dir, "ubus.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func table(build func(w *blob.Buf)) []byte {
	var w blob.Buf
	build(&w)
	return w.Bytes()
}

// TestObject registers an object with the stand-in and calls it: the signature as given, a reply
// with data, an unknown method, calls answered concurrently, the subscriber flag and a
// notification reaching the subscriber.
func TestObject(t *testing.T) {
	s := standIn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := ubusd.Dial(ctx, s.Path, ubusd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	release := make(chan struct{})
	slowStarted := make(chan struct{})
	subscribed := make(chan bool, 4)
	obj := &ubusd.Object{
		Name: "test",
		Methods: []ubusd.Method{
			{Name: "echo", Params: []ubusd.Param{{Name: "msg", Type: blob.TypeString}}},
			{Name: "slow"},
		},
		Handler: func(ctx context.Context, r *ubusd.Request) ([]byte, ubusd.Status) {
			switch r.Method {
			case "echo":
				return r.Data, ubusd.StatusOK
			case "slow":
				close(slowStarted)
				select {
				case <-release:
				case <-ctx.Done():
				}
				return nil, ubusd.StatusTimeout
			}
			return nil, ubusd.StatusUnknownError
		},
		OnSubscribe: func(on bool) { subscribed <- on },
	}
	id, err := c.Add(ctx, obj)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.Signature("test")
	if err != nil {
		t.Fatal(err)
	}
	want := []blob.Field{
		{Name: "echo", Type: blob.TypeTable, List: []blob.Field{{Name: "msg", Type: blob.TypeInt32, Int: int64(blob.TypeString)}}},
		{Name: "slow", Type: blob.TypeTable},
	}
	if !reflect.DeepEqual(sig, want) {
		t.Fatalf("signature %+v", sig)
	}

	// A slow call holds nothing up.
	slowDone := make(chan ubusd.Status, 1)
	go func() {
		_, st, _ := s.Call(ctx, "test", "slow", nil)
		slowDone <- st
	}()
	<-slowStarted
	args := table(func(w *blob.Buf) { w.AddString("msg", "hi") })
	reply, st, err := s.Call(ctx, "test", "echo", args)
	if err != nil || st != ubusd.StatusOK || !bytes.Equal(reply, args) {
		t.Fatalf("echo: %x %v %v", reply, st, err)
	}
	close(release)
	if st := <-slowDone; st != ubusd.StatusTimeout {
		t.Fatalf("slow: status %v", st)
	}
	if _, st, err := s.Call(ctx, "test", "nosuch", nil); err != nil || st != ubusd.StatusMethodNotFound {
		t.Fatalf("nosuch: %v %v", st, err)
	}

	// Subscribers.
	if c.Subscribed(id) {
		t.Fatal("subscribed before anyone subscribed")
	}
	notes, unsubscribe, err := s.Subscribe("test")
	if err != nil {
		t.Fatal(err)
	}
	if on := <-subscribed; !on || !c.Subscribed(id) {
		t.Fatal("not told of the subscriber")
	}
	data := table(func(w *blob.Buf) { w.AddString("name", "x.") })
	if err := c.Notify(id, "lookup", data); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-notes:
		if n.Type != "lookup" || !bytes.Equal(n.Data, data) {
			t.Fatalf("notification %+v", n)
		}
	case <-ctx.Done():
		t.Fatal("no notification")
	}
	unsubscribe()
	if on := <-subscribed; on {
		t.Fatal("not told the subscriber left")
	}

	// Removed, the object answers no more.
	if err := c.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Call(ctx, "test", "echo", args); !errors.Is(err, ubusdtest.ErrNotFound) {
		t.Fatalf("call after Remove: %v", err)
	}
}

// TestNameTaken: ubusd refuses a second object of the same name with INVALID_ARGUMENT; Lookup
// finds the first.
func TestNameTaken(t *testing.T) {
	s := standIn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := ubusd.Dial(ctx, s.Path, ubusd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := ubusd.Dial(ctx, s.Path, ubusd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	obj := &ubusd.Object{Name: "delve", Handler: func(context.Context, *ubusd.Request) ([]byte, ubusd.Status) { return nil, 0 }}
	id, err := a.Add(ctx, obj)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Add(ctx, obj); !errors.Is(err, ubusd.StatusInvalidArgument) {
		t.Fatalf("second Add: %v", err)
	}
	if got, err := b.Lookup(ctx, "delve"); err != nil || got != id {
		t.Fatalf("Lookup: %x %v, want %x", got, err, id)
	}
	if _, err := b.Lookup(ctx, "other"); !errors.Is(err, ubusd.StatusNotFound) {
		t.Fatalf("Lookup of a missing object: %v", err)
	}
}

// TestUbusdGone: when ubusd stops, Done closes and requests fail instead of hanging.
func TestUbusdGone(t *testing.T) {
	s := standIn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := ubusd.Dial(ctx, s.Path, ubusd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s.Close()
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("the connection did not end")
	}
	if c.Err() == nil {
		t.Fatal("Err is nil after the end")
	}
	if _, err := c.Lookup(ctx, "x"); err == nil {
		t.Fatal("a request on a dead connection succeeded")
	}
}

// TestCloseLeavesNoGoroutines: Close ends the reader and cancels and waits for the calls in
// flight.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	s := standIn(t)
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := ubusd.Dial(ctx, s.Path, ubusd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{}, 8)
	_, err = c.Add(ctx, &ubusd.Object{Name: "hang", Methods: []ubusd.Method{{Name: "wait"}},
		Handler: func(ctx context.Context, _ *ubusd.Request) ([]byte, ubusd.Status) {
			started <- struct{}{}
			<-ctx.Done()
			return nil, ubusd.StatusTimeout
		}})
	if err != nil {
		t.Fatal(err)
	}
	callCtx, stopCalls := context.WithCancel(ctx)
	for range 3 {
		go func() { _, _, _ = s.Call(callCtx, "hang", "wait", nil) }()
		<-started
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	stopCalls()
	for deadline := time.Now().Add(30 * time.Second); runtime.NumGoroutine() > before; {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
