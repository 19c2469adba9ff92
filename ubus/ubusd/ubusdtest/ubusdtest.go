// Package ubusdtest is a stand-in ubusd for tests: it speaks ubusd's side of the protocol as the
// transcripts in ubus/testdata record it (HELLO, ADD_OBJECT answered by DATA with the id then
// STATUS, a taken name refused with INVALID_ARGUMENT, LOOKUP, REMOVE_OBJECT, INVOKE forwarded to
// the owner with the caller's sequence number and id and its DATA and STATUS routed back, the
// subscriber flag sent as NOTIFY with UBUS_ATTR_ACTIVE, notifications passed to subscribers).
// Calls and subscriptions are made by the test through methods, standing in for `ubus call` and
// `ubus subscribe`.
package ubusdtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/delvedns/delve/ubus/blob"
	"github.com/delvedns/delve/ubus/ubusd"
)

// CallerID is the client id the stand-in gives its own calls, as `ubus call`'s connection has
// one in real ubusd.
const CallerID = 0x5eed0001

// Server is a stand-in ubusd listening on a unix socket.
type Server struct {
	Path string
	l    *net.UnixListener

	mu      sync.Mutex
	nextID  uint32
	seq     uint16
	clients map[*client]bool
	objs    map[string]*object
	calls   map[uint16]*call
	wg      sync.WaitGroup
	closed  bool
	adds    int
}

type object struct {
	id    uint32
	path  string
	owner *client
	sig   []byte
	subs  []chan Notification
}

type client struct {
	id  uint32
	nc  net.Conn
	wmu sync.Mutex
}

type call struct {
	data   []byte
	status chan ubusd.Status
}

// Notification is what a subscriber receives.
type Notification struct {
	Type string
	Data []byte // blobmsg table fields
}

// Listen starts a stand-in on path.
func Listen(path string) (*Server, error) {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listening as ubusd: %w", err)
	}
	s := &Server{Path: path, l: l, nextID: 0x1000, clients: map[*client]bool{}, objs: map[string]*object{}, calls: map[uint16]*call{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Close stops the stand-in as a stopped ubusd would: every connection ends, every object goes.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.clients {
		_ = c.nc.Close()
	}
	s.mu.Unlock()
	err := s.l.Close()
	s.wg.Wait()
	return err
}

// Adds counts the ADD_OBJECT messages received.
func (s *Server) Adds() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adds
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.l.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.nextID++
		c := &client{id: s.nextID, nc: nc}
		s.clients[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

func (c *client) send(t ubusd.MsgType, seq uint16, peer uint32, body []byte) {
	b, err := ubusd.Append(nil, ubusd.Header{Type: t, Seq: seq, Peer: peer}, body)
	if err != nil {
		return
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, _ = c.nc.Write(b)
}

func (c *client) status(m *ubusd.Message, st ubusd.Status) {
	var b blob.Buf
	b.PutU32(ubusd.AttrStatus, uint32(st))
	c.send(ubusd.MsgStatus, m.Seq, m.Peer, b.Bytes())
}

// ok answers m with DATA (body) and then STATUS 0, as ubusd answers a request that succeeded.
func (c *client) ok(m *ubusd.Message, body []byte) {
	c.send(ubusd.MsgData, m.Seq, m.Peer, body)
	c.status(m, ubusd.StatusOK)
}

func (s *Server) serve(c *client) {
	defer s.wg.Done()
	defer s.drop(c)
	c.send(ubusd.MsgHello, 0, c.id, nil)
	br := bufio.NewReader(c.nc)
	for {
		m, _, err := ubusd.Read(br)
		if err != nil {
			return
		}
		switch m.Type {
		case ubusd.MsgAddObject:
			s.add(c, &m)
		case ubusd.MsgRemoveObject:
			s.remove(c, &m)
		case ubusd.MsgLookup:
			s.lookup(c, &m)
		case ubusd.MsgData, ubusd.MsgStatus:
			s.response(&m)
		case ubusd.MsgNotify:
			s.notify(c, &m)
		default:
			c.status(&m, ubusd.StatusInvalidCommand)
		}
	}
}

// drop forgets a client and its objects, as ubusd does when a connection ends.
func (s *Server) drop(c *client) {
	_ = c.nc.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.clients, c)
	for p, o := range s.objs {
		if o.owner == c {
			delete(s.objs, p)
			for _, ch := range o.subs {
				close(ch)
			}
		}
	}
}

func (s *Server) add(c *client, m *ubusd.Message) {
	path, ok := m.String(ubusd.AttrObjPath)
	sig, _ := m.Attr(ubusd.AttrSignature)
	s.mu.Lock()
	s.adds++
	_, taken := s.objs[path]
	var o *object
	if ok && !taken {
		s.nextID++
		o = &object{id: s.nextID, path: path, owner: c, sig: sig.Data}
		s.objs[path] = o
	}
	s.mu.Unlock()
	if o == nil {
		c.status(m, ubusd.StatusInvalidArgument)
		return
	}
	var b blob.Buf
	b.PutU32(ubusd.AttrObjID, o.id)
	b.PutU32(ubusd.AttrObjType, o.id+1)
	c.ok(m, b.Bytes())
}

func (s *Server) remove(c *client, m *ubusd.Message) {
	id, _ := m.U32(ubusd.AttrObjID)
	s.mu.Lock()
	var found *object
	for p, o := range s.objs {
		if o.id == id && o.owner == c {
			found = o
			delete(s.objs, p)
		}
	}
	s.mu.Unlock()
	if found == nil {
		c.status(m, ubusd.StatusNotFound)
		return
	}
	for _, ch := range found.subs {
		close(ch)
	}
	var b blob.Buf
	b.PutU32(ubusd.AttrObjID, id)
	c.ok(m, b.Bytes())
}

func (s *Server) lookup(c *client, m *ubusd.Message) {
	path, _ := m.String(ubusd.AttrObjPath)
	s.mu.Lock()
	o := s.objs[path]
	s.mu.Unlock()
	if o == nil {
		c.status(m, ubusd.StatusNotFound)
		return
	}
	var b blob.Buf
	b.PutString(ubusd.AttrObjPath, o.path)
	b.PutU32(ubusd.AttrObjID, o.id)
	b.Put(ubusd.AttrSignature, o.sig)
	c.ok(m, b.Bytes())
}

// response routes an owner's reply to a call the stand-in made.
func (s *Server) response(m *ubusd.Message) {
	if m.Peer != CallerID {
		return
	}
	s.mu.Lock()
	cl := s.calls[m.Seq]
	if cl != nil && m.Type == ubusd.MsgStatus {
		delete(s.calls, m.Seq)
	}
	s.mu.Unlock()
	if cl == nil {
		return
	}
	if m.Type == ubusd.MsgData {
		if a, ok := m.Attr(ubusd.AttrData); ok {
			cl.data = append([]byte(nil), a.Data...)
		}
		return
	}
	st, _ := m.U32(ubusd.AttrStatus)
	cl.status <- ubusd.Status(st)
}

func (s *Server) notify(c *client, m *ubusd.Message) {
	id, _ := m.U32(ubusd.AttrObjID)
	typ, _ := m.String(ubusd.AttrMethod)
	data, _ := m.Attr(ubusd.AttrData)
	s.mu.Lock()
	var subs []chan Notification
	for _, o := range s.objs {
		if o.id == id && o.owner == c {
			subs = append(subs, o.subs...)
		}
	}
	n := Notification{Type: typ, Data: append([]byte(nil), data.Data...)}
	for _, ch := range subs {
		select {
		case ch <- n:
		default: // a subscriber that does not read loses notifications, as in ubusd
		}
	}
	s.mu.Unlock()
	if a, ok := m.Attr(ubusd.AttrNoReply); !ok || a.Data[0] == 0 {
		c.status(m, ubusd.StatusOK)
	}
}

// ErrNotFound is returned for an object that is not registered.
var ErrNotFound = errors.New("no such ubus object")

// Call invokes method on the object path with the blobmsg table fields args, as `ubus call`
// does, and returns the reply's table fields (nil without DATA) and the status.
func (s *Server) Call(ctx context.Context, path, method string, args []byte) ([]byte, ubusd.Status, error) {
	s.mu.Lock()
	o := s.objs[path]
	if o == nil {
		s.mu.Unlock()
		return nil, 0, ErrNotFound
	}
	s.seq++
	seq := s.seq
	cl := &call{status: make(chan ubusd.Status, 1)}
	s.calls[seq] = cl
	s.mu.Unlock()
	var b blob.Buf
	b.PutU32(ubusd.AttrObjID, o.id)
	b.PutString(ubusd.AttrMethod, method)
	b.PutString(ubusd.AttrUser, "root")
	b.PutString(ubusd.AttrGroup, "root")
	b.Put(ubusd.AttrData, args)
	o.owner.send(ubusd.MsgInvoke, seq, CallerID, b.Bytes())
	select {
	case st := <-cl.status:
		s.mu.Lock()
		data := cl.data
		s.mu.Unlock()
		return data, st, nil
	case <-ctx.Done():
		s.mu.Lock()
		delete(s.calls, seq)
		s.mu.Unlock()
		return nil, 0, ctx.Err()
	}
}

// Pending is the number of calls waiting for their answer.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// Registered reports whether path is registered.
func (s *Server) Registered(path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.objs[path] != nil
}

// Signature returns the method signature path was registered with.
func (s *Server) Signature(path string) ([]blob.Field, error) {
	s.mu.Lock()
	o := s.objs[path]
	s.mu.Unlock()
	if o == nil {
		return nil, ErrNotFound
	}
	return blob.Decode(o.sig, true)
}

// Subscribe subscribes to path, as `ubus subscribe` does: the owner is told it has subscribers
// when this is the first. cancel ends the subscription (and tells the owner when it was the
// last). The channel is closed when the object goes.
func (s *Server) Subscribe(path string) (<-chan Notification, func(), error) {
	s.mu.Lock()
	o := s.objs[path]
	if o == nil {
		s.mu.Unlock()
		return nil, nil, ErrNotFound
	}
	ch := make(chan Notification, 256)
	o.subs = append(o.subs, ch)
	first := len(o.subs) == 1
	s.mu.Unlock()
	if first {
		active(o, true)
	}
	var once sync.Once
	cancel := func() {
		once.Do(func() {
			s.mu.Lock()
			last := false
			for i, c := range o.subs {
				if c == ch {
					o.subs = append(o.subs[:i], o.subs[i+1:]...)
					last = len(o.subs) == 0
					break
				}
			}
			alive := s.objs[o.path] == o
			s.mu.Unlock()
			if last && alive {
				active(o, false)
			}
		})
	}
	return ch, cancel, nil
}

func active(o *object, on bool) {
	var b blob.Buf
	b.PutU32(ubusd.AttrObjID, o.id)
	v := uint8(0)
	if on {
		v = 1
	}
	b.PutU8(ubusd.AttrActive, v)
	o.owner.send(ubusd.MsgNotify, 1, 0, b.Bytes())
}
