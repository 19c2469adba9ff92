package jsonrpc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/json"
)

// ErrClientClosed is returned by calls on a closed Client.
var ErrClientClosed = errors.New("jsonrpc: client closed")

// maxResponse bounds one response line the client reads. ubus messages are limited to 1 MiB,
// so nothing larger would be of use to the rpcd bridge either.
const maxResponse = 4 << 20

// Client calls a JSON-RPC server over one stream connection. It is safe for concurrent use:
// calls are pipelined, their requests written one at a time and their responses routed by id by
// a single reader goroutine, so a call costs no goroutine of its own.
type Client struct {
	nc net.Conn

	wmu sync.Mutex // one writer at a time
	buf []byte     // request being written, reused under wmu

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan callResult
	err     error // set once the connection is unusable; then pending is empty

	done chan struct{} // closed when the reader has ended
}

type callResult struct {
	result json.RawMessage
	err    error
}

// Dial connects to the daemon's unix socket at path. When nobody serves there it returns an
// *api.Error with code daemon_down.
func Dial(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connecting to %s: %w", path, err)
		}
		return nil, api.NewError(api.CodeDaemonDown, "no delve daemon is serving on "+path+": "+describeDialError(err))
	}
	return NewClient(nc), nil
}

func describeDialError(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		err = oe.Err
	}
	return err.Error()
}

// NewClient returns a client on an established connection, which it owns from then on.
func NewClient(nc net.Conn) *Client {
	c := &Client{nc: nc, pending: map[uint64]chan callResult{}, done: make(chan struct{})}
	go c.read()
	return c
}

// Call calls method with params (nil for none) and decodes the result into result (nil to
// discard it). A JSON-RPC error comes back as an *api.Error with the code mapped back by
// api.CodeFromRPC and the server's message. When ctx ends first, Call returns its error; the
// late response is discarded.
func (c *Client) Call(ctx context.Context, method string, params any, result any) error {
	ch := make(chan callResult, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()

	if err := c.write(ctx, id, method, params); err != nil {
		c.forget(id)
		return err
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return r.err
		}
		if result == nil {
			return nil
		}
		if err := json.Unmarshal(r.result, result); err != nil {
			return fmt.Errorf("decoding the result of %s: %w", method, err)
		}
		return nil
	case <-ctx.Done():
		c.forget(id)
		return fmt.Errorf("calling %s: %w", method, ctx.Err())
	}
}

// Notify sends a notification: the server runs method and answers nothing.
func (c *Client) Notify(ctx context.Context, method string, params any) error {
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return c.write(ctx, 0, method, params)
}

func (c *Client) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// write sends one request; id 0 makes it a notification.
func (c *Client) write(ctx context.Context, id uint64, method string, params any) error {
	var p []byte
	if params != nil {
		var err error
		if p, err = json.Marshal(params); err != nil {
			return fmt.Errorf("encoding the params of %s: %w", method, err)
		}
	}
	m, err := json.Marshal(method)
	if err != nil {
		return fmt.Errorf("encoding the method name: %w", err)
	}

	c.wmu.Lock()
	defer c.wmu.Unlock()
	b := append(c.buf[:0], `{"jsonrpc":"2.0"`...)
	if id != 0 {
		b = append(b, `,"id":`...)
		b = strconv.AppendUint(b, id, 10)
	}
	b = append(b, `,"method":`...)
	b = append(b, m...)
	if p != nil {
		b = append(b, `,"params":`...)
		b = append(b, p...)
	}
	b = append(b, "}\n"...)
	if len(b) <= 1<<16 {
		c.buf = b // keep a small buffer for the next call, not a huge one
	}
	if len(b)-1 > DefaultMaxMessage {
		return api.NewError(api.CodeTooLarge, "the request is larger than "+strconv.Itoa(DefaultMaxMessage)+" bytes")
	}

	deadline, _ := ctx.Deadline()
	c.nc.SetWriteDeadline(deadline) // zero: none
	if _, err := c.nc.Write(b); err != nil {
		// The server may have said why it closed the connection (too many connections): give
		// the reader a moment to get to that, it is a better error than a broken pipe.
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-c.done:
		case <-t.C:
		}
		t.Stop()
		// Part of the line may have been written: the stream is no longer usable.
		c.fail(fmt.Errorf("sending %s: %w", method, err))
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.err
	}
	return nil
}

// Close closes the connection; calls in progress fail with ErrClientClosed.
func (c *Client) Close() error {
	c.fail(ErrClientClosed)
	<-c.done
	return nil
}

// fail makes the client unusable with err, failing the pending calls.
func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	c.nc.Close()
	for _, ch := range pending {
		ch <- callResult{err: err}
	}
}

// response is what the client reads of a response.
type response struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (c *Client) read() {
	defer close(c.done)
	br := bufio.NewReaderSize(c.nc, 4096)
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(line)+len(frag) > maxResponse {
			c.fail(fmt.Errorf("reading a response: it is larger than %d bytes", maxResponse))
			return
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			line = append(line, frag...)
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("the server closed the connection")
			}
			c.fail(fmt.Errorf("reading a response: %w", err))
			return
		}
		data := frag
		if len(line) > 0 {
			line = append(line, frag...)
			data = line
		}
		c.deliver(data)
		line = line[:0]
	}
}

func (c *Client) deliver(data []byte) {
	var r response
	if err := json.Unmarshal(data, &r); err != nil {
		c.fail(fmt.Errorf("reading a response: %w", err))
		return
	}
	var res callResult
	if r.Error != nil {
		res.err = &api.Error{Code: api.CodeFromRPC(r.Error.Code), Message: r.Error.Message}
	} else {
		res.result = r.Result // Unmarshal copied it out of the read buffer
	}
	id, err := strconv.ParseUint(string(r.ID), 10, 64)
	if err != nil {
		// No id the client could have sent (null): the server refused something it could not
		// tie to a request, such as the connection itself when it has too many. Nothing on
		// this connection can be trusted to be answered any more.
		if res.err == nil {
			res.err = fmt.Errorf("reading a response: unexpected id %s", r.ID)
		}
		c.fail(res.err)
		return
	}
	c.mu.Lock()
	ch, ok := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if ok {
		ch <- res // buffered: never blocks
	}
}
