package faults

import (
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/testenv"
)

// shortTTL answers every A question at once with a 1 s TTL, so that a test sees its answers
// expire.
var shortTTL = replying(func(q *dns.Msg) *dns.Msg {
	r := answer(q)
	for _, rr := range r.Answer {
		rr.Header().Ttl = 1
	}
	return r
})

// TestServeStale: once the only upstream is gone (the server closed, every dial refused), a name
// whose answer expired is still answered, from the expired entry, with TTL 30: over the socket
// ("stale": true) and through the DNS listener dnsmasq uses. A name never asked fails, and with
// serve_stale off the expired name fails too.
func TestServeStale(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{true, false} {
		t.Run("serve_stale "+strconv.FormatBool(on), func(t *testing.T) {
			t.Parallel()
			srv := newDotServer(t, dotOptions{}, shortTTL)
			dnsPort, err := testenv.FreePort("tcp+udp")
			if err != nil {
				t.Fatal(err)
			}
			dnsAddr := "127.0.0.1:" + strconv.Itoa(dnsPort)
			c := newConf(t)
			c.ups = append(c.ups, srv.upstream("only"))
			c.listen = dnsAddr
			if !on {
				c.main = append(c.main, "option serve_stale '0'")
			}
			p := serve(t, c, serveOptions{})
			cl := p.client(t)
			if l, _, err := lookup(cl, "kept.delve.test", "A"); err != nil || len(l.Addresses) != 1 || l.Stale {
				t.Fatalf("first lookup: %+v %v", l, err)
			}
			srv.close()
			time.Sleep(1500 * time.Millisecond) // past the 1 s TTL

			l, _, err := lookup(cl, "kept.delve.test", "A")
			if !on {
				if err == nil {
					t.Fatalf("with serve_stale off an expired name was answered: %+v", l)
				}
				return
			}
			if err != nil || !l.Stale || len(l.Answers) != 1 || l.Answers[0].TTL != 30 || l.Addresses[0] != faultAddr {
				t.Fatalf("stale lookup: %+v %v, want the old address, stale, TTL 30", l, err)
			}
			q := new(dns.Msg)
			q.SetQuestion("kept.delve.test.", dns.TypeA)
			pkt, _ := q.Pack()
			r, err := dnsExchange(dnsAddr, pkt)
			if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].Header().Ttl != 30 {
				t.Fatalf("stale answer through the DNS listener: %v %v, want the record with TTL 30", r, err)
			}
			if l, _, err := lookup(cl, "never.delve.test", "A"); err == nil {
				t.Fatalf("a name never asked was answered with the upstream gone: %+v", l)
			}
		})
	}
}

// TestPrefetchThroughDNSListener is prefetch on the dnsmasq path, against the real unbound: a
// name with a 10 s TTL that dnsmasq asks again and again is refreshed in the last tenth of its
// TTL, so the lookup after it would have expired is still a cache hit (unbound asked twice in
// all, status.cache.prefetches 1). With prefetch off that lookup is a miss (asked three times).
func TestPrefetchThroughDNSListener(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{true, false} {
		t.Run("prefetch "+strconv.FormatBool(on), func(t *testing.T) {
			t.Parallel()
			const tries = 3
			var data []string
			for i := range tries {
				data = append(data, "pf"+strconv.Itoa(i)+".delve.test. 10 IN A 192.0.2.55")
			}
			ub := testenv.UnboundT(t, testenv.UnboundOptions{ExtraLocalData: data})
			dnsPort, err := testenv.FreePort("tcp+udp")
			if err != nil {
				t.Fatal(err)
			}
			dnsAddr := "127.0.0.1:" + strconv.Itoa(dnsPort)
			c := newConf(t)
			c.addUnbound("ub", ub)
			c.listen = dnsAddr
			if !on {
				c.main = append(c.main, "option prefetch '0'")
			}
			p := serve(t, c, serveOptions{})
			cl := p.client(t)
			queries := func() uint64 { return status(t, cl).Upstreams[0].Queries }
			// The hit must reach the daemon in the last second of the answer's 10, which was cached
			// between the first lookup's send (t0) and its reply (t1): the hit is sent at t1 + 9.2 s
			// and counts only when its reply came before t0 + 10 s. A busy machine can make it late;
			// then the same is tried with another name, not judged.
			for i := range tries {
				q := new(dns.Msg)
				q.SetQuestion("pf"+strconv.Itoa(i)+".delve.test.", dns.TypeA)
				pkt, _ := q.Pack()
				ask := func(when string) *dns.Msg {
					t.Helper()
					r, err := dnsExchange(dnsAddr, pkt)
					if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
						t.Fatalf("%s: %v %v", when, r, err)
					}
					return r
				}
				t0 := time.Now()
				ask("the first lookup")
				t1 := time.Now()
				ask("the first hit")
				base, prefetches := queries(), status(t, cl).Cache.Prefetches
				time.Sleep(time.Until(t1.Add(9200 * time.Millisecond))) // in the last second of 10
				ask("the hit in the last tenth")
				if late := time.Since(t0); late >= 10*time.Second {
					t.Logf("%s: the hit came %v after the first lookup, past the answer's 10 s: again with another name", q.Question[0].Name, late)
					continue
				}
				time.Sleep(time.Until(t0.Add(10500 * time.Millisecond))) // past the first answer's expiry
				r := ask("the lookup after the expiry")
				st := status(t, cl)
				n, pf := st.Upstreams[0].Queries-base, st.Cache.Prefetches-prefetches
				if on {
					if n != 1 || pf != 1 {
						t.Fatalf("unbound was asked %d more times, prefetches %d; want the one prefetch", n, pf)
					}
					if ttl := r.Answer[0].Header().Ttl; ttl < 8 {
						t.Fatalf("the answer after the expiry has TTL %d, want the prefetched one's (9 or 10)", ttl)
					}
					return
				}
				if n != 1 || pf != 0 {
					t.Fatalf("prefetch off: unbound was asked %d more times, prefetches %d; want the one miss", n, pf)
				}
				return
			}
			t.Fatalf("in %d tries the hit never came within the answer's 10 s: the machine is too busy for this test", tries)
		})
	}
}
