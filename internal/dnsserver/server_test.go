package dnsserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/resolver"
	"github.com/delvedns/delve/internal/testenv"
)

// countingResolver answers like answerA and counts its calls.
type countingResolver struct{ n atomic.Int64 }

func (c *countingResolver) Exchange(ctx context.Context, q *dns.Msg, _ string) (*dns.Msg, resolver.Info, error) {
	c.n.Add(1)
	return answerA(ctx, q)
}

// TestPolicy: what delve answers itself, over UDP and TCP, without asking the resolver.
func TestPolicy(t *testing.T) {
	checkGoroutines(t)
	res := &countingResolver{}
	s := listen(t, Options{Resolver: res})
	withOpcode := func(op int) *dns.Msg {
		m := question("a.example", dns.TypeA)
		m.Opcode = op
		return m
	}
	twoQ := question("a.example", dns.TypeA)
	twoQ.Question = append(twoQ.Question, dns.Question{Name: "b.example.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	noQ := question("a.example", dns.TypeA)
	noQ.Question = nil
	v1 := edns(question("a.example", dns.TypeA), 1232, true)
	v1.IsEdns0().SetVersion(1)
	chaos := question("version.bind", dns.TypeTXT)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	twoOPT := edns(question("a.example", dns.TypeA), 1232, false)
	twoOPT.Extra = append(twoOPT.Extra, twoOPT.Extra[0])

	cases := []struct {
		name    string
		q       *dns.Msg
		rcode   int
		ede     int // -1: none expected
		wantOPT bool
	}{
		{"axfr", question("example", dns.TypeAXFR), dns.RcodeRefused, -1, false},
		{"axfr-edns", edns(question("example", dns.TypeAXFR), 1232, false), dns.RcodeRefused, edeNotSupported, true},
		{"ixfr", question("example", dns.TypeIXFR), dns.RcodeRefused, -1, false},
		{"tsig-qtype", question("example", dns.TypeTSIG), dns.RcodeRefused, -1, false},
		{"notify", withOpcode(dns.OpcodeNotify), dns.RcodeNotImplemented, -1, false},
		{"update", withOpcode(dns.OpcodeUpdate), dns.RcodeNotImplemented, -1, false},
		{"status", withOpcode(dns.OpcodeStatus), dns.RcodeNotImplemented, -1, false},
		{"two-questions", twoQ, dns.RcodeFormatError, -1, false},
		{"no-question", noQ, dns.RcodeFormatError, -1, false},
		{"two-opt", twoOPT, dns.RcodeFormatError, -1, false},
		{"edns-version-1", v1, dns.RcodeBadVers, -1, true},
		{"chaos", chaos, dns.RcodeRefused, -1, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, network := range []string{"udp", "tcp"} {
				addr := udpAddr(s)
				if network == "tcp" {
					addr = tcpAddr(s)
				}
				r := exchange(t, network, addr, c.q)
				if r.Rcode != c.rcode || r.Id != c.q.Id || !r.Response {
					t.Errorf("%s: rcode %s id %d, want %s id %d:\n%v", network, dns.RcodeToString[r.Rcode], r.Id, dns.RcodeToString[c.rcode], c.q.Id, r)
				}
				if (r.IsEdns0() != nil) != c.wantOPT {
					t.Errorf("%s: OPT in reply %v, want %v", network, r.IsEdns0() != nil, c.wantOPT)
				}
				if opt := r.IsEdns0(); opt != nil && opt.Version() != 0 {
					t.Errorf("%s: OPT version %d, want 0", network, opt.Version())
				}
				if e := edeOf(r); c.ede >= 0 && (e == nil || int(e.InfoCode) != c.ede) {
					t.Errorf("%s: EDE %v, want %d", network, e, c.ede)
				}
			}
		})
	}
	if n := res.n.Load(); n != 0 {
		t.Errorf("the resolver was asked %d times", n)
	}
	// ANY and unknown types are forwarded.
	for _, typ := range []uint16{dns.TypeANY, 65000} {
		if r := exchange(t, "udp", udpAddr(s), question("a.example", typ)); r.Rcode != dns.RcodeSuccess {
			t.Errorf("type %d: %v", typ, r)
		}
	}
	if n := res.n.Load(); n != 2 {
		t.Errorf("the resolver was asked %d times, want 2", n)
	}
	if st := s.Stats(); st.Refused != 10 || st.FormErr != 14 {
		t.Errorf("stats %+v: want 10 refused, 14 formerr/notimp/badvers", st)
	}
}

// TestMalformed: packets that are not queries get no reply and are counted; the next good query
// on the same socket or connection is answered.
func TestMalformed(t *testing.T) {
	checkGoroutines(t)
	s := listen(t, Options{Resolver: fakeResolver(answerA)})
	good := question("good.example", dns.TypeA)
	wire, _ := good.Pack()
	resp := new(dns.Msg)
	resp.SetReply(good)
	respWire, _ := resp.Pack()
	bad := [][]byte{
		{0x12},                         // shorter than a header
		wire[:len(wire)-3],             // question cut short
		respWire,                       // a response, not a query
		append([]byte{}, wire[:12]...), // header says 1 question, none follows
		append(append([]byte{}, wire[:12]...), 0xC0, 0x0C, 0, 1, 0, 1), // compression loop
		bytesOf(300, 0xFF),
	}
	// Over UDP also a datagram larger than any query, which arrives cut.
	badUDP := append(bad[:len(bad):len(bad)], append(append([]byte{}, wire...), bytesOf(5000, 0)...))
	c, err := net.Dial("udp", udpAddr(s))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range badUDP {
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Write(wire); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no reply to the good query after malformed ones: %v", err)
	}
	var r dns.Msg
	if err := r.Unpack(buf[:n]); err != nil || r.Id != good.Id {
		t.Fatalf("first reply is not the good query's (err %v): %v", err, &r)
	}

	// Over TCP: framed garbage, then a good query on the same connection.
	tc, err := net.Dial("tcp", tcpAddr(s))
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	var frames []byte
	for _, p := range append(bad, wire) {
		frames = binary.BigEndian.AppendUint16(frames, uint16(len(p)))
		frames = append(frames, p...)
	}
	if _, err := tc.Write(frames); err != nil {
		t.Fatal(err)
	}
	_ = tc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if r := readFrame(t, tc); r.Id != good.Id {
		t.Fatalf("TCP: first reply is not the good query's: %v", r)
	}
	want := uint64(len(badUDP) + len(bad))
	for deadline := time.Now().Add(30 * time.Second); s.Stats().Malformed < want && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if st := s.Stats(); st.Malformed != want || st.Answered != 2 {
		t.Errorf("stats %+v: want %d malformed, 2 answered", st, want)
	}
}

func bytesOf(n int, b byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = b
	}
	return p
}

func readFrame(t *testing.T, c net.Conn) *dns.Msg {
	t.Helper()
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatalf("reading a TCP reply: %v", err)
	}
	p := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(c, p); err != nil {
		t.Fatalf("reading a TCP reply: %v", err)
	}
	m := new(dns.Msg)
	if err := m.Unpack(p); err != nil {
		t.Fatalf("unpacking a TCP reply: %v", err)
	}
	return m
}

func clientFrom(network, ip string) *dns.Client {
	var local net.Addr = &net.UDPAddr{IP: net.ParseIP(ip)}
	if network == "tcp" {
		local = &net.TCPAddr{IP: net.ParseIP(ip)}
	}
	return &dns.Client{Net: network, Timeout: 3 * time.Second, Dialer: &net.Dialer{LocalAddr: local, Timeout: time.Second}}
}

// TestRateLimit: a source over its bucket gets no UDP reply (nothing to reflect) and REFUSED
// over TCP, while another source is still served. The refill rate is so low that no refill can
// happen during the test, so the counts are exact whatever the speed of the machine.
func TestRateLimit(t *testing.T) {
	checkGoroutines(t)
	s := listen(t, Options{Resolver: fakeResolver(answerA), RateLimit: 0.0001, Burst: 3, LimitLoopback: true})
	// Eight queries at once from one source; replies are read until the server has been
	// silent for 2 s, so a slow machine cannot turn a late reply into a dropped one.
	c, err := net.Dial("udp", udpAddr(s))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 8 {
		w, _ := question(fmt.Sprintf("q%d.example", i), dns.TypeA).Pack()
		if _, err := c.Write(w); err != nil {
			t.Fatal(err)
		}
	}
	answered := 0
	buf := make([]byte, 2048)
	for {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(buf); err != nil {
			break
		}
		answered++
	}
	if answered != 3 {
		t.Errorf("%d of 8 answered from one source with a burst of 3", answered)
	}
	if _, _, err := clientFrom("udp", "127.0.0.2").Exchange(question("other.example", dns.TypeA), udpAddr(s)); err != nil {
		t.Errorf("another source is not served: %v", err)
	}
	r, _, err := clientFrom("tcp", "127.0.0.1").Exchange(edns(question("tcp.example", dns.TypeA), 1232, false), tcpAddr(s))
	if err != nil || r.Rcode != dns.RcodeRefused || edeOf(r) == nil || edeOf(r).InfoCode != edeProhibited {
		t.Errorf("over TCP beyond the limit: want REFUSED with EDE 18, got %v (%v)", r, err)
	}
	if st := s.Stats(); st.RateLimited != 6 || st.Refused != 1 {
		t.Errorf("stats %+v: want 6 rate limited, 1 refused", st)
	}
	flooder := clientFrom("udp", "127.0.0.1")

	// By default loopback (dnsmasq) is not limited.
	s2 := listen(t, Options{Resolver: fakeResolver(answerA), RateLimit: 0.0001, Burst: 1})
	for i := range 5 {
		if _, _, err := flooder.Exchange(question(fmt.Sprintf("l%d.example", i), dns.TypeA), udpAddr(s2)); err != nil {
			t.Fatalf("loopback client limited by default: %v", err)
		}
	}
}

// TestPipelinedTCP writes many queries at once on one connection; the resolver answers them in
// reverse order; every reply comes back whole, with its own ID and question, and the connection
// stays usable.
func TestPipelinedTCP(t *testing.T) {
	checkGoroutines(t)
	const n = 12
	var mu sync.Mutex
	waiting := map[string]chan struct{}{}
	arrived := make(chan string, n)
	res := fakeResolver(func(ctx context.Context, q *dns.Msg) (*dns.Msg, resolver.Info, error) {
		ch := make(chan struct{})
		mu.Lock()
		waiting[q.Question[0].Name] = ch
		mu.Unlock()
		arrived <- q.Question[0].Name
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, resolver.Info{}, ctx.Err()
		}
		return answerA(ctx, q)
	})
	s := listen(t, Options{Resolver: res})
	c, err := net.Dial("tcp", tcpAddr(s))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for round := range 2 {
		var frames []byte
		ids := map[uint16]string{}
		for i := range n {
			q := question(fmt.Sprintf("p%d-%d.example", round, i), dns.TypeA)
			ids[q.Id] = q.Question[0].Name
			w, _ := q.Pack()
			frames = binary.BigEndian.AppendUint16(frames, uint16(len(w)))
			frames = append(frames, w...)
		}
		if _, err := c.Write(frames); err != nil {
			t.Fatal(err)
		}
		// All n are in flight at once (the connection allows 16): release them last first.
		names := make([]string, 0, n)
		for range n {
			select {
			case name := <-arrived:
				names = append(names, name)
			case <-time.After(5 * time.Second):
				t.Fatalf("only %d of %d pipelined queries reached the resolver", len(names), n)
			}
		}
		for i := len(names) - 1; i >= 0; i-- {
			mu.Lock()
			close(waiting[names[i]])
			mu.Unlock()
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for range n {
			r := readFrame(t, c)
			name, ok := ids[r.Id]
			if !ok || r.Question[0].Name != name || len(r.Answer) != 1 {
				t.Fatalf("reply %d %v matches no query", r.Id, r.Question)
			}
			delete(ids, r.Id)
		}
	}
}

// TestIPv6 serves [::1] and answers dig there.
func TestIPv6(t *testing.T) {
	checkGoroutines(t)
	if c, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		c.Close()
	}
	testenv.RequireTool(t, "dig", "bind9-dnsutils")
	s := listen(t, Options{Addrs: []string{"[::1]:0", "127.0.0.1:0"}, Resolver: fakeResolver(answerA)})
	if got := s.Addrs()[0].String(); !strings.HasPrefix(got, "[::1]:") {
		t.Fatalf("first address %s", got)
	}
	for _, tcp := range []bool{false, true} {
		r, err := testenv.Dig(t.Context(), testenv.DigQuery{Server: "::1", Port: port(s), Name: "v6.example", TCP: tcp})
		if err != nil {
			t.Fatal(err)
		}
		if r.Rcode != "NOERROR" || len(r.Answer) != 1 || r.Answer[0].Data != "192.0.2.7" {
			t.Errorf("tcp=%v: %s", tcp, r.Output)
		}
	}
}

// TestListenErrors: bad, wildcard, duplicate and busy addresses are refused with the address
// named, and nothing stays bound.
func TestListenErrors(t *testing.T) {
	checkGoroutines(t)
	busy, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyAddr := busy.LocalAddr().String()
	free, err := testenv.FreePort("tcp+udp")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := fmt.Sprintf("127.0.0.1:%d", free)
	cases := []struct {
		addrs []string
		want  string
	}{
		{[]string{busyAddr}, "listen " + busyAddr + "/udp: address already in use"},
		{[]string{freeAddr, busyAddr}, "listen " + busyAddr + "/udp: address already in use"},
		{[]string{"0.0.0.0:5453"}, "listen 0.0.0.0:5453: a wildcard address is not allowed"},
		{[]string{"[::]:5453"}, "listen [::]:5453: a wildcard address is not allowed"},
		{[]string{"localhost:5453"}, "listen localhost:5453: not IP:port"},
		{[]string{"127.0.0.1"}, "listen 127.0.0.1: not IP:port"},
		{[]string{"127.0.0.1:0", "127.0.0.1:0"}, "listed twice"},
		{nil, "no address"},
	}
	for _, c := range cases {
		s, err := Listen(Options{Addrs: c.addrs, Resolver: fakeResolver(answerA)})
		if err == nil {
			_ = s.Close(t.Context())
			t.Errorf("%v: no error", c.addrs)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %q, want %q", c.addrs, err, c.want)
		}
	}
	// The free address was bound and released when the busy one failed.
	for _, network := range []string{"udp", "tcp"} {
		var c io.Closer
		var err error
		if network == "udp" {
			c, err = net.ListenPacket(network, freeAddr)
		} else {
			c, err = net.Listen(network, freeAddr)
		}
		if err != nil {
			t.Errorf("%s %s still bound after a failed Listen: %v", network, freeAddr, err)
			continue
		}
		c.Close()
	}
}

// TestCloseAnswersInFlight: queries waiting for the resolver when Close starts are still
// answered; Close returns when they are.
func TestCloseAnswersInFlight(t *testing.T) {
	checkGoroutines(t)
	const n = 4
	started := make(chan struct{}, 2*n)
	release := make(chan struct{})
	res := fakeResolver(func(ctx context.Context, q *dns.Msg) (*dns.Msg, resolver.Info, error) {
		started <- struct{}{}
		<-release
		return answerA(ctx, q)
	})
	s, err := Listen(Options{Addrs: []string{"127.0.0.1:0"}, Resolver: res})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range 2 * n {
		network, addr := "udp", udpAddr(s)
		if i%2 == 1 {
			network, addr = "tcp", tcpAddr(s)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &dns.Client{Net: network, Timeout: 10 * time.Second}
			r, _, err := c.Exchange(question(fmt.Sprintf("c%d.example", i), dns.TypeA), addr)
			if err == nil && len(r.Answer) != 1 {
				err = fmt.Errorf("reply %v", r)
			}
			errs <- err
		}()
	}
	for range 2 * n {
		<-started
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close(context.Background()) }()
	for !s.isClosed() {
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("query in flight at Close: %v", err)
		}
	}
	if _, _, err := (&dns.Client{Timeout: 300 * time.Millisecond}).Exchange(question("late.example", dns.TypeA), udpAddr(s)); err == nil {
		t.Error("answered after Close")
	}
}

// TestCloseCancels: when Close's context ends first, the queries in flight are cancelled, Close
// says so, and no goroutine is left (idle TCP connections included); so too when the listener
// sets no deadline of its own (Timeout -1, as the daemon's).
func TestCloseCancels(t *testing.T) {
	for _, timeout := range []time.Duration{time.Minute, -1} {
		t.Run(timeout.String(), func(t *testing.T) { testCloseCancels(t, timeout) })
	}
}

func testCloseCancels(t *testing.T, timeout time.Duration) {
	checkGoroutines(t)
	started := make(chan struct{}, 4)
	var cancelled atomic.Int32
	res := fakeResolver(func(ctx context.Context, q *dns.Msg) (*dns.Msg, resolver.Info, error) {
		started <- struct{}{}
		<-ctx.Done()
		cancelled.Add(1)
		return nil, resolver.Info{}, fmt.Errorf("%w: %w", resolver.ErrTimeout, ctx.Err())
	})
	s, err := Listen(Options{Addrs: []string{"127.0.0.1:0"}, Resolver: res, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	idle, err := net.Dial("tcp", tcpAddr(s))
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	for i := range 2 {
		c, err := net.Dial([]string{"udp", "tcp"}[i], s.Addrs()[i].String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		w, _ := question("stuck.example", dns.TypeA).Pack()
		if i == 1 {
			w = append(binary.BigEndian.AppendUint16(nil, uint16(len(w))), w...)
		}
		if _, err := c.Write(w); err != nil {
			t.Fatal(err)
		}
	}
	<-started
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close: %v, want the context's deadline", err)
	}
	if n := cancelled.Load(); n != 2 {
		t.Errorf("%d queries cancelled, want 2", n)
	}
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("idle TCP connection after Close: %v, want EOF", err)
	}
}

// TestTimeoutOption: the resolver gets each query with the listener's deadline, DefaultTimeout
// when Timeout is 0, and none when it is negative (the resolver applies its own).
func TestTimeoutOption(t *testing.T) {
	for _, c := range []struct {
		timeout, want time.Duration // want 0: no deadline
	}{{0, DefaultTimeout}, {1500 * time.Millisecond, 1500 * time.Millisecond}, {-1, 0}} {
		got := make(chan time.Duration, 2)
		res := fakeResolver(func(ctx context.Context, q *dns.Msg) (*dns.Msg, resolver.Info, error) {
			var left time.Duration
			if dl, ok := ctx.Deadline(); ok {
				left = time.Until(dl)
			}
			got <- left
			return answerA(ctx, q)
		})
		s := listen(t, Options{Resolver: res, Timeout: c.timeout})
		for i, network := range []string{"udp", "tcp"} {
			exchange(t, network, s.Addrs()[i].String(), question("deadline.example", dns.TypeA))
			left := <-got
			if c.want == 0 && left != 0 {
				t.Errorf("Timeout %v, %s: the resolver got a deadline %v away, want none", c.timeout, network, left)
			}
			if c.want != 0 && (left > c.want || left < c.want-time.Second) {
				t.Errorf("Timeout %v, %s: the resolver got a deadline %v away, want about %v", c.timeout, network, left, c.want)
			}
		}
	}
}

// TestEvents: OnQuery hears of every reply, with where it came from.
func TestEvents(t *testing.T) {
	checkGoroutines(t)
	rec := newRecorder(t)
	events := make(chan Event, 10)
	s := listen(t, Options{Resolver: rec.resolver(t), OnQuery: func(e Event) { events <- e }})
	exchange(t, "udp", udpAddr(s), question("ev.example", dns.TypeA))
	exchange(t, "tcp", tcpAddr(s), question("ev.example", dns.TypeA))
	exchange(t, "udp", udpAddr(s), question("ev.example", dns.TypeAXFR))
	want := []Event{
		{Name: "ev.example.", Type: "A", Rcode: "NOERROR", Upstream: "recorder", Transport: "udp"},
		{Name: "ev.example.", Type: "A", Rcode: "NOERROR", Upstream: "recorder", Cached: true, Transport: "tcp"},
		{Name: "ev.example.", Type: "AXFR", Rcode: "REFUSED", Transport: "udp"},
	}
	for i, w := range want {
		e := <-events
		if i == 0 && e.RTT <= 0 {
			t.Errorf("event %d: no RTT", i)
		}
		e.RTT = 0
		if e.Client.String() != "127.0.0.1" {
			t.Errorf("event %d: client %v", i, e.Client)
		}
		e.Client = w.Client
		if !reflect.DeepEqual(e, w) {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, e, w)
		}
	}
}

// TestConcurrentClients: many clients over UDP and TCP at once, on cached and uncached names,
// every one answered correctly (run with -race).
func TestConcurrentClients(t *testing.T) {
	checkGoroutines(t)
	rec := newRecorder(t)
	s := listen(t, Options{Resolver: rec.resolver(t)})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			network, addr := "udp", udpAddr(s)
			if g%4 == 0 {
				network, addr = "tcp", tcpAddr(s)
			}
			c := &dns.Client{Net: network, Timeout: 5 * time.Second}
			for i := range 100 {
				q := question(fmt.Sprintf("n%d.example", (g*7+i)%40), dns.TypeA)
				if i%3 == 0 {
					q = edns(q, 1232, i%2 == 0)
				}
				r, _, err := c.Exchange(q, addr)
				if err == nil && (r.Id != q.Id || len(r.Answer) != 1 || !strings.EqualFold(r.Answer[0].Header().Name, q.Question[0].Name)) {
					err = fmt.Errorf("query %v got %v", q.Question[0], r)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := s.Stats(); st.Answered != 1600 || st.Cached == 0 {
		t.Errorf("stats %+v: want 1600 answered, some cached", st)
	}
}
