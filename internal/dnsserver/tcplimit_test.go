package dnsserver

import (
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/testenv"
)

// TestTCPPerClientCap (issue 20, finding 8): one address opening 100 TCP connections holds
// MaxTCPPerClient (16) of them, the other 84 are closed at accept, and another client's TCP query
// is answered; when one of the 16 closes, the same address gets a slot again. Every connection is
// asked a query and read to its end, so the counts are exact however slow the machine.
func TestTCPPerClientCap(t *testing.T) {
	checkGoroutines(t)
	// A long idle time, so that no held connection times out while the others are opened.
	s := listen(t, Options{Resolver: fakeResolver(answerA), TCPIdle: time.Minute})
	held, refused := testenv.HoldTCP(t, "127.0.0.2", tcpAddr(s), 100)
	if len(held) != DefaultMaxTCPPerClient || refused != 100-DefaultMaxTCPPerClient {
		t.Fatalf("one address: %d connections served, %d closed; want %d and %d", len(held), refused, DefaultMaxTCPPerClient, 100-DefaultMaxTCPPerClient)
	}
	if st := s.Stats(); st.TCPConns != DefaultMaxTCPPerClient || st.TCPRefused != uint64(refused) {
		t.Fatalf("stats: %d connections, %d refused; want %d and %d", st.TCPConns, st.TCPRefused, DefaultMaxTCPPerClient, refused)
	}
	// Another client, as dnsmasq retrying a truncated answer over TCP, is answered.
	r, _, err := clientFrom("tcp", "127.0.0.3").Exchange(question("other.example.", dns.TypeA), tcpAddr(s))
	if err != nil || len(r.Answer) != 1 {
		t.Fatalf("another client's TCP query: %v %v", r, err)
	}
	// The hog's slots are its own: one closed, and it may open one more, not two.
	held[0].Close()
	for i := 0; s.Stats().TCPConns >= DefaultMaxTCPPerClient; i++ {
		if i == 1000 {
			t.Fatal("the server did not notice a closed connection in 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if again, _ := testenv.HoldTCP(t, "127.0.0.2", tcpAddr(s), 2); len(again) != 1 {
		t.Fatalf("after one of its connections closed, %d of 2 new ones were served; want 1", len(again))
	}
}

// TestTCPTotalCap: MaxTCPConns still bounds all clients together.
func TestTCPTotalCap(t *testing.T) {
	checkGoroutines(t)
	s := listen(t, Options{Resolver: fakeResolver(answerA), TCPIdle: time.Minute, MaxTCPConns: 4, MaxTCPPerClient: 3})
	served := map[string]int{}
	for _, c := range []struct {
		ip string
		n  int
	}{{"127.0.0.2", 4}, {"127.0.0.3", 2}, {"127.0.0.4", 1}} {
		held, _ := testenv.HoldTCP(t, c.ip, tcpAddr(s), c.n)
		served[c.ip] = len(held)
	}
	if served["127.0.0.2"] != 3 || served["127.0.0.3"] != 1 || served["127.0.0.4"] != 0 || s.Stats().TCPRefused != 3 {
		t.Fatalf("served %v, %d refused; want 3 for .2, 1 for .3, none for .4, 3 refused", served, s.Stats().TCPRefused)
	}
}

func TestTCPClient(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"192.0.2.1", "192.0.2.1"},
		{"::1", "::"},
		{"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::"},
		{"2001:db8:1:2::1", "2001:db8:1:2::"},
		{"fe80::1%eth0", "fe80::"},
	} {
		if got := tcpClient(netip.MustParseAddr(c.in)); got != netip.MustParseAddr(c.want) {
			t.Errorf("tcpClient(%s) = %s, want %s", c.in, got, c.want)
		}
	}
}
