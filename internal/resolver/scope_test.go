package resolver

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/upstream"
)

// badHTTPSRdata is an HTTPS record's data with its SvcParamKeys out of order (port before alpn),
// which miekg/dns refuses to unpack.
const badHTTPSRdata = "0001" + "00" + "0003" + "0002" + "01bb" + "0001" + "0003" + "026832"

// zoneServer answers HTTPS questions for names starting with "bad" with one such record (a
// zone's bad data, relayed as it came), when garble is set every question with bytes whose header
// is no reply to it, and everything else with an A record.
func zoneServer(t *testing.T) (*dotServer, *atomic.Bool) {
	var garble atomic.Bool
	srv := newDoTServer(t, func(w dns.ResponseWriter, q *dns.Msg) {
		r := new(dns.Msg)
		r.SetReply(q)
		switch {
		case garble.Load():
			raw, _ := r.Pack()
			raw[5] = 2 // two questions: neither header nor question is sound
			_, _ = w.Write(raw)
			return
		case q.Question[0].Qtype == dns.TypeHTTPS && strings.HasPrefix(q.Question[0].Name, "bad"):
			r.Answer = []dns.RR{&dns.RFC3597{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeHTTPS, Class: dns.ClassINET, Ttl: 300}, Rdata: badHTTPSRdata}}
			raw, _ := r.Pack()
			_, _ = w.Write(raw)
			return
		}
		reply(dns.RcodeSuccess, 0)(w, q)
	})
	return srv, &garble
}

// TestZoneBadDataIsTheNames is issue 20's second finding: answers the only upstream relays with
// a zone's bad record (an HTTPS record with its keys out of order, which browsers ask for every
// name) fail those lookups with ErrBadAnswer, carry the answer for a forwarder to relay, are not
// cached, and never count against the upstream: it stays up and answers every other name. An
// upstream whose every reply is garbled is another matter: the check holds it against it.
func TestZoneBadDataIsTheNames(t *testing.T) {
	srv, garble := zoneServer(t)
	r := newResolver(t, Options{CacheSize: 64, BackoffMin: time.Hour}, srv.upstream(t, "only"))
	if _, err := lookupA(t, r, "good.example."); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		name := "bad" + strconv.Itoa(i%2) + ".example."
		res, err := r.Lookup(ctxT(t, 2*time.Second), name, []uint16{dns.TypeHTTPS}, "")
		if !errors.Is(err, ErrBadAnswer) || !errors.Is(err, upstream.ErrMalformed) || !strings.Contains(err.Error(), name) {
			t.Fatalf("%s: %+v %v, want ErrBadAnswer naming it", name, res, err)
		}
		relay, ok := Relay(err)
		if !ok || len(relay.Answer) != 1 || relay.Answer[0].Header().Rrtype != dns.TypeHTTPS {
			t.Fatalf("%s: relay %v %v, want the answer as it came", name, relay, ok)
		}
		if res, err := lookupA(t, r, "ok"+strconv.Itoa(i)+".example."); err != nil || len(res.Answers) != 1 {
			t.Fatalf("an ordinary name between the bad ones: %+v %v", res, err)
		}
		waitChecks(t, r)
	}
	q := new(dns.Msg)
	q.SetQuestion("bad0.example.", dns.TypeHTTPS)
	if e := r.cache.get(keyOf(q), time.Now()); e != nil {
		t.Fatal("an answer that does not parse was cached")
	}
	ups, _ := r.Status()
	if !ups[0].Healthy || ups[0].Failures != 0 {
		t.Fatalf("after 8 answers with a zone's bad record: healthy %v, failures %d (%q); want up, none counted", ups[0].Healthy, ups[0].Failures, ups[0].LastError)
	}

	garble.Store(true)
	h := r.set.Load().members[0].h
	for i := range 2 {
		h.mu.Lock()
		h.checkedOK = time.Time{} // forget the check that passed above, ServfailCheckEvery ago or not
		h.mu.Unlock()
		_, err := lookupA(t, r, "g"+strconv.Itoa(i)+".example.")
		if !errors.Is(err, ErrBadAnswer) {
			t.Fatalf("a garbled reply: %v, want ErrBadAnswer", err)
		}
		if _, ok := Relay(err); ok {
			t.Fatal("a reply with two questions was offered for relaying")
		}
		waitChecks(t, r)
	}
	if ups, _ := r.Status(); ups[0].Healthy {
		t.Fatalf("an upstream that garbles every reply is still up (failures %d)", ups[0].Failures)
	}
}

// TestOneFailedDialIsOneFault is issue 20's fourth finding: an A and an AAAA lookup that wait on
// the same connection, whose TLS handshake the server ends, fail with one connection fault, and
// that counts once: the only upstream is suspect, not down. The next such event takes it down.
func TestOneFailedDialIsOneFault(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				// Long enough that both lookups wait on this one dial, on a busy machine too
				// (the lookups' deadline is 3 s).
				time.Sleep(time.Second)
				nc.Close()
			}()
		}
	}()
	u, err := upstream.New(upstream.Options{Name: "only", Address: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, TLSName: "dot.delve.test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = u.Close() })
	r := newResolver(t, Options{BackoffMin: time.Hour}, u)
	lookup := func(name string) {
		t.Helper()
		if res, err := r.Lookup(ctxT(t, 3*time.Second), name, []uint16{dns.TypeA, dns.TypeAAAA}, ""); err == nil {
			t.Fatalf("%s answered: %+v", name, res)
		}
	}
	lookup("one.example.")
	ups, _ := r.Status()
	if ups[0].DialFails != 1 {
		t.Fatalf("%d failed dials for the A and AAAA lookup, want the one they shared", ups[0].DialFails)
	}
	if !ups[0].Healthy || ups[0].Failures != 1 {
		t.Fatalf("one failed dial, two lookups waiting on it: healthy %v, failures %d; want up, one counted", ups[0].Healthy, ups[0].Failures)
	}
	lookup("two.example.")
	if ups, _ := r.Status(); ups[0].Healthy || ups[0].Failures != 2 {
		t.Fatalf("a second failed dial: healthy %v, failures %d; want down, two counted", ups[0].Healthy, ups[0].Failures)
	}
}

// TestServeStaleOnServfail is issue 20's seventh finding: with an expired answer at hand, a
// lookup that every upstream answers SERVFAIL (a vendor whose authoritative servers died) gets
// the expired answer (RFC 8767 §4), not the SERVFAIL, and the SERVFAIL is not cached: the next
// lookup asks again. Without MaxStale the SERVFAIL is the answer.
func TestServeStaleOnServfail(t *testing.T) {
	sa, _ := servfailServer(t, true)
	sb, _ := servfailServer(t, true)
	q := new(dns.Msg)
	q.SetQuestion("vendor.example.", dns.TypeA)
	old := new(dns.Msg)
	old.SetReply(q)
	rr, _ := dns.NewRR("vendor.example. 60 IN A 192.0.2.99")
	old.Answer = []dns.RR{rr}
	for _, on := range []bool{true, false} {
		t.Run("serve-stale "+strconv.FormatBool(on), func(t *testing.T) {
			o := Options{CacheSize: 16, BackoffMin: time.Hour}
			if on {
				o.MaxStale = time.Hour
			}
			r := newResolver(t, o, sa.upstream(t, "a"), sb.upstream(t, "b"))
			now := time.Now()
			r.cache.put(&entry{key: keyOf(q), msg: old, upstream: "a", stored: now.Add(-2 * time.Minute), expires: now.Add(-time.Minute)})
			for i := range 2 {
				asked := sa.queries.Load() + sb.queries.Load()
				res, err := r.Lookup(ctxT(t, 5*time.Second), "vendor.example.", []uint16{dns.TypeA}, "")
				if sa.queries.Load()+sb.queries.Load() == asked {
					t.Fatalf("lookup %d did not ask the upstreams: the SERVFAIL was cached", i)
				}
				if !on {
					if err != nil || res.Stale || res.Rcode != dns.RcodeServerFailure {
						t.Fatalf("serve-stale off: %+v %v, want SERVFAIL", res, err)
					}
					continue
				}
				if err != nil || !res.Stale || res.Rcode != dns.RcodeSuccess || len(res.Answers) != 1 ||
					res.Answers[0].Header().Ttl != StaleTTL || res.Answers[0].(*dns.A).A.String() != "192.0.2.99" {
					t.Fatalf("lookup %d: %+v %v, want the expired answer, stale, TTL %d", i, res, err, StaleTTL)
				}
				waitChecks(t, r)
			}
		})
	}
}
