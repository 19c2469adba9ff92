package ws

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/jsonrpc"
)

// rawConn dials ts and returns the connection with a reader for the answers.
func rawConn(t *testing.T, ts *testServer) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	return nc, bufio.NewReader(nc)
}

// TestPlainHTTP covers what net/http's server used to do for the requests that are not upgraded.
func TestPlainHTTP(t *testing.T) {
	ts := startWS(t, Options{})
	t.Run("keep-alive", func(t *testing.T) {
		nc, br := rawConn(t, ts)
		for i := range 3 {
			io.WriteString(nc, "GET /nope HTTP/1.1\r\nHost: "+ts.addr+"\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusNotFound || resp.Close || resp.ContentLength != int64(len(body)) ||
				resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" || resp.Header.Get("Date") == "" {
				t.Fatalf("request %d: %d close=%v length=%d %q %v", i, resp.StatusCode, resp.Close, resp.ContentLength, body, resp.Header)
			}
		}
	})
	t.Run("HEAD has no body", func(t *testing.T) {
		nc, br := rawConn(t, ts)
		io.WriteString(nc, "HEAD /nope HTTP/1.1\r\nHost: "+ts.addr+"\r\n\r\n")
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodHead})
		if err != nil || resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%v %v", resp, err)
		}
		io.WriteString(nc, "GET /nope HTTP/1.1\r\nHost: "+ts.addr+"\r\n\r\n")
		if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusNotFound {
			t.Fatalf("the connection after HEAD: %v %v", resp, err)
		}
	})
	refusals := []struct {
		name, req string
		status    int
		body      string
	}{
		{"no Host", "GET / HTTP/1.1\r\n\r\n", http.StatusBadRequest, "400 Bad Request: missing required Host header"},
		{"bad Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", http.StatusBadRequest, "400 Bad Request: malformed Host header"},
		{"garbage", "HELLO\r\n\r\n", http.StatusBadRequest, "400 Bad Request"},
		{"HTTP/2", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", http.StatusHTTPVersionNotSupported, "505 HTTP Version Not Supported: unsupported protocol version"},
		{"huge header", "GET / HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("a", 24<<10) + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge, "431 Request Header Fields Too Large"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			nc, br := rawConn(t, ts)
			go io.WriteString(nc, tt.req) // the huge one may not be read to its end
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || string(body) != tt.body || !resp.Close {
				t.Fatalf("%d %q close=%v, want %d %q and close", resp.StatusCode, body, resp.Close, tt.status, tt.body)
			}
		})
	}
	t.Run("a body closes the connection", func(t *testing.T) {
		nc, br := rawConn(t, ts)
		io.WriteString(nc, "POST / HTTP/1.1\r\nHost: "+ts.addr+"\r\nContent-Length: 5\r\n\r\nhello")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(resp.Body)
		if !resp.Close {
			t.Fatal("kept alive with the body unread")
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("after the answer: %v, want EOF", err)
		}
	})
}

func TestShutdownClosesIdleHTTP(t *testing.T) {
	check := goroutines(t)
	// A minute between requests, so that only Shutdown can close the idle connection here.
	srv := NewServer(Options{Handler: (&fake{}).handle, RequestTimeout: time.Minute})
	l, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(nc)
	io.WriteString(nc, "GET /x HTTP/1.1\r\nHost: "+l.Addr().String()+"\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)

	start := time.Now()
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, jsonrpc.ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("the idle connection: %v, want EOF", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Shutdown waited %v for an idle connection", d)
	}
	if err := srv.Serve(l); !errors.Is(err, jsonrpc.ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
	check()
}
