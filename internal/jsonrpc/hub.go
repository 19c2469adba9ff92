package jsonrpc

import (
	"sync"
	"sync/atomic"
	"time"
)

// Event is one completed lookup, as WebSocket subscribers receive it.
type Event struct {
	Name     string   `json:"name"`
	Types    []string `json:"types"`
	Rcode    string   `json:"rcode"`
	Upstream string   `json:"upstream"`
	RTTms    float64  `json:"rtt_ms"`
	Cached   bool     `json:"cached"`
	// From names where the lookup came from: "socket", "websocket", "ubus", "dns", "cli".
	From string    `json:"from"`
	Time time.Time `json:"time"`
	// Error is the api.Code of a failed lookup ("timeout", "no_upstream"); empty on success.
	Error string `json:"error,omitempty"`
	// Missed is filled in per subscriber: how many events it missed since it was last told.
	Missed uint64 `json:"missed,omitempty"`
}

// DefaultQueue is the number of events a subscriber may fall behind before events are dropped.
const DefaultQueue = 64

// Hub fans lookup events out to subscribers. Publish never blocks: a subscriber whose queue is
// full misses the event, and the miss is counted. The zero Hub is ready to use with queues of
// DefaultQueue events. It is safe for concurrent use.
type Hub struct {
	// Queue is the per-subscriber queue length; zero means DefaultQueue. Set it before use.
	Queue int

	mu   sync.RWMutex
	subs map[*Subscription]struct{}
	n    atomic.Int32 // len(subs), read without the lock on every Publish
}

// Subscription receives the events published after Subscribe.
type Subscription struct {
	// C delivers the events. It is closed by Unsubscribe.
	C      <-chan Event
	c      chan Event
	missed atomic.Uint64
}

// Missed is how many events this subscription has missed so far because its queue was full.
func (s *Subscription) Missed() uint64 { return s.missed.Load() }

// Publish hands ev to every subscriber that has room for it, without waiting for any.
func (h *Hub) Publish(ev Event) {
	if h.n.Load() == 0 {
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.subs {
		select {
		case s.c <- ev:
		default:
			s.missed.Add(1)
		}
	}
}

// Subscribe starts a subscription.
func (h *Hub) Subscribe() *Subscription {
	n := h.Queue
	if n <= 0 {
		n = DefaultQueue
	}
	c := make(chan Event, n)
	s := &Subscription{C: c, c: c}
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[*Subscription]struct{}{}
	}
	h.subs[s] = struct{}{}
	h.n.Store(int32(len(h.subs)))
	h.mu.Unlock()
	return s
}

// Unsubscribe ends s and closes its channel. Ending it twice is harmless.
func (h *Hub) Unsubscribe(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		h.n.Store(int32(len(h.subs)))
		close(s.c)
	}
}

// Subscribers is the number of current subscriptions.
// Publishers that build events only for someone use it to skip the work when there is nobody.
func (h *Hub) Subscribers() int {
	return int(h.n.Load())
}
