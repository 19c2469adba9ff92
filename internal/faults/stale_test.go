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
			dnsAddr := listenAddr(t)
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
			var data []string
			for i := range hitTries {
				data = append(data, "pf"+strconv.Itoa(i)+".delve.test. 10 IN A 192.0.2.55")
			}
			ub := testenv.UnboundT(t, testenv.UnboundOptions{ExtraLocalData: data})
			dnsAddr := listenAddr(t)
			c := newConf(t)
			c.addUnbound("ub", ub)
			c.listen = dnsAddr
			if !on {
				c.main = append(c.main, "option prefetch '0'")
			}
			p := serve(t, c, serveOptions{})
			cl := p.client(t)
			ask := func(try int, when string) *dns.Msg {
				t.Helper()
				q := new(dns.Msg)
				q.SetQuestion("pf"+strconv.Itoa(try)+".delve.test.", dns.TypeA)
				pkt, _ := q.Pack()
				r, err := dnsExchange(dnsAddr, pkt)
				if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
					t.Fatalf("%s: %v %v", when, r, err)
				}
				return r
			}
			var base, prefetches uint64
			try, t0 := hitInLastTenth(t, 10*time.Second, func(try int, when string) { ask(try, when) }, func() {
				st := status(t, cl)
				base, prefetches = st.Upstreams[0].Queries, st.Cache.Prefetches
			})
			time.Sleep(time.Until(t0.Add(10500 * time.Millisecond))) // past the first answer's expiry
			r := ask(try, "the lookup after the expiry")
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
		})
	}
}
