package jsonrpc

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/json"
)

func dialClient(t testing.TB, path string) *Client {
	t.Helper()
	c, err := Dial(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestClient(t *testing.T) {
	ts := startServer(t, Options{})
	c := dialClient(t, ts.path)
	ctx := context.Background()

	t.Run("result", func(t *testing.T) {
		var got map[string]string
		if err := c.Call(ctx, "lookup", map[string]string{"name": "openwrt.org"}, &got); err != nil {
			t.Fatal(err)
		}
		if got["name"] != "openwrt.org" {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("no params, result discarded", func(t *testing.T) {
		if err := c.Call(ctx, "echo", nil, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("errors keep code and message", func(t *testing.T) {
		for _, code := range []api.Code{api.CodeTimeout, api.CodeNoUpstream, api.CodeBadRequest, api.CodeConfig, api.CodeBusy} {
			err := c.Call(ctx, "fail", map[string]string{"code": string(code), "message": "it failed"}, nil)
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code != code || ae.Message != "it failed" {
				t.Fatalf("%s: got %#v", code, err)
			}
		}
		err := c.Call(ctx, "nope", nil, nil)
		if api.CodeOf(err) != api.CodeMethodNotFound {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("result of the wrong type", func(t *testing.T) {
		var n int
		err := c.Call(ctx, "from", nil, &n)
		if err == nil || !strings.Contains(err.Error(), "decoding the result of from") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("params too large", func(t *testing.T) {
		err := c.Call(ctx, "echo", []string{strings.Repeat("a", DefaultMaxMessage)}, nil)
		if api.CodeOf(err) != api.CodeTooLarge {
			t.Fatalf("got %v", err)
		}
		if err := c.Call(ctx, "echo", nil, nil); err != nil {
			t.Fatalf("after: %v", err)
		}
	})
	t.Run("unencodable params", func(t *testing.T) {
		if err := c.Call(ctx, "echo", func() {}, nil); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("notify", func(t *testing.T) {
		if err := c.Notify(ctx, "note", []string{"hello"}); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-ts.fake.notes:
			if got != `["hello"]` {
				t.Fatalf("got %s", got)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the notification did not arrive")
		}
	})
	t.Run("out of order", func(t *testing.T) {
		slow := make(chan error, 1)
		go func() { slow <- c.Call(ctx, "block", map[string]string{"gate": "client"}, nil) }()
		eventually(t, "the slow call", func() bool { return ts.fake.running.Load() == 1 })
		var from string
		if err := c.Call(ctx, "from", nil, &from); err != nil || from != "socket" {
			t.Fatalf("got %q, %v", from, err)
		}
		ts.fake.open("client")
		if err := <-slow; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("context ends first", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		err := c.Call(ctx, "block", map[string]string{"gate": "late"}, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v", err)
		}
		ts.fake.open("late") // its late response is dropped
		var from string
		if err := c.Call(context.Background(), "from", nil, &from); err != nil || from != "socket" {
			t.Fatalf("after: %q, %v", from, err)
		}
	})
}

func TestClientConcurrent(t *testing.T) {
	ts := startServer(t, Options{})
	c := dialClient(t, ts.path)
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for g := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				want := fmt.Sprintf("%d-%d", g, i)
				var got []string
				if err := c.Call(context.Background(), "echo", []string{want}, &got); err != nil || len(got) != 1 || got[0] != want {
					errs <- fmt.Errorf("%s: got %v, %v", want, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestClientFailures(t *testing.T) {
	t.Run("no daemon", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "delve.sock")
		_, err := Dial(context.Background(), path)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != api.CodeDaemonDown || !strings.Contains(ae.Message, "no delve daemon is serving on "+path) {
			t.Fatalf("got %#v", err)
		}
	})
	t.Run("close fails calls in progress", func(t *testing.T) {
		check := goroutines(t)
		ts := startServer(t, Options{})
		c, err := Dial(context.Background(), ts.path)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Call(context.Background(), "block", map[string]string{"gate": "never"}, nil) }()
		eventually(t, "the call", func() bool { return ts.fake.running.Load() == 1 })
		c.Close()
		if err := <-done; !errors.Is(err, ErrClientClosed) {
			t.Fatalf("call in progress: %v", err)
		}
		if err := c.Call(context.Background(), "echo", nil, nil); !errors.Is(err, ErrClientClosed) {
			t.Fatalf("call after Close: %v", err)
		}
		ts.srv.Close()
		check()
	})
	t.Run("server goes away", func(t *testing.T) {
		ts := startServer(t, Options{})
		c := dialClient(t, ts.path)
		done := make(chan error, 1)
		go func() { done <- c.Call(context.Background(), "block", map[string]string{"gate": "never"}, nil) }()
		eventually(t, "the call", func() bool { return ts.fake.running.Load() == 1 })
		ts.srv.Close()
		if err := <-done; err == nil {
			t.Fatal("no error")
		}
		if err := c.Call(context.Background(), "echo", nil, nil); err == nil {
			t.Fatal("no error after the server went")
		}
	})
	t.Run("too many connections", func(t *testing.T) {
		ts := startServer(t, Options{Limits: Limits{MaxConns: 1}})
		first := dialClient(t, ts.path)
		if err := first.Call(context.Background(), "echo", nil, nil); err != nil {
			t.Fatal(err)
		}
		second := dialClient(t, ts.path)
		err := second.Call(context.Background(), "echo", nil, nil)
		if api.CodeOf(err) != api.CodeBusy {
			t.Fatalf("got %v, want busy", err)
		}
	})
}

// BenchmarkCall measures calls over one connection: one caller at a time, and pipelined.
func BenchmarkCall(b *testing.B) {
	path := filepath.Join(b.TempDir(), "delve.sock")
	l, err := ListenUnix(path)
	if err != nil {
		b.Fatal(err)
	}
	srv := NewServer(Options{Handler: func(_ context.Context, _ string, params json.RawMessage, _ string) (any, error) {
		return params, nil
	}})
	go srv.Serve(l)
	defer srv.Close()
	c := dialClient(b, path)
	params := map[string]string{"name": "openwrt.org"}
	b.Run("sequential", func(b *testing.B) {
		for b.Loop() {
			if err := c.Call(context.Background(), "lookup", params, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	})
	b.Run("pipelined", func(b *testing.B) {
		b.SetParallelism(4) // 4 × GOMAXPROCS callers on one connection
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := c.Call(context.Background(), "lookup", params, nil); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	})
}
