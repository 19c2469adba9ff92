package resolver

import (
	"bytes"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/testenv"
)

// TestCachedFastPaths: Cached and AppendCached give what Exchange gives from the cache (the
// caller's ID, aged TTLs), count hits but not misses, and AppendCached leaves replies carrying
// Extended DNS Errors to the message form.
func TestCachedFastPaths(t *testing.T) {
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	r := newResolver(t, Options{CacheSize: 100}, unboundUpstream(t, ub, "unbound"))
	q := new(dns.Msg)
	q.SetQuestion("multi.delve.test.", dns.TypeA)
	q.SetEdns0(1232, true)

	prefix := []byte("prefix")
	if _, _, ok := r.Cached(q); ok {
		t.Fatal("Cached hit on an empty cache")
	}
	if out, _, ok := r.AppendCached(prefix, q); ok || !bytes.Equal(out, prefix) {
		t.Fatal("AppendCached hit on an empty cache, or changed dst")
	}
	if _, cs := r.Status(); cs.Misses != 0 || cs.Hits != 0 {
		t.Fatalf("fast paths counted %+v; a miss is Exchange's to count", cs)
	}
	want, _, err := r.Exchange(ctxT(t, 5*time.Second), q, "")
	if err != nil {
		t.Fatal(err)
	}
	// Pretend the entry is 10 s old.
	for _, el := range r.cache.items {
		el.Value.(*entry).stored = el.Value.(*entry).stored.Add(-10 * time.Second)
	}
	q.Id++
	check := func(how string, got *dns.Msg, info Info) {
		t.Helper()
		if got.Id != q.Id || len(got.Answer) != len(want.Answer) || !info.Cached || info.Upstream != "unbound" {
			t.Fatalf("%s: %v (info %+v)", how, got, info)
		}
		for i, rr := range got.Answer {
			w := dns.Copy(want.Answer[i])
			w.Header().Ttl -= 10
			if rr.String() != w.String() {
				t.Errorf("%s: answer %d %v, want %v", how, i, rr, w)
			}
		}
	}
	m, info, ok := r.Cached(q)
	if !ok {
		t.Fatal("Cached missed")
	}
	check("Cached", m, info)
	for range 2 { // the second time from the packed form made the first time
		out, info, ok := r.AppendCached(prefix, q)
		if !ok || !bytes.HasPrefix(out, prefix) {
			t.Fatal("AppendCached missed or lost dst")
		}
		m := new(dns.Msg)
		if err := m.Unpack(out[len(prefix):]); err != nil {
			t.Fatal(err)
		}
		if m.IsEdns0() != nil {
			t.Error("AppendCached left an OPT record")
		}
		check("AppendCached", m, info)
	}
	if _, cs := r.Status(); cs.Hits != 3 || cs.Misses != 1 {
		t.Errorf("cache counters %+v, want 3 hits, 1 miss", cs)
	}

	// A reply with an Extended DNS Error is not for the wire fast path.
	ede := want.Copy()
	ede.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_EDE{InfoCode: 3}}
	if p := packEntry(ede); p.wire != nil {
		t.Error("packed a reply with an EDE for the fast path")
	}
}

func TestTTLOffsets(t *testing.T) {
	m := new(dns.Msg)
	m.SetQuestion("a.example.", dns.TypeA)
	for _, s := range []string{"a.example. 100 IN A 192.0.2.1", "a.example. 200 IN TXT \"x\"", "example. 300 IN NS a.example."} {
		rr, _ := dns.NewRR(s)
		m.Answer = append(m.Answer, rr)
	}
	m.Compress = true
	w, _ := m.Pack()
	offs, ok := ttlOffsets(w)
	if !ok || len(offs) != 3 {
		t.Fatalf("offsets %v ok %v", offs, ok)
	}
	for i, off := range offs {
		if got := uint32(w[off])<<24 | uint32(w[off+1])<<16 | uint32(w[off+2])<<8 | uint32(w[off+3]); got != uint32(100*(i+1)) {
			t.Errorf("TTL %d at %d is %d", i, off, got)
		}
	}
	if _, ok := ttlOffsets(w[:len(w)-1]); ok {
		t.Error("a cut message walked")
	}
}
