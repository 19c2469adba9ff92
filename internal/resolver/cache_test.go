package resolver

import (
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// txtReply is a reply to name/TXT whose answer holds about size bytes of TXT strings.
func txtReply(name string, size int) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeTXT)
	m := new(dns.Msg)
	m.SetReply(q)
	for size > 0 {
		rr := &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300}}
		for i := 0; i < 16 && size > 0; i++ {
			rr.Txt = append(rr.Txt, strings.Repeat("x", min(size, 255)))
			size -= 255
		}
		m.Answer = append(m.Answer, rr)
	}
	return m
}

func cacheEntry(m *dns.Msg) *entry {
	now := time.Now()
	return &entry{key: keyOf(m), msg: m, upstream: "u", stored: now, expires: now.Add(time.Minute)}
}

// TestCacheBytes: the byte budget bounds the cache besides the entry count, evicting the least
// recently used; an answer above 1/16 of the budget is not cached; flush and resize keep the
// count of bytes right.
func TestCacheBytes(t *testing.T) {
	const budget = 2 << 20
	c := newCache(1000000, budget)
	var keys []cacheKey
	for i := range 200 {
		e := cacheEntry(txtReply(fmt.Sprintf("n%d.example.", i), 30000))
		c.put(e)
		keys = append(keys, e.key)
		if e.size < 30000 || e.packed.Load() != nil {
			t.Fatalf("a 30 KB answer stored as %d bytes (packed %v); its strings alone are 30 KB", e.size, e.packed.Load() != nil)
		}
		// Its first hit on the fast path packs it, and the packed copy counts too.
		if c.pack(e) == nil || e.size < 2*30000 {
			t.Fatalf("a 30 KB answer hit once counted as %d bytes; its strings and packed copy alone are 60 KB", e.size)
		}
		if u := c.use(); u.bytes > budget {
			t.Fatalf("after %d answers the cache holds %d bytes, over its budget of %d", i+1, u.bytes, budget)
		}
		// Keep the first one in use: LRU, not FIFO.
		if c.get(keys[0], time.Now()) == nil {
			t.Fatalf("the entry used most recently was evicted after %d answers", i+1)
		}
	}
	u := c.use()
	if u.entries < 10 || u.entries > 34 {
		t.Fatalf("%d entries of ~60 KB in a budget of 2 MiB", u.entries)
	}
	sum := 0
	for _, el := range c.items {
		sum += el.Value.(*entry).size
	}
	if sum != u.bytes {
		t.Fatalf("entries hold %d bytes, the cache counts %d", sum, u.bytes)
	}
	if c.get(keys[1], time.Now()) != nil {
		t.Fatal("the least recently used entry is still there")
	}

	// Above 1/16 of the budget (128 KiB here): not cached, and it drops the entry it replaces.
	big := cacheEntry(txtReply("n0.example.", 60000))
	c.put(big)
	if c.get(keys[0], time.Now()) != nil {
		t.Fatalf("an answer of %d bytes was cached in a budget of %d", big.size, budget)
	}

	// The entry count still bounds too.
	c.resize(3, budget)
	if u := c.use(); u.entries != 3 {
		t.Fatalf("%d entries after resize to 3", u.entries)
	}
	c.resize(1000000, 100000)
	if u := c.use(); u.entries != 1 || u.bytes > 100000 {
		t.Fatalf("after resize to 100000 bytes: %+v", u)
	}
	c.flush()
	if u := c.use(); u.entries != 0 || u.bytes != 0 {
		t.Fatalf("after flush: %+v", u)
	}

	// A hit that packs an entry evicted meanwhile counts nothing: the cache no longer holds it.
	gone := cacheEntry(txtReply("gone.example.", 3000))
	c.put(gone)
	c.flush()
	if c.pack(gone).wire == nil {
		t.Fatal("no packed copy for the caller that holds the entry")
	}
	if u := c.use(); u.bytes != 0 {
		t.Fatalf("an evicted entry's packed copy counted: %+v", u)
	}
}

// TestEntrySizeBoundsHeap: what entrySize and packedSize count for an entry is no less than the
// heap its message and packed copy take, as the runtime measures it, for a large TXT answer and for a
// small A answer.
func TestEntrySizeBoundsHeap(t *testing.T) {
	a := new(dns.Msg)
	a.SetQuestion("a.example.", dns.TypeA)
	a.Answer = append(a.Answer, &dns.A{Hdr: dns.RR_Header{Name: "a.example.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: []byte{192, 0, 2, 1}})
	for _, m := range []*dns.Msg{txtReply("t.example.", 30000), a} {
		wire, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		const n = 200
		entries := make([]*entry, n)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range entries {
			u := new(dns.Msg)
			if err := u.Unpack(wire); err != nil {
				t.Fatal(err)
			}
			entries[i] = &entry{key: keyOf(u), msg: u}
			entries[i].packed.Store(packEntry(u))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		held := int(after.HeapAlloc) - int(before.HeapAlloc)
		counted := 0
		for _, e := range entries {
			counted += entrySize(e) + packedSize(e.packed.Load())
		}
		runtime.KeepAlive(entries)
		t.Logf("%d-byte reply: %d entries hold %d heap bytes, counted %d", len(wire), n, held, counted)
		if counted < held {
			t.Errorf("%d-byte reply: %d entries hold %d heap bytes, counted only %d", len(wire), n, held, counted)
		}
	}
}

// TestMsgBytesIsHeapBytes: msgBytes, which counts common record types without reflection, gives
// what heapBytes measures by reflection, for every type it counts itself and for the ones it
// hands over (EDNS options, NSEC, an unknown type), for messages unpacked from the wire (whose
// slices have the capacities Unpack gives them) and built by hand (nil and empty slices).
func TestMsgBytesIsHeapBytes(t *testing.T) {
	zone := []string{
		"a.example. 60 IN A 192.0.2.1",
		"a.example. 60 IN AAAA 2001:db8::1",
		"c.example. 60 IN CNAME a.example.",
		"example. 60 IN NS ns1.example.",
		"1.2.0.192.in-addr.arpa. 60 IN PTR a.example.",
		"example. 60 IN MX 10 mail.example.",
		"example. 60 IN SOA ns1.example. hostmaster.example. 1 7200 3600 1209600 300",
		`t.example. 60 IN TXT "one" "" "three and more"`,
		`e.example. 60 IN TXT ""`,
		"example. 60 IN NSEC a.example. A NS SOA MX TXT AAAA RRSIG NSEC DNSKEY",
		"example. 60 IN SRV 0 5 443 a.example.",
		"example. 60 IN TYPE65534 \\# 3 010203",
	}
	full := new(dns.Msg)
	full.SetQuestion("a.example.", dns.TypeA)
	for _, s := range zone {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(s, err)
		}
		full.Answer = append(full.Answer, rr)
	}
	full.Ns = append(full.Ns, full.Answer[6])
	full.SetEdns0(1232, true)
	withOptions := full.Copy()
	opt := withOptions.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeStaleAnswer, ExtraText: "stale"}, &dns.EDNS0_PADDING{Padding: make([]byte, 40)})

	byHand := new(dns.Msg)
	byHand.SetQuestion("h.example.", dns.TypeA)
	byHand.Answer = []dns.RR{
		&dns.A{Hdr: dns.RR_Header{Name: "h.example."}},                                // nil address
		&dns.AAAA{Hdr: dns.RR_Header{Name: "h.example."}, AAAA: make([]byte, 16, 32)}, // spare capacity
		&dns.TXT{Hdr: dns.RR_Header{Name: "h.example."}, Txt: []string{}},
		&dns.TXT{Hdr: dns.RR_Header{Name: ""}},
		(*dns.A)(nil),
		&dns.OPT{Hdr: dns.RR_Header{Name: "."}, Option: []dns.EDNS0{}},
	}
	byHand.Ns = []dns.RR{}

	msgs := map[string]*dns.Msg{"every type": full, "EDNS options": withOptions, "by hand": byHand, "empty": new(dns.Msg), "large TXT": txtReply("t.example.", 30000)}
	for name, m := range msgs {
		want := heapBytes(reflect.ValueOf(m))
		if got := msgBytes(m); got != want {
			t.Errorf("%s, as built: msgBytes %d, heapBytes %d", name, got, want)
		}
		if name == "by hand" {
			continue // a nil record does not pack
		}
		wire, err := m.Pack()
		if err != nil {
			t.Fatal(name, err)
		}
		u := new(dns.Msg)
		if err := u.Unpack(wire); err != nil {
			t.Fatal(name, err)
		}
		want = heapBytes(reflect.ValueOf(u))
		if got := msgBytes(u); got != want {
			t.Errorf("%s, unpacked: msgBytes %d, heapBytes %d", name, got, want)
		}
	}
	if msgBytes(nil) != 0 {
		t.Error("msgBytes(nil) is not 0")
	}
}

// BenchmarkEntrySize: what counting a typical answer (two A records and an OPT, unpacked from
// the wire) costs each miss, by msgBytes and by reflection alone.
func BenchmarkEntrySize(b *testing.B) {
	m := new(dns.Msg)
	m.SetQuestion("www.example.", dns.TypeA)
	for _, s := range []string{"www.example. 60 IN A 192.0.2.1", "www.example. 60 IN A 192.0.2.2"} {
		rr, _ := dns.NewRR(s)
		m.Answer = append(m.Answer, rr)
	}
	m.SetEdns0(1232, false)
	wire, _ := m.Pack()
	u := new(dns.Msg)
	if err := u.Unpack(wire); err != nil {
		b.Fatal(err)
	}
	b.Run("msgBytes", func(b *testing.B) {
		for b.Loop() {
			_ = msgBytes(u)
		}
	})
	b.Run("reflect", func(b *testing.B) {
		for b.Loop() {
			_ = heapBytes(reflect.ValueOf(u))
		}
	})
}
