//go:build linux

package rawio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// pair is a loopback TCP connection: a (wrapped or not) and its peer b.
func pair(t *testing.T, wrap bool) (a, b net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			acc <- nil
			return
		}
		acc <- c
	}()
	a, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b = <-acc
	if b == nil {
		t.Fatal("accept failed")
	}
	if wrap {
		a = wrapped(t, a)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// rawConn is a net.Conn reading and writing through IO, as the upstream's connection does.
type rawConn struct {
	net.Conn
	io IO
}

func (c *rawConn) Read(b []byte) (int, error)  { return c.io.Read(c.Conn, b) }
func (c *rawConn) Write(b []byte) (int, error) { return c.io.Write(c.Conn, b) }

func wrapped(t *testing.T, c net.Conn) net.Conn {
	w := &rawConn{Conn: c}
	w.io.Init(c)
	if w.io.r.rc == nil {
		t.Fatalf("IO did not take %T's descriptor", c)
	}
	return w
}

// TestDataBothWays: what is written arrives whole and in order both ways, also when a write is
// larger than the socket buffers (partial writes and EAGAIN, the poller waiting for room) and a
// read and a write run at once.
func TestDataBothWays(t *testing.T) {
	a, b := pair(t, true)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	var wg sync.WaitGroup
	wg.Add(2)
	var werr, rerr error
	var got []byte
	go func() { // a writes big while b echoes nothing yet: a's write must wait for room
		defer wg.Done()
		_, werr = a.Write(big)
	}()
	go func() {
		defer wg.Done()
		got, rerr = io.ReadAll(io.LimitReader(b, int64(len(big))))
	}()
	wg.Wait()
	if werr != nil || rerr != nil {
		t.Fatalf("write %v, read %v", werr, rerr)
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("b read %d bytes, not the %d a wrote", len(got), len(big))
	}
	// And back: b writes, a reads with io.ReadFull over several reads.
	go func() { _, _ = b.Write(big[:100000]) }()
	back := make([]byte, 100000)
	if _, err := io.ReadFull(a, back); err != nil || !bytes.Equal(back, big[:100000]) {
		t.Fatalf("a read back: %v", err)
	}
	if n, err := a.Read(nil); n != 0 || err != nil {
		t.Fatalf("a zero-length read gave %d, %v", n, err)
	}
}

// errorText is err's text with the connection's addresses taken out, so that the same failure
// on two connections reads the same.
func errorText(err error, c net.Conn) string {
	if err == nil {
		return "<nil>"
	}
	s := err.Error()
	return strings.NewReplacer(c.LocalAddr().String(), "LOCAL", c.RemoteAddr().String(), "REMOTE").Replace(s)
}

// TestErrorsAreNetConns: each failure a reader or writer meets comes back as net.Conn reports it
// (the same text, the same errors.Is and net.Error answers): a deadline, the peer's end (EOF), a
// reset, a write to a reset connection, a read or write after Close.
func TestErrorsAreNetConns(t *testing.T) {
	type outcome struct {
		text             string
		timeout, eof     bool
		closed, deadline bool
	}
	run := func(wrap bool) map[string]outcome {
		out := map[string]outcome{}
		note := func(name string, c net.Conn, err error) {
			var ne net.Error
			out[name] = outcome{
				text:     errorText(err, c),
				timeout:  errors.As(err, &ne) && ne.Timeout(),
				eof:      errors.Is(err, io.EOF),
				closed:   errors.Is(err, net.ErrClosed),
				deadline: errors.Is(err, os.ErrDeadlineExceeded),
			}
		}
		buf := make([]byte, 16)

		a, _ := pair(t, wrap)
		_ = a.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := a.Read(buf)
		note("read deadline", a, err)
		_ = a.SetWriteDeadline(time.Now().Add(-time.Second))
		_, err = a.Write([]byte("x"))
		note("write deadline", a, err)

		a, b := pair(t, wrap)
		b.Close()
		_, err = a.Read(buf)
		note("peer closed", a, err)

		a, b = pair(t, wrap)
		_ = b.(*net.TCPConn).SetLinger(0)
		_, _ = a.Write([]byte("x")) // unread data at b: its close resets
		b.Close()
		_, err = a.Read(buf)
		note("reset read", a, err)
		_, err = a.Write([]byte("x"))
		note("reset write", a, err)

		a, _ = pair(t, wrap)
		a.Close()
		_, err = a.Read(buf)
		note("read after close", a, err)
		_, err = a.Write([]byte("x"))
		note("write after close", a, err)
		return out
	}
	plain, raw := run(false), run(true)
	if len(plain) != 7 {
		t.Fatalf("ran %d cases", len(plain))
	}
	for name, want := range plain {
		if got := raw[name]; got != want {
			t.Errorf("%s: the raw conn gave %+v, net.Conn %+v", name, got, want)
		}
	}
	if !plain["read deadline"].timeout || !plain["peer closed"].eof || !plain["read after close"].closed {
		t.Errorf("the cases did not fail as meant: %+v", plain)
	}
}

// TestCloseWakesARead: a read parked in the poller returns when the connection is closed.
func TestCloseWakesARead(t *testing.T) {
	a, _ := pair(t, true)
	done := make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 8))
		done <- err
	}()
	time.Sleep(10 * time.Millisecond) // most likely parked by now; correct either way
	a.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after Close: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not wake the read within 20 s")
	}
}

// TestNoAllocations: a read and a write allocate nothing.
func TestNoAllocations(t *testing.T) {
	a, b := pair(t, true)
	msg := make([]byte, 64)
	in := make([]byte, 64)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := a.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(b, in); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(a, in); err != nil {
			t.Fatal(err)
		}
	})
	// b is a plain net.Conn, which allocates nothing here either.
	if allocs != 0 {
		t.Fatalf("%.1f allocations per round trip", allocs)
	}
}

// TestPipeUsesItsOwnMethods: a connection without a descriptor is read and written as it is.
func TestPipeUsesItsOwnMethods(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	w := &rawConn{Conn: a}
	w.io.Init(a)
	go func() { _, _ = b.Write([]byte("ping")) }()
	got := make([]byte, 4)
	if _, err := io.ReadFull(w, got); err != nil || string(got) != "ping" {
		t.Fatalf("read %q, %v", got, err)
	}
	go func() { _, _ = io.ReadFull(b, got) }()
	if n, err := w.Write([]byte("pong")); n != 4 || err != nil {
		t.Fatalf("wrote %d, %v", n, err)
	}
}
