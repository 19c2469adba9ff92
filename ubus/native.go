package ubus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/json"
	"github.com/delvedns/delve/internal/jsonrpc"
	"github.com/delvedns/delve/ubus/blob"
	"github.com/delvedns/delve/ubus/ubusd"
)

// ObjectName is the ubus object delve serves, through rpcd or natively.
const ObjectName = "delve"

// NotifyType is the type of the notification subscribers get for each completed lookup.
const NotifyType = "lookup"

// DefaultSockets are where ubusd listens: /var/run/ubus/ubus.sock since OpenWrt 21.02,
// /var/run/ubus.sock before.
var DefaultSockets = []string{"/var/run/ubus/ubus.sock", "/var/run/ubus.sock"}

// Retry delays of the native object: after ubusd went away or refused the object, the next
// attempt comes after RetryMin, doubling up to RetryMax.
const (
	RetryMin = 500 * time.Millisecond
	RetryMax = 10 * time.Second
)

// DrainTimeout bounds how long Close lets the calls in flight finish after unregistering.
const DrainTimeout = 3 * time.Second

// ErrNameTaken is why the object could not be registered when another client has the name.
var ErrNameTaken = errors.New("the ubus object name is taken by another client")

// NativeOptions configure the native object.
type NativeOptions struct {
	// Socket is ubusd's socket; empty: the first of DefaultSockets that exists.
	Socket string
	// Call runs a method in the daemon.
	Call Caller
	// Hub, when set, is where lookup events come from: the object subscribes to it only while
	// the object itself has ubus subscribers.
	Hub *jsonrpc.Hub
	// Logger gets a line when the object is registered, lost, or refused; nil: discard.
	Logger *slog.Logger
	// RetryMin and RetryMax override the package's retry delays (tests).
	RetryMin, RetryMax time.Duration
}

// Native is the ubus object delve registers itself with ubusd (option ubus 'native'), with the
// methods of api.Methods answered as the rpcd bridge answers them, without a process per call.
// It registers again whenever ubusd restarts.
type Native struct {
	o      NativeOptions
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	registered atomic.Bool
	active     atomic.Bool   // the object has subscribers
	wake       chan struct{} // the subscriber flag changed
	sent       atomic.Uint64
	missed     atomic.Uint64 // events missed by finished subscriptions
	mu         sync.Mutex
	sub        *jsonrpc.Subscription
	told       uint64 // sub.Missed() when the last notification went out
}

// StartNative starts registering the object; Close stops it.
func StartNative(o NativeOptions) *Native {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RetryMin <= 0 {
		o.RetryMin = RetryMin
	}
	if o.RetryMax <= 0 {
		o.RetryMax = RetryMax
	}
	n := &Native{o: o, done: make(chan struct{}), wake: make(chan struct{}, 1)}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	go n.run()
	return n
}

// Close unregisters the object, lets the calls in flight answer (at most DrainTimeout), closes
// the connection and waits until everything has ended. A call of the object must not wait for
// Close: the daemon closes it in the background.
func (n *Native) Close() error {
	n.cancel()
	<-n.done
	return nil
}

// NativeStatus describes the native object for the status method.
type NativeStatus struct {
	Socket        string `json:"socket"`
	Registered    bool   `json:"registered"`
	Subscribed    bool   `json:"subscribed"`
	Notifications uint64 `json:"notifications"`
	Missed        uint64 `json:"missed_notifications"`
}

// Status reports the object's state.
func (n *Native) Status() NativeStatus {
	missed := n.missed.Load()
	n.mu.Lock()
	if n.sub != nil {
		missed += n.sub.Missed()
	}
	n.mu.Unlock()
	return NativeStatus{Socket: n.socket(), Registered: n.registered.Load(), Subscribed: n.active.Load(),
		Notifications: n.sent.Load(), Missed: missed}
}

// socket is the path to dial.
func (n *Native) socket() string {
	if n.o.Socket != "" {
		return n.o.Socket
	}
	return firstSocket(DefaultSockets)
}

// firstSocket is the first of paths that exists, else the first (to name in the error).
func firstSocket(paths []string) string {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return paths[0]
}

// Methods is the object's signature: api.Methods, every argument a string.
func Methods() []ubusd.Method {
	var ms []ubusd.Method
	for _, m := range api.Methods() {
		um := ubusd.Method{Name: m.Name}
		for _, p := range m.Params {
			um.Params = append(um.Params, ubusd.Param{Name: p.Name, Type: blob.TypeString})
		}
		ms = append(ms, um)
	}
	return ms
}

// Handle answers one call as the bridge does: the blobmsg arguments become the JSON rpcd would
// give the plugin on stdin, and the plugin's JSON reply becomes the blobmsg rpcd would send, a
// failure an error object with status 0.
func Handle(ctx context.Context, do Caller, r *ubusd.Request) ([]byte, ubusd.Status) {
	m, ok := api.FindMethod(r.Method)
	if !ok {
		return nil, ubusd.StatusMethodNotFound
	}
	ctx, cancel := context.WithTimeout(ctx, MaxDeadline)
	defer cancel()
	var line []byte
	if args, err := blob.AppendJSON(nil, r.Data, true); err != nil {
		line = errorReply(badRequest("the arguments are not a valid blobmsg table: " + err.Error()))
	} else {
		line = answer(ctx, m, args, MaxReply, do)
	}
	var b blob.Buf
	if err := blob.AddJSON(&b, line); err != nil {
		b.Reset()
		_ = blob.AddJSON(&b, errorReply(api.NewError(api.CodeInternal, "the reply is not a JSON object: "+err.Error())))
	}
	return b.Bytes(), ubusd.StatusOK
}

func (n *Native) run() {
	defer close(n.done)
	delay := n.o.RetryMin
	var last string // the last failure logged, so that a retry loop logs each cause once
	for {
		registered, err := n.session()
		if n.ctx.Err() != nil {
			return
		}
		if registered {
			delay = n.o.RetryMin
			last = ""
			n.o.Logger.Warn("ubusd closed the connection; registering the ubus object again", "object", ObjectName, "err", err)
		} else if msg := err.Error(); msg != last {
			last = msg
			if errors.Is(err, ErrNameTaken) {
				n.o.Logger.Error("the ubus object name is taken by another client: with option ubus 'native', rpcd must not serve delve (reload rpcd: /etc/init.d/rpcd reload); retrying", "object", ObjectName)
			} else {
				n.o.Logger.Error("cannot register the ubus object; retrying", "object", ObjectName, "err", err)
			}
		}
		t := time.NewTimer(delay)
		select {
		case <-n.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, n.o.RetryMax)
	}
}

// session connects, registers and serves until the connection ends or Close; registered tells
// whether the object was registered on it.
func (n *Native) session() (registered bool, err error) {
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	defer cancel()
	path := n.socket()
	c, err := ubusd.Dial(ctx, path, ubusd.Options{})
	if err != nil {
		return false, err
	}
	defer c.Close()
	obj := &ubusd.Object{
		Name:    ObjectName,
		Methods: Methods(),
		Handler: func(ctx context.Context, r *ubusd.Request) ([]byte, ubusd.Status) {
			return Handle(ctx, n.o.Call, r)
		},
		OnSubscribe: func(active bool) {
			n.active.Store(active)
			select {
			case n.wake <- struct{}{}:
			default:
			}
		},
	}
	id, err := c.Add(ctx, obj)
	if errors.Is(err, ubusd.StatusInvalidArgument) {
		// ubusd says the same for a taken name and for an ACL that forbids it.
		if _, lerr := c.Lookup(ctx, ObjectName); lerr == nil {
			err = fmt.Errorf("registering the ubus object %q on %s: %w", ObjectName, path, ErrNameTaken)
		} else {
			err = fmt.Errorf("ubusd on %s refused the object %q: is the user allowed to publish it (/usr/share/acl.d/delve.json)? %w", path, ObjectName, err)
		}
	}
	if err != nil {
		return false, err
	}
	n.registered.Store(true)
	n.o.Logger.Info("ubus object registered", "object", ObjectName, "id", fmt.Sprintf("%08x", id), "socket", path)
	defer func() {
		n.registered.Store(false)
		n.active.Store(false)
		n.follow(false)
	}()
	var events <-chan jsonrpc.Event
	for {
		select {
		case <-n.ctx.Done():
			// Unregistered first, so that ubusd forwards no new call; the calls in flight
			// (a reload that switched ubus off among them) answer before the connection goes.
			rctx, rcancel := context.WithTimeout(context.Background(), DrainTimeout)
			_ = c.Remove(rctx, id)
			_ = c.Drain(rctx)
			rcancel()
			return true, n.ctx.Err()
		case <-c.Done():
			return true, c.Err()
		case <-n.wake:
			events = n.follow(n.active.Load())
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			n.notify(c, id, ev)
		}
	}
}

// follow subscribes to the hub's events (on) or ends the subscription, and returns its channel.
func (n *Native) follow(on bool) <-chan jsonrpc.Event {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.o.Hub == nil {
		return nil
	}
	if on && n.sub == nil {
		n.sub, n.told = n.o.Hub.Subscribe(), 0
	}
	if !on && n.sub != nil {
		n.missed.Add(n.sub.Missed())
		n.o.Hub.Unsubscribe(n.sub)
		n.sub = nil
	}
	if n.sub == nil {
		return nil
	}
	return n.sub.C
}

func (n *Native) notify(c *ubusd.Conn, id uint32, ev jsonrpc.Event) {
	n.mu.Lock()
	if n.sub != nil {
		m := n.sub.Missed()
		ev.Missed, n.told = m-n.told, m
	}
	n.mu.Unlock()
	js, err := json.Marshal(ev)
	if err != nil {
		return
	}
	var b blob.Buf
	if blob.AddJSON(&b, js) != nil {
		return
	}
	if c.Notify(id, NotifyType, b.Bytes()) == nil {
		n.sent.Add(1)
	}
}
