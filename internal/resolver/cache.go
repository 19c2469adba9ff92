package resolver

import (
	"container/list"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/miekg/dns"
)

// maxCacheTTL caps how long anything is kept, whatever the TTL says (as unbound's cache-max-ttl).
const maxCacheTTL = 24 * time.Hour

// cacheKey identifies a question. Names are case-insensitive; DO and CD change the answer, and
// so does the client subnet a query carries (RFC 7871): an answer for one subnet is not served
// to another.
type cacheKey struct {
	name   string
	qtype  uint16
	qclass uint16
	do, cd bool
	subnet netip.Prefix // the query's EDNS Client Subnet, masked; invalid when it has none
}

func keyOf(q *dns.Msg) cacheKey {
	k := cacheKey{name: strings.ToLower(q.Question[0].Name), qtype: q.Question[0].Qtype, qclass: q.Question[0].Qclass, cd: q.CheckingDisabled}
	if opt := q.IsEdns0(); opt != nil {
		k.do = opt.Do()
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_SUBNET); ok {
				// miekg/dns has checked family and prefix length; family 0 (no address: the
				// client asks that none be used) is as if there were no option.
				if a, ok := netip.AddrFromSlice(e.Address); ok {
					k.subnet, _ = a.Unmap().Prefix(int(e.SourceNetmask))
				}
				break
			}
		}
	}
	return k
}

// query is a query for k's question with k's CD, DO and Client Subnet: what the answer cached
// under k was asked with.
func (k cacheKey) query() *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(k.name, k.qtype)
	q.Question[0].Qclass = k.qclass
	q.CheckingDisabled = k.cd
	if k.do || k.subnet.IsValid() {
		q.SetEdns0(1232, k.do)
		if p := k.subnet; p.IsValid() {
			e := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()}
			e.Family = 1
			if p.Addr().Is6() {
				e.Family = 2
			}
			opt := q.IsEdns0()
			opt.Option = append(opt.Option, e)
		}
	}
	return q
}

type entry struct {
	_        [0]func() // never compared: the binary then carries no equality function for it
	key      cacheKey
	msg      *dns.Msg // read-only once stored
	upstream string
	stored   time.Time
	expires  time.Time
	// packed is msg packed for AppendCached, made on the entry's first hit there (most answers a
	// router caches are asked for once: packing each on its miss cost a sixth of the miss path).
	packed atomic.Pointer[packedReply]
	size   int // the bytes counted against the cache's budget; c.mu once stored

	hits       atomic.Uint32 // counted up to PrefetchMinHits
	prefetched atomic.Bool   // a prefetch of it has been started
}

// DefaultCacheMemory is the cache's byte budget when Options.CacheMemory is zero, sized for a
// router with 64 MB of RAM: the daemon's soft memory limit is 32 MiB, and the cache is one part
// of what the process holds.
const DefaultCacheMemory = 4 << 20

// maxEntryShare: an answer that would take more than 1/maxEntryShare of the budget is not
// cached, so that one hostile large answer cannot push out a sixteenth of everything else.
const maxEntryShare = 16

// entryOverhead is what every entry costs besides its message and packed copy: the entry, its
// list element and its map slot (the key and a pointer; Go's maps keep up to 8 slots per bucket
// at a load factor below 7/8, so a slot is counted twice to cover the empty ones).
const entryOverhead = int(unsafe.Sizeof(entry{})+unsafe.Sizeof(list.Element{})) +
	2*int(unsafe.Sizeof(cacheKey{})+unsafe.Sizeof(uintptr(0)))

// cache is an LRU of replies bounded both in entries and in bytes. Entries are never modified
// after they are stored, so a hit can be read without the lock.
type cache struct {
	mu     sync.Mutex
	max    int // entries
	budget int // bytes; see entrySize for what is counted
	bytes  int
	items  map[cacheKey]*list.Element
	lru    list.List // front = most recently used

	maxStale time.Duration // an expired entry is kept this long for serve-stale; c.mu

	hits, misses atomic.Uint64
}

func newCache(max, budget int) *cache {
	c := &cache{max: max, budget: budget, items: make(map[cacheKey]*list.Element)}
	c.lru.Init()
	return c
}

func (c *cache) get(k cacheKey, now time.Time) *entry {
	c.mu.Lock()
	el, ok := c.items[k]
	if !ok {
		c.mu.Unlock()
		c.misses.Add(1)
		return nil
	}
	e := el.Value.(*entry)
	if !now.Before(e.expires) {
		if !now.Before(e.expires.Add(c.maxStale)) {
			c.remove(el) // kept for serve-stale until then, evicted by the bounds like any other
		}
		c.mu.Unlock()
		c.misses.Add(1)
		return nil
	}
	c.lru.MoveToFront(el)
	c.mu.Unlock()
	c.hits.Add(1)
	return e
}

// getStale returns the expired entry for k when serve-stale keeps one (no more than maxStale
// past its expiry), nil otherwise. It counts neither a hit nor a miss: get already did.
func (c *cache) getStale(k cacheKey, now time.Time) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return nil
	}
	e := el.Value.(*entry)
	if now.Before(e.expires) || !now.Before(e.expires.Add(c.maxStale)) {
		return nil
	}
	c.lru.MoveToFront(el)
	return e
}

// setMaxStale sets how long expired entries are kept for serve-stale; 0 drops them when met.
func (c *cache) setMaxStale(d time.Duration) {
	c.mu.Lock()
	c.maxStale = d
	c.mu.Unlock()
}

// put stores e, which must not be shared yet, and counts its size. An entry larger than the
// budget's share (its packed copy included, which pack adds on its first hit) is not stored,
// and one it replaces is dropped (the new answer supersedes it). The least recently used
// entries are evicted until both bounds hold.
func (c *cache) put(e *entry) {
	c.mu.Lock()
	max, budget := c.max, c.budget
	c.mu.Unlock()
	if max <= 0 || budget <= 0 {
		return
	}
	// Measuring happens outside the lock: it costs microseconds for a large answer.
	e.size = entrySize(e)
	share := budget / maxEntryShare
	fits := e.size <= share
	if fits && e.size > share/4 {
		// Large enough for its packed copy to matter: count that too (Len is its uncompressed
		// wire length, an upper bound).
		fits = e.size+allocSize(e.msg.Len()) <= share
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[e.key]; ok {
		c.remove(el)
	}
	if !fits || c.max <= 0 {
		return
	}
	c.items[e.key] = c.lru.PushFront(e)
	c.bytes += e.size
	c.shrink()
}

// pack returns e's packed copy, making it on the first call: the copy's bytes are then counted
// against the budget while e is stored, evicting what no longer fits. An entry already evicted
// is packed for its caller and not counted: nothing in the cache holds it any more.
func (c *cache) pack(e *entry) *packedReply {
	if p := e.packed.Load(); p != nil {
		return p
	}
	p := packEntry(e.msg) // outside the lock, as put measures
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur := e.packed.Load(); cur != nil {
		return cur // another hit packed it meanwhile
	}
	e.packed.Store(p)
	if el, ok := c.items[e.key]; ok && el.Value.(*entry) == e {
		n := packedSize(p)
		e.size += n
		c.bytes += n
		c.shrink()
	}
	return p
}

// remove drops one entry; c.mu is held.
func (c *cache) remove(el *list.Element) {
	e := el.Value.(*entry)
	c.lru.Remove(el)
	delete(c.items, e.key)
	c.bytes -= e.size
}

// shrink evicts from the least recently used end until both bounds hold; c.mu is held.
func (c *cache) shrink() {
	for len(c.items) > 0 && (len(c.items) > c.max || c.bytes > c.budget) {
		c.remove(c.lru.Back())
	}
}

// resize sets both bounds, evicting what no longer fits. Entries stored under a larger budget
// that are now above the budget's share stay until they expire or are evicted.
func (c *cache) resize(max, budget int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.max, c.budget = max, budget
	c.shrink()
}

func (c *cache) flush() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.items)
	clear(c.items)
	c.lru.Init()
	c.bytes = 0
	return n
}

// cacheUse is a snapshot of the cache's size and bounds.
type cacheUse struct {
	entries, max  int
	bytes, budget int
}

func (c *cache) use() cacheUse {
	c.mu.Lock()
	defer c.mu.Unlock()
	return cacheUse{entries: len(c.items), max: c.max, bytes: c.bytes, budget: c.budget}
}

// entrySize is what an entry holds on the heap, estimated from above: entryOverhead, the key's
// name and the message as measured by heapBytes (every string, slice and
// pointed-to struct reachable from it, each rounded up as the allocator does). Measuring beats
// estimating from the wire length: in memory a TXT string costs a 16-byte header besides its
// bytes, a name is never compressed, and an NSEC bitmap of 34 wire bytes unpacks into up to
// 256 uint16s.
func entrySize(e *entry) int {
	return entryOverhead + allocSize(len(e.key.name)) + msgBytes(e.msg)
}

// msgBytes is heapBytes(reflect.ValueOf(m)), with the record types of most answers counted
// without reflection (walking each field by reflection was 4 % of a miss's CPU); others, and
// EDNS options, are measured by heapBytes. TestMsgBytesIsHeapBytes holds the two equal.
func msgBytes(m *dns.Msg) int {
	if m == nil {
		return 0
	}
	n := allocSize(int(unsafe.Sizeof(*m)))
	if m.Question != nil {
		n += allocSize(cap(m.Question) * int(unsafe.Sizeof(dns.Question{})))
		for _, q := range m.Question {
			n += allocSize(len(q.Name))
		}
	}
	return n + rrsBytes(m.Answer) + rrsBytes(m.Ns) + rrsBytes(m.Extra)
}

func rrsBytes(rrs []dns.RR) int {
	if rrs == nil {
		return 0
	}
	var rr dns.RR
	n := allocSize(cap(rrs) * int(unsafe.Sizeof(rr)))
	for _, rr := range rrs {
		n += rrBytes(rr)
	}
	return n
}

// rrBytes is heapBytes of one record: its struct, its owner name, and what its rdata points to.
func rrBytes(rr dns.RR) int {
	switch r := rr.(type) {
	case *dns.A:
		if r == nil {
			break
		}
		return allocSize(int(unsafe.Sizeof(*r))) + allocSize(len(r.Hdr.Name)) + bytesOf(r.A)
	case *dns.AAAA:
		if r == nil {
			break
		}
		return allocSize(int(unsafe.Sizeof(*r))) + allocSize(len(r.Hdr.Name)) + bytesOf(r.AAAA)
	case *dns.CNAME:
		if r == nil {
			break
		}
		return allocSize(int(unsafe.Sizeof(*r))) + allocSize(len(r.Hdr.Name)) + allocSize(len(r.Target))
	case *dns.NS:
		if r == nil {
			break
		}
		return allocSize(int(unsafe.Sizeof(*r))) + allocSize(len(r.Hdr.Name)) + allocSize(len(r.Ns))
	case *dns.PTR:
		if r == nil {
			break
		}
		return allocSize(int(unsafe.Sizeof(*r))) + allocSize(len(r.Hdr.Name)) + allocSize(len(r.Ptr))
	case *dns.MX:
		if r == nil {
			break
		}
		return allocSize(int(unsafe.Sizeof(*r))) + allocSize(len(r.Hdr.Name)) + allocSize(len(r.Mx))
	case *dns.SOA:
		if r == nil {
			break
		}
		return allocSize(int(unsafe.Sizeof(*r))) + allocSize(len(r.Hdr.Name)) + allocSize(len(r.Ns)) + allocSize(len(r.Mbox))
	case *dns.TXT:
		if r == nil {
			break
		}
		n := allocSize(int(unsafe.Sizeof(*r))) + allocSize(len(r.Hdr.Name))
		if r.Txt != nil {
			n += allocSize(cap(r.Txt) * int(unsafe.Sizeof("")))
			for _, s := range r.Txt {
				n += allocSize(len(s))
			}
		}
		return n
	case *dns.OPT:
		if r == nil || r.Option != nil {
			break // options are interfaces of many types: measured by reflection
		}
		return allocSize(int(unsafe.Sizeof(*r))) + allocSize(len(r.Hdr.Name))
	}
	// As heapBytes counts an interface (a slice element), without taking rr's address, which
	// would move every call's rr to the heap.
	v := reflect.ValueOf(rr)
	switch {
	case !v.IsValid():
		return 0
	case v.Kind() == reflect.Pointer:
		return heapBytes(v)
	}
	return allocSize(int(v.Type().Size())) + heapBytes(v)
}

// bytesOf is heapBytes of a byte slice (an address).
func bytesOf(b []byte) int {
	if b == nil {
		return 0
	}
	return allocSize(cap(b))
}

// packedSize is what a packed copy holds on the heap, from above.
func packedSize(p *packedReply) int {
	return allocSize(int(unsafe.Sizeof(*p))) + allocSize(cap(p.wire)) + allocSize(cap(p.ttls)*int(unsafe.Sizeof(0)))
}

// allocSize bounds from above what the allocator takes for an object of n bytes: Go's size
// classes are at most 12.5 % apart, and small objects take at least 16 bytes (or share them).
func allocSize(n int) int {
	if n <= 0 {
		return 0
	}
	return (n + n/8 + 15) &^ 15
}

// heapBytes is the heap memory reachable from v that v does not hold inline. Memory shared by
// two paths is counted twice, which only overestimates.
func heapBytes(v reflect.Value) int {
	switch v.Kind() {
	case reflect.String:
		return allocSize(v.Len())
	case reflect.Pointer:
		if v.IsNil() {
			return 0
		}
		return allocSize(int(v.Type().Elem().Size())) + heapBytes(v.Elem())
	case reflect.Interface:
		if v.IsNil() {
			return 0
		}
		e := v.Elem()
		if e.Kind() == reflect.Pointer {
			return heapBytes(e)
		}
		return allocSize(int(e.Type().Size())) + heapBytes(e) // a non-pointer in an interface is boxed
	case reflect.Slice:
		if v.IsNil() {
			return 0
		}
		n := allocSize(v.Cap() * int(v.Type().Elem().Size()))
		if holdsPointers(v.Type().Elem()) {
			for i := range v.Len() {
				n += heapBytes(v.Index(i))
			}
		}
		return n
	case reflect.Array:
		n := 0
		if holdsPointers(v.Type().Elem()) {
			for i := range v.Len() {
				n += heapBytes(v.Index(i))
			}
		}
		return n
	case reflect.Struct:
		n := 0
		for i := range v.NumField() {
			n += heapBytes(v.Field(i))
		}
		return n
	case reflect.Map:
		// No record type of miekg/dns has a map; count the entries generously if one appears.
		n := v.Len() * 2 * int(v.Type().Key().Size()+v.Type().Elem().Size())
		for it := v.MapRange(); it.Next(); {
			n += heapBytes(it.Key()) + heapBytes(it.Value())
		}
		return n
	}
	return 0
}

// holdsPointers reports whether values of t can refer to other memory.
func holdsPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return false
	case reflect.Array:
		return holdsPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if holdsPointers(t.Field(i).Type) {
				return true
			}
		}
		return false
	}
	return true
}

// cacheTTL is how long a reply may be kept: the smallest TTL of its answer and authority records
// for a positive answer; for NXDOMAIN and NODATA the SOA's min(TTL, MINIMUM) (RFC 2308 §5), and
// not at all without an SOA. SERVFAIL and other failures are never cached.
func cacheTTL(m *dns.Msg) time.Duration {
	switch m.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return negativeTTL(m)
	default:
		return 0
	}
	if m.Truncated {
		return 0
	}
	if !answers(m) {
		return negativeTTL(m)
	}
	ttl := uint32(1<<32 - 1)
	for _, sec := range [][]dns.RR{m.Answer, m.Ns} {
		for _, rr := range sec {
			if t := rr.Header().Ttl; t < ttl {
				ttl = t
			}
		}
	}
	return capTTL(ttl)
}

// answers reports whether the reply holds records of the type asked (or a CNAME/DNAME leading
// somewhere), as opposed to NODATA.
func answers(m *dns.Msg) bool {
	if len(m.Question) == 0 {
		return len(m.Answer) > 0
	}
	qt := m.Question[0].Qtype
	for _, rr := range m.Answer {
		switch t := rr.Header().Rrtype; {
		case t == qt, qt == dns.TypeANY, t == dns.TypeCNAME, t == dns.TypeDNAME:
			return true
		}
	}
	return false
}

func negativeTTL(m *dns.Msg) time.Duration {
	for _, rr := range m.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return capTTL(min(soa.Hdr.Ttl, soa.Minttl))
		}
	}
	return 0
}

func capTTL(ttl uint32) time.Duration {
	d := time.Duration(ttl) * time.Second
	return min(d, maxCacheTTL)
}
