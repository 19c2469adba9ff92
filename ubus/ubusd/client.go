package ubusd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/delvedns/delve/ubus/blob"
)

// Param is one argument of a method's signature: its name and blobmsg type, which `ubus -v
// list` prints ("String" for blob.TypeString).
type Param struct {
	Name string
	Type blob.Type
}

// Method is one method of an object's signature.
type Method struct {
	Name   string
	Params []Param
}

// Request is one call of a method, as ubusd forwarded it.
type Request struct {
	Method string
	// Data is the call's arguments: the blobmsg fields of a table (blob.Decode(Data, true)).
	Data []byte
	// User and Group are the caller's, when ubusd says (ubusd with ACL support does).
	User, Group string
}

// Handler answers a call: reply is the blobmsg fields of the reply table (nil sends no data),
// status the call's result. ctx ends when the connection closes.
type Handler func(ctx context.Context, r *Request) (reply []byte, status Status)

// Object is an object to register.
type Object struct {
	Name    string
	Methods []Method
	Handler Handler
	// OnSubscribe, when set, is told when the object gets its first subscriber (true) and loses
	// its last (false). It runs on the connection's reader: it must not block.
	OnSubscribe func(active bool)
}

// Options tune a connection; the zero value is usable.
type Options struct {
	// MaxInFlight bounds the calls answered at once; beyond it the reader waits for one to end
	// (0: 64).
	MaxInFlight int
	// WriteTimeout bounds the writing of one message (0: 5 s); a write that takes longer ends
	// the connection, since ubusd has stopped reading it.
	WriteTimeout time.Duration
}

// Conn is a connection to ubusd. It is safe for concurrent use.
type Conn struct {
	nc       *net.UnixConn
	id       uint32
	opts     Options
	ctx      context.Context
	stop     context.CancelFunc
	sem      chan struct{}
	wmu      sync.Mutex
	wbuf     []byte
	seq      atomic.Uint32
	mu       sync.Mutex
	reqs     map[uint16]*request
	objs     map[uint32]*registered
	done     chan struct{} // closed when the reader ends
	err      error         // why the reader ended; set before done is closed
	calls    sync.WaitGroup
	inFlight atomic.Int32 // calls being answered, for Drain
}

type registered struct {
	obj     *Object
	methods map[string]bool
	active  atomic.Bool
}

type request struct {
	onData func(*Message)
	status chan Status
}

// ErrClosed is returned for calls on a closed connection.
var ErrClosed = errors.New("the ubus connection is closed")

// Dial connects to ubusd's socket at path and reads its HELLO.
func Dial(ctx context.Context, path string, opts Options) (*Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("connecting to ubusd: %w", err)
	}
	return NewConn(ctx, nc.(*net.UnixConn), opts)
}

// NewConn speaks the protocol on nc, which it owns from now on: it reads the HELLO that names
// the client's id, then starts the reader.
func NewConn(ctx context.Context, nc *net.UnixConn, opts Options) (*Conn, error) {
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 64
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 5 * time.Second
	}
	br := bufio.NewReaderSize(nc, 16<<10)
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetReadDeadline(dl)
	} else {
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	}
	hello, _, err := Read(br)
	if err == nil && hello.Type != MsgHello {
		err = fmt.Errorf("%w: ubusd's first message is %s, not hello", blob.ErrMalformed, hello.Type)
	}
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("reading ubusd's hello: %w", err)
	}
	_ = nc.SetReadDeadline(time.Time{})
	c := &Conn{nc: nc, id: hello.Peer, opts: opts, sem: make(chan struct{}, opts.MaxInFlight),
		reqs: map[uint16]*request{}, objs: map[uint32]*registered{}, done: make(chan struct{})}
	c.ctx, c.stop = context.WithCancel(context.Background())
	go c.read(br)
	return c, nil
}

// ID is the client id ubusd gave this connection.
func (c *Conn) ID() uint32 { return c.id }

// Done is closed when the connection has ended; Err then says why.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the connection ended (nil while it is open).
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Close closes the connection and waits for the reader and the calls in flight, whose context
// is cancelled.
func (c *Conn) Close() error {
	c.stop()
	err := c.nc.Close()
	<-c.done
	c.calls.Wait()
	return err
}

// Drain waits until no call is being answered, or ctx ends. After Remove, ubusd forwards no new
// calls, and Drain lets those in flight send their answers before Close.
func (c *Conn) Drain(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for c.inFlight.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the calls in flight: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

func (c *Conn) read(br *bufio.Reader) {
	var err error
	defer func() {
		c.mu.Lock()
		c.err = err
		reqs := c.reqs
		c.reqs = nil
		c.mu.Unlock()
		for _, r := range reqs {
			close(r.status)
		}
		c.stop()
		_ = c.nc.Close()
		close(c.done)
	}()
	for {
		var m Message
		m, _, err = Read(br)
		if err != nil {
			if c.ctx.Err() != nil {
				err = ErrClosed
			}
			return
		}
		switch m.Type {
		case MsgData, MsgStatus:
			c.reply(&m)
		case MsgInvoke:
			select {
			case c.sem <- struct{}{}:
			case <-c.ctx.Done():
				err = ErrClosed
				return
			}
			c.calls.Add(1)
			c.inFlight.Add(1)
			go func() {
				defer func() { c.inFlight.Add(-1); <-c.sem; c.calls.Done() }()
				c.invoke(&m)
			}()
		case MsgNotify:
			c.notified(&m)
		}
	}
}

// reply routes a DATA or STATUS message to the request with its sequence number.
func (c *Conn) reply(m *Message) {
	c.mu.Lock()
	r := c.reqs[m.Seq]
	if r != nil && m.Type == MsgStatus {
		delete(c.reqs, m.Seq)
	}
	c.mu.Unlock()
	if r == nil {
		return
	}
	if m.Type == MsgData {
		if r.onData != nil {
			r.onData(m)
		}
		return
	}
	st, ok := m.U32(AttrStatus)
	if !ok {
		st = uint32(StatusInvalidArgument)
	}
	r.status <- Status(st)
}

// notified handles ubusd's NOTIFY to an object owner: the subscriber flag.
func (c *Conn) notified(m *Message) {
	id, ok := m.U32(AttrObjID)
	a, ok2 := m.Attr(AttrActive)
	if !ok || !ok2 {
		return
	}
	c.mu.Lock()
	r := c.objs[id]
	c.mu.Unlock()
	if r == nil {
		return
	}
	active := a.Data[0] != 0
	if r.active.Swap(active) != active && r.obj.OnSubscribe != nil {
		r.obj.OnSubscribe(active)
	}
}

func (c *Conn) invoke(m *Message) {
	id, _ := m.U32(AttrObjID)
	noReply := false
	if a, ok := m.Attr(AttrNoReply); ok {
		noReply = a.Data[0] != 0
	}
	c.mu.Lock()
	r := c.objs[id]
	c.mu.Unlock()
	var reply []byte
	status := StatusOK
	method, hasMethod := m.String(AttrMethod)
	data, hasData := m.Attr(AttrData)
	switch {
	case r == nil:
		status = StatusNotFound
	case !hasMethod:
		status = StatusInvalidArgument
	case !r.methods[method]:
		status = StatusMethodNotFound
	case !hasData:
		status = StatusInvalidArgument
	default:
		req := &Request{Method: method, Data: data.Data}
		req.User, _ = m.String(AttrUser)
		req.Group, _ = m.String(AttrGroup)
		reply, status = r.obj.Handler(c.ctx, req)
	}
	if noReply {
		return
	}
	h := Header{Seq: m.Seq, Peer: m.Peer}
	if reply != nil {
		var b blob.Buf
		b.PutU32(AttrObjID, id)
		b.Put(AttrData, reply)
		h.Type = MsgData
		if err := c.send(h, b.Bytes()); errors.Is(err, ErrTooLarge) {
			status = StatusUnknownError
		}
	}
	var b blob.Buf
	b.PutU32(AttrStatus, uint32(status))
	b.PutU32(AttrObjID, id)
	h.Type = MsgStatus
	_ = c.send(h, b.Bytes())
}

// send writes one message. A write that fails ends the connection (the reader then ends too).
func (c *Conn) send(h Header, body []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var err error
	c.wbuf, err = Append(c.wbuf[:0], h, body)
	if err != nil {
		return err
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
	if _, err = c.nc.Write(c.wbuf); err != nil {
		_ = c.nc.Close()
		return fmt.Errorf("writing to ubusd: %w", err)
	}
	if cap(c.wbuf) > 64<<10 {
		c.wbuf = nil // a large reply's buffer is not kept
	}
	return nil
}

// request sends a message to ubusd and waits for its STATUS; onData sees each DATA reply on the
// reader's goroutine.
func (c *Conn) request(ctx context.Context, t MsgType, peer uint32, body []byte, onData func(*Message)) (Status, error) {
	seq := uint16(c.seq.Add(1))
	r := &request{onData: onData, status: make(chan Status, 1)}
	c.mu.Lock()
	if c.reqs == nil {
		c.mu.Unlock()
		return 0, ErrClosed
	}
	c.reqs[seq] = r
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		if c.reqs != nil {
			delete(c.reqs, seq)
		}
		c.mu.Unlock()
	}
	if err := c.send(Header{Type: t, Seq: seq, Peer: peer}, body); err != nil {
		forget()
		return 0, err
	}
	select {
	case st, ok := <-r.status:
		if !ok {
			return 0, ErrClosed
		}
		return st, nil
	case <-ctx.Done():
		forget()
		return 0, fmt.Errorf("waiting for ubusd's answer to %s: %w", t, ctx.Err())
	}
}

// Add registers obj under its name and returns the id ubusd gave it. ubusd answers a name that
// is taken, and one its ACL does not let this user publish, with StatusInvalidArgument.
func (c *Conn) Add(ctx context.Context, obj *Object) (uint32, error) {
	var b blob.Buf
	b.PutString(AttrObjPath, obj.Name)
	sig := b.Open(AttrSignature)
	r := &registered{obj: obj, methods: map[string]bool{}}
	for _, m := range obj.Methods {
		r.methods[m.Name] = true
		t := b.OpenTable(m.Name)
		for _, p := range m.Params {
			b.AddInt(p.Name, blob.TypeInt32, int64(p.Type))
		}
		b.CloseField(t)
	}
	b.Close(sig)
	var id uint32
	var got bool
	st, err := c.request(ctx, MsgAddObject, 0, b.Bytes(), func(m *Message) {
		// On the reader: the object is known before any call or subscription for it is read.
		if v, ok := m.U32(AttrObjID); ok && !got {
			id, got = v, true
			c.mu.Lock()
			c.objs[v] = r
			c.mu.Unlock()
		}
	})
	if err == nil && st != StatusOK {
		err = st
	}
	if err == nil && !got {
		err = fmt.Errorf("%w: ubusd accepted the object %q without naming its id", blob.ErrMalformed, obj.Name)
	}
	if err != nil {
		if got {
			c.mu.Lock()
			delete(c.objs, id)
			c.mu.Unlock()
		}
		return 0, fmt.Errorf("registering the ubus object %q: %w", obj.Name, err)
	}
	return id, nil
}

// Remove unregisters the object id.
func (c *Conn) Remove(ctx context.Context, id uint32) error {
	var b blob.Buf
	b.PutU32(AttrObjID, id)
	st, err := c.request(ctx, MsgRemoveObject, 0, b.Bytes(), nil)
	if err == nil && st != StatusOK {
		err = st
	}
	c.mu.Lock()
	delete(c.objs, id)
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("removing ubus object %d: %w", id, err)
	}
	return nil
}

// Lookup returns the id of the object path, or StatusNotFound. ubusd answers a path it has
// but whose methods its ACL hides from this user with no data and status 0: the object exists,
// and its id is returned as 0.
func (c *Conn) Lookup(ctx context.Context, path string) (uint32, error) {
	var b blob.Buf
	b.PutString(AttrObjPath, path)
	var id uint32
	st, err := c.request(ctx, MsgLookup, 0, b.Bytes(), func(m *Message) {
		if p, _ := m.String(AttrObjPath); p == path && id == 0 {
			id, _ = m.U32(AttrObjID)
		}
	})
	if err == nil && st != StatusOK {
		err = st
	}
	if err != nil {
		return 0, fmt.Errorf("looking up the ubus object %q: %w", path, err)
	}
	return id, nil
}

// Subscribed reports whether the object id has subscribers.
func (c *Conn) Subscribed(id uint32) bool {
	c.mu.Lock()
	r := c.objs[id]
	c.mu.Unlock()
	return r != nil && r.active.Load()
}

// Notify sends a notification of the given type with the blobmsg fields data to the object's
// subscribers, asking ubusd for no reply (ubus_notify with a negative timeout).
func (c *Conn) Notify(id uint32, typ string, data []byte) error {
	var b blob.Buf
	b.PutU32(AttrObjID, id)
	b.PutString(AttrMethod, typ)
	b.Put(AttrData, data)
	b.PutU8(AttrNoReply, 1)
	return c.send(Header{Type: MsgNotify, Seq: uint16(c.seq.Add(1)), Peer: id}, b.Bytes())
}
