package faults

import (
	"encoding/binary"
	"encoding/hex"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/testenv"
)

// Issue 20: one event is one fault. Each test here is named for a finding and runs the real
// daemon.

// badHTTPSRdata is the data of an HTTPS record whose SvcParamKeys are out of order (port, key 3,
// before alpn, key 1), as a zone can publish it: miekg/dns refuses to unpack it ("svcb keys not
// in strictly increasing order"), unbound relays it as it came.
const badHTTPSRdata = "0001" + "00" + "0003" + "0002" + "01bb" + "0001" + "0003" + "026832"

// badAuthority is a plain-DNS authority on loopback UDP for zone, as unbound recurses to it: an
// HTTPS question for a name under it that starts with "bad" gets the bad record, an A question an
// A record, anything else an empty authoritative NOERROR.
func badAuthority(t *testing.T, zone string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		r := new(dns.Msg)
		r.SetReply(q)
		r.Authoritative = true
		name, qt := q.Question[0].Name, q.Question[0].Qtype
		switch {
		case qt == dns.TypeHTTPS && strings.HasPrefix(name, "bad"):
			r.Answer = []dns.RR{&dns.RFC3597{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeHTTPS, Class: dns.ClassINET, Ttl: 300}, Rdata: badHTTPSRdata}}
		case qt == dns.TypeA:
			rr, _ := dns.NewRR(name + " 300 IN A " + faultAddr)
			r.Answer = []dns.RR{rr}
		case qt == dns.TypeNS && name == zone:
			rr, _ := dns.NewRR(zone + " 300 IN NS ns." + zone)
			r.Answer = []dns.RR{rr}
		}
		raw, err := r.Pack()
		if err == nil {
			_, _ = w.Write(raw)
		}
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

// rawExchange sends a packed query over UDP and returns the reply's octets, unparsed.
func rawExchange(addr string, pkt []byte) ([]byte, error) {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(pkt); err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	n, err := conn.Read(buf)
	return buf[:n], err
}

// TestZoneBadDataIsTheNames is issue 20's second finding: a zone that publishes an HTTPS record
// with its SvcParamKeys out of order, served by a loopback authority that the real unbound
// recurses to, must not take the upstream down. A page that asks two such names again and again
// (browsers ask HTTPS for every name they load) between ordinary lookups: every ordinary lookup
// is answered, the upstream stays up with no failure counted; the lookup method answers those
// names with one clear error (code bad_answer, naming the name); dnsmasq's path, the DNS
// listener, gets unbound's answer as it came (the record's octets unchanged), and it is not
// cached.
func TestZoneBadDataIsTheNames(t *testing.T) {
	t.Parallel()
	const zone = "zone.example."
	auth := badAuthority(t, zone)
	ub := testenv.UnboundT(t, testenv.UnboundOptions{ExtraConfig: []string{
		"do-not-query-localhost: no",
		`local-zone: "` + zone + `" transparent`,
		"stub-zone:",
		`	name: "` + zone + `"`,
		"	stub-addr: " + strings.Replace(auth, ":", "@", 1),
	}})
	dnsAddr := listenAddr(t)
	c := newConf(t)
	c.addUnbound("ub", ub)
	c.listen = dnsAddr
	p := serve(t, c, serveOptions{})
	cl := p.client(t)

	_, _, err := lookup(cl, "bad0."+zone, "HTTPS")
	if code := codeOf(err); code != api.CodeBadAnswer || !strings.Contains(err.Error(), "bad0."+zone) {
		t.Fatalf("lookup of the bad record: %v (%s), want bad_answer naming the name", err, code)
	}

	q := new(dns.Msg)
	q.SetQuestion("bad1."+zone, dns.TypeHTTPS)
	q.SetEdns0(1232, false)
	pkt, _ := q.Pack()
	want, _ := hex.DecodeString(badHTTPSRdata)
	for i := range 2 {
		before := status(t, cl).Upstreams[0].Queries
		raw, err := rawExchange(dnsAddr, pkt)
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) < 12 || binary.BigEndian.Uint16(raw) != q.Id || raw[3]&0xF != dns.RcodeSuccess || binary.BigEndian.Uint16(raw[6:]) != 1 ||
			!strings.Contains(string(raw), string(want)) {
			t.Fatalf("through the DNS listener (%d): %x, want NOERROR with the record as it came", i, raw)
		}
		if after := status(t, cl).Upstreams[0].Queries; after == before {
			t.Fatalf("the relayed answer was cached: ask %d did not reach unbound", i)
		}
	}

	// The page: two bad names every round between ordinary ones.
	const rounds = 20
	failed := 0
	for i := range rounds {
		var wg sync.WaitGroup
		for _, name := range []string{"bad0." + zone, "bad1." + zone} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, _ = lookup(cl, name, "HTTPS")
			}()
		}
		for _, name := range []string{"www" + strconv.Itoa(i) + "." + zone, testenv.WildName("w" + strconv.Itoa(i))} {
			if l, _, err := lookup(cl, name, "A"); err != nil || len(l.Addresses) != 1 {
				failed++
				t.Errorf("ordinary lookup %s in round %d: %+v %v", name, i, l, err)
			}
		}
		wg.Wait()
	}
	st := status(t, cl)
	if !st.Upstreams[0].Healthy || st.Upstreams[0].Failures != 0 {
		t.Fatalf("after %d rounds of bad records: healthy %v, failures %d (%q); want up, none counted",
			rounds, st.Upstreams[0].Healthy, st.Upstreams[0].Failures, st.Upstreams[0].LastError)
	}
	t.Logf("%d rounds: %d of %d ordinary lookups failed; upstream healthy, %d failures", rounds, failed, 2*rounds, st.Upstreams[0].Failures)
}

// TestGarbledAnswerIsServfailWithEDE: an answer whose header is not sound (the malformed fault
// server's) cannot be relayed: the DNS listener says SERVFAIL with Extended DNS Error 24 (Invalid
// Data), and the lookup method says bad_answer.
func TestGarbledAnswerIsServfailWithEDE(t *testing.T) {
	t.Parallel()
	srv := newDotServer(t, dotOptions{}, malformed)
	dnsAddr := listenAddr(t)
	c := newConf(t)
	c.ups = append(c.ups, srv.upstream("garbling"))
	c.listen = dnsAddr
	p := serve(t, c, serveOptions{})
	if _, _, err := lookup(p.client(t), "g.delve.test", "A"); codeOf(err) != api.CodeBadAnswer {
		t.Fatalf("lookup: %v (%s), want bad_answer", err, codeOf(err))
	}
	q := new(dns.Msg)
	q.SetQuestion("h.delve.test.", dns.TypeA)
	q.SetEdns0(1232, false)
	pkt, _ := q.Pack()
	r, err := dnsExchange(dnsAddr, pkt)
	if err != nil || r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("through the DNS listener: %v %v, want SERVFAIL", r, err)
	}
	var ede *dns.EDNS0_EDE
	if opt := r.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_EDE); ok {
				ede = e
			}
		}
	}
	if ede == nil || ede.InfoCode != dns.ExtendedErrorCodeInvalidData {
		t.Fatalf("extended error %v, want 24 (Invalid Data)", ede)
	}
}

// hopServer is a recursive server as unbound is to a stub: it answers RD=0 with REFUSED, and
// other questions with an A record of TTL ttl. It keeps every query it reads.
type hopServer struct {
	ttl uint32
	mu  sync.Mutex
	got []*dns.Msg
}

func (h *hopServer) reply(q *dns.Msg) *dns.Msg {
	h.mu.Lock()
	h.got = append(h.got, q.Copy())
	h.mu.Unlock()
	if !q.RecursionDesired {
		r := new(dns.Msg)
		r.SetRcode(q, dns.RcodeRefused)
		return r
	}
	r := answer(q)
	for _, rr := range r.Answer {
		rr.Header().Ttl = h.ttl
	}
	return r
}

func (h *hopServer) queries() []*dns.Msg {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*dns.Msg(nil), h.got...)
}

// TestClientBitsStayHopByHop is issue 20's third finding: a client (dig +nord +cookie, with a
// record in its additional section) asks through the DNS listener: a miss, hits, and a hit in
// the last tenth of the TTL that starts a prefetch. Every query the upstream reads, the miss's
// and the prefetch's, is delve's own: RD=1, none of the client's records, no cookie; the
// upstream refuses none, and its health is untouched.
func TestClientBitsStayHopByHop(t *testing.T) {
	t.Parallel()
	hop := &hopServer{ttl: 5}
	srv := newDotServer(t, dotOptions{}, replying(hop.reply))
	dnsAddr := listenAddr(t)
	c := newConf(t)
	c.ups = append(c.ups, srv.upstream("hop"))
	c.listen = dnsAddr
	p := serve(t, c, serveOptions{})
	cl := p.client(t)

	pack := func(name string) []byte {
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeA)
		q.RecursionDesired = false
		q.SetEdns0(1232, true)
		q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
		extra, _ := dns.NewRR("client.delve.test. 60 IN A 192.0.2.200")
		q.Extra = append([]dns.RR{extra}, q.Extra...)
		pkt, err := q.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return pkt
	}
	ask := func(pkt []byte, when string) {
		t.Helper()
		r, err := dnsExchange(dnsAddr, pkt)
		if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.RecursionDesired {
			t.Fatalf("%s: %v %v, want the answer, RD as the client sent it (0)", when, r, err)
		}
	}
	hitInLastTenth(t, 5*time.Second, func(try int, when string) { ask(pack("hop"+strconv.Itoa(try)+".delve.test."), when) }, nil)
	if _, ok := eventually(30*time.Second, func() bool { return status(t, cl).Cache.Prefetches >= 1 && len(hop.queries()) >= 2 }); !ok {
		t.Fatalf("no prefetch: %d prefetches, the upstream read %d queries", status(t, cl).Cache.Prefetches, len(hop.queries()))
	}
	got := hop.queries()
	for i, m := range got {
		if !m.RecursionDesired || len(m.Extra) != 1 || m.IsEdns0() == nil {
			t.Errorf("upstream query %d: RD %v, additional %v; want RD=1 and delve's OPT alone", i, m.RecursionDesired, m.Extra)
			continue
		}
		for _, o := range m.IsEdns0().Option {
			if o.Option() == dns.EDNS0COOKIE {
				t.Errorf("upstream query %d carries the client's cookie", i)
			}
		}
		if !m.IsEdns0().Do() {
			t.Errorf("upstream query %d lost the client's DO bit", i)
		}
	}
	st := status(t, cl)
	if !st.Upstreams[0].Healthy || st.Upstreams[0].Failures != 0 {
		t.Fatalf("healthy %v, failures %d (%q): want the upstream untouched", st.Upstreams[0].Healthy, st.Upstreams[0].Failures, st.Upstreams[0].LastError)
	}
	t.Logf("the upstream read %d queries (the miss and the prefetch), all delve's own", len(got))
}

// dropAfterReading is a server that does the handshake, reads queries for a moment and closes
// the connection without answering any.
func dropAfterReading(s *dotServer, nc net.Conn) {
	c := s.handshake(nc)
	if c == nil {
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	for {
		if _, err := c.read(); err != nil {
			return
		}
	}
}

// TestOneFailedConnectionIsOneFault is issue 20's fourth finding: a lookup of A and AAAA, whose
// two queries wait on the same connections of a server that closes every one without
// answering, is one failure of the only upstream, not two: it stays up (one is noise on a
// flapping link). The next such lookup takes it down.
func TestOneFailedConnectionIsOneFault(t *testing.T) {
	t.Parallel()
	srv := newDotServer(t, dotOptions{}, dropAfterReading)
	c := newConf(t)
	c.ups = append(c.ups, srv.upstream("dropper"))
	c.main = []string{"list type 'AAAA'"}
	p := serve(t, c, serveOptions{})
	cl := p.client(t)
	if l, _, err := lookup(cl, "one.delve.test", ""); err == nil {
		t.Fatalf("answered: %+v", l)
	}
	st := status(t, cl).Upstreams[0]
	if !st.Healthy || st.Failures != 1 {
		t.Fatalf("after one lookup of A and AAAA: healthy %v, failures %d (%d connections opened); want up, one failure", st.Healthy, st.Failures, st.ConnsOpened)
	}
	if l, _, err := lookup(cl, "two.delve.test", ""); err == nil {
		t.Fatalf("answered: %+v", l)
	}
	if st := status(t, cl).Upstreams[0]; st.Healthy {
		t.Fatalf("after two such lookups: still up, failures %d", st.Failures)
	}
}

// TestServeStaleOnServfail is issue 20's seventh finding: once the only upstream answers a name
// SERVFAIL (the vendor's authoritative servers died), its expired answer is served (RFC 8767
// §4), over the socket and through the DNS listener, with TTL 30; the SERVFAIL is not cached,
// so each lookup asks again. With serve_stale off the SERVFAIL is the answer.
func TestServeStaleOnServfail(t *testing.T) {
	t.Parallel()
	servfail := replying(func(q *dns.Msg) *dns.Msg {
		r := new(dns.Msg)
		r.SetRcode(q, dns.RcodeServerFailure)
		return r
	})
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
			if l, _, err := lookup(cl, "vendor.delve.test", "A"); err != nil || len(l.Addresses) != 1 {
				t.Fatalf("first lookup: %+v %v", l, err)
			}
			srv.set(servfail)
			p.signal(t, syscall.SIGUSR1) // new connections: the servfailing ones
			p.waitCount(t, "reconnecting every upstream", 1)
			time.Sleep(1500 * time.Millisecond) // past the 1 s TTL

			for i := range 2 {
				before := srv.queries.Load()
				l, _, err := lookup(cl, "vendor.delve.test", "A")
				if srv.queries.Load() == before {
					t.Fatalf("lookup %d did not ask the upstream: the SERVFAIL was cached", i)
				}
				if !on {
					if err != nil || l.Rcode != "SERVFAIL" || l.Stale {
						t.Fatalf("serve_stale off: %+v %v, want SERVFAIL", l, err)
					}
					continue
				}
				if err != nil || !l.Stale || l.Rcode != "NOERROR" || len(l.Answers) != 1 || l.Answers[0].TTL != 30 || l.Addresses[0] != faultAddr {
					t.Fatalf("lookup %d: %+v %v, want the expired answer, stale, TTL 30", i, l, err)
				}
			}
			if !on {
				return
			}
			q := new(dns.Msg)
			q.SetQuestion("vendor.delve.test.", dns.TypeA)
			pkt, _ := q.Pack()
			r, err := dnsExchange(dnsAddr, pkt)
			if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].Header().Ttl != 30 {
				t.Fatalf("through the DNS listener: %v %v, want the expired record with TTL 30", r, err)
			}
		})
	}
}
