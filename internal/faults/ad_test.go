package faults

import (
	"strconv"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// adServer is a validating resolver as RFC 6840 §5.7-5.8 has it answer a stub: every answer is
// authenticated, but AD is set in a reply only when the query set AD or DO. It records the AD bit
// of every query it reads.
type adServer struct {
	mu                  sync.Mutex
	askedAD, askedPlain int
}

func (a *adServer) reply(q *dns.Msg) *dns.Msg {
	do := false
	if opt := q.IsEdns0(); opt != nil {
		do = opt.Do()
	}
	a.mu.Lock()
	if q.AuthenticatedData {
		a.askedAD++
	} else {
		a.askedPlain++
	}
	a.mu.Unlock()
	r := answer(q)
	r.AuthenticatedData = q.AuthenticatedData || do
	return r
}

// TestADWhoeverAsksFirst: the AD bit a client gets, and the lookup object's secure, are the
// upstream's verdict for the answer, masked by that client's own AD and DO bits, and do not
// depend on which client filled the cache: delve asks every upstream query with AD=1.
func TestADWhoeverAsksFirst(t *testing.T) {
	t.Parallel()
	var ads adServer
	srv := newDotServer(t, dotOptions{}, replying(ads.reply))
	dnsAddr := listenAddr(t)
	c := newConf(t)
	c.ups = append(c.ups, srv.upstream("ad"))
	c.listen = dnsAddr
	p := serve(t, c, serveOptions{})

	type client struct {
		name   string
		ad, do bool
		wantAD bool
	}
	plain := client{name: "neither AD nor DO", wantAD: false}
	withAD := client{name: "AD", ad: true, wantAD: true}
	withDO := client{name: "DO", do: true, wantAD: true}
	ask := func(t *testing.T, name string, cl client) {
		t.Helper()
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeA)
		q.AuthenticatedData = cl.ad
		q.SetEdns0(1232, cl.do)
		pkt, err := q.Pack()
		if err != nil {
			t.Fatal(err)
		}
		r, err := dnsExchange(dnsAddr, pkt)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			t.Fatalf("%s from a client with %s: %v", name, cl.name, r)
		}
		if r.AuthenticatedData != cl.wantAD {
			t.Errorf("%s from a client with %s: AD %v, want %v", name, cl.name, r.AuthenticatedData, cl.wantAD)
		}
	}
	orders := [][]client{
		{plain, withAD, withDO, plain},
		{withAD, plain, withDO, withAD},
		{withDO, plain, withAD},
	}
	for i, order := range orders {
		name := "o" + strconv.Itoa(i) + ".ad.delve.test."
		for _, cl := range order {
			ask(t, name, cl)
		}
		// The lookup object's secure is the upstream's verdict too, from the cache a client
		// without AD filled first when the order began with one.
		l, _, err := lookup(p.client(t), name, "A")
		if err != nil {
			t.Fatal(err)
		}
		if !l.Secure || !l.Cached {
			t.Errorf("lookup of %s after DNS clients: secure %v cached %v, want both", name, l.Secure, l.Cached)
		}
	}
	// And a lookup that fills the cache first.
	l, _, err := lookup(p.client(t), "first.ad.delve.test", "A")
	if err != nil || !l.Secure {
		t.Fatalf("lookup first: %+v %v, want secure", l, err)
	}
	ask(t, "first.ad.delve.test.", plain)
	ask(t, "first.ad.delve.test.", withAD)

	ads.mu.Lock()
	defer ads.mu.Unlock()
	if ads.askedPlain != 0 || ads.askedAD == 0 {
		t.Errorf("the upstream saw %d queries with AD and %d without; every query should ask with AD=1", ads.askedAD, ads.askedPlain)
	}
}
