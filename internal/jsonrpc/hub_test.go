package jsonrpc

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestHub(t *testing.T) {
	t.Run("full queue drops and counts", func(t *testing.T) {
		h := &Hub{Queue: 4}
		s := h.Subscribe()
		for i := range 10 {
			h.Publish(Event{Name: strconv.Itoa(i)})
		}
		if got := s.Missed(); got != 6 {
			t.Fatalf("missed %d, want 6", got)
		}
		for i := range 4 {
			if ev := <-s.C; ev.Name != strconv.Itoa(i) {
				t.Fatalf("got %q, want %d", ev.Name, i)
			}
		}
		h.Unsubscribe(s)
		if _, ok := <-s.C; ok {
			t.Fatal("channel still open after Unsubscribe")
		}
		h.Unsubscribe(s) // harmless
		h.Publish(Event{})
		if h.Subscribers() != 0 {
			t.Fatal("still subscribed")
		}
	})
	t.Run("zero hub", func(t *testing.T) {
		var h Hub
		h.Publish(Event{}) // no subscribers yet
		s := h.Subscribe()
		if cap(s.C) != DefaultQueue {
			t.Fatalf("queue %d, want %d", cap(s.C), DefaultQueue)
		}
	})
	t.Run("publish never waits for a stuck subscriber", func(t *testing.T) {
		var h Hub
		h.Subscribe() // never read
		// Blocking on the subscriber would be for good: the bound is for a hang, not a speed.
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range 100000 {
				h.Publish(Event{Name: "x"})
			}
		}()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Fatal("100000 publishes did not finish in 60 s: Publish waits for a subscriber that never reads")
		}
	})
	t.Run("many goroutines", func(t *testing.T) {
		h := &Hub{Queue: 16}
		const publishers, each = 8, 2000
		var readers sync.WaitGroup
		type tally struct{ got, missed uint64 }
		tallies := make([]tally, 8)
		subs := make([]*Subscription, len(tallies))
		for i := range subs {
			subs[i] = h.Subscribe()
			readers.Add(1)
			go func() {
				defer readers.Done()
				for range subs[i].C {
					tallies[i].got++
					if i%2 == 0 {
						time.Sleep(time.Microsecond) // a slow one
					}
				}
			}()
		}
		var pubs sync.WaitGroup
		for range publishers {
			pubs.Add(1)
			go func() {
				defer pubs.Done()
				for range each {
					h.Publish(Event{Name: "x"})
				}
			}()
		}
		// Others come and go meanwhile.
		for range 200 {
			s := h.Subscribe()
			h.Unsubscribe(s)
		}
		pubs.Wait()
		for _, s := range subs {
			h.Unsubscribe(s)
		}
		readers.Wait()
		for i, s := range subs {
			if got := tallies[i].got + s.Missed(); got != publishers*each {
				t.Errorf("subscriber %d: %d received + %d missed, want %d", i, tallies[i].got, s.Missed(), publishers*each)
			}
		}
	})
}
