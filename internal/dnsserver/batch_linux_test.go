package dnsserver

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/miekg/dns"
)

// TestMmsghdrLayout: the Go struct is the kernel's struct mmsghdr on this GOARCH.
func TestMmsghdrLayout(t *testing.T) {
	want := uintptr(32)
	if unsafe.Sizeof(uintptr(0)) == 8 {
		want = 64
	}
	if got := unsafe.Sizeof(mmsghdr{}); got != want {
		t.Errorf("sizeof(mmsghdr) = %d, want %d", got, want)
	}
	if got := unsafe.Offsetof(mmsghdr{}.n); got != unsafe.Sizeof(syscall.Msghdr{}) {
		t.Errorf("msg_len at %d, want %d (after struct msghdr)", got, unsafe.Sizeof(syscall.Msghdr{}))
	}
}

// TestSockaddr: an address goes into a raw sockaddr of the socket's family and comes out as
// the net package gives it: IPv4 as IPv4 on an IPv4 socket, IPv4-mapped on an IPv6 one, a
// link-local address with its interface's name.
func TestSockaddr(t *testing.T) {
	type sockaddrCase struct {
		v6       bool
		in, want string
	}
	cases := []sockaddrCase{
		{false, "127.0.0.1:53", "127.0.0.1:53"},
		{false, "[::ffff:192.0.2.1]:65535", "192.0.2.1:65535"},
		{true, "[::1]:5353", "[::1]:5353"},
		{true, "192.0.2.1:258", "[::ffff:192.0.2.1]:258"},
		{true, "[::ffff:192.0.2.1]:1", "[::ffff:192.0.2.1]:1"},
		{true, "[fe80::1%4000000]:53", "[fe80::1%4000000]:53"}, // no such interface
	}
	// qemu-mips does not translate the kernel's netlink answers: there the zone cases go.
	if lo, err := loopback(); err != nil {
		t.Logf("no interface names to test zones with: %v", err)
	} else {
		// A zone to send to is one a packet came with.
		if got := zoneName(uint32(lo.Index)); got != lo.Name {
			t.Errorf("interface %d named %q, want %q", lo.Index, got, lo.Name)
		}
		cases = append(cases,
			sockaddrCase{true, "[fe80::1%" + lo.Name + "]:53", "[fe80::1%" + lo.Name + "]:53"},
			sockaddrCase{true, "[fe80::1%" + strconv.Itoa(lo.Index) + "]:53", "[fe80::1%" + lo.Name + "]:53"})
	}
	for _, c := range cases {
		b := &batchConn{v6: c.v6}
		var sa syscall.RawSockaddrInet6
		n, err := b.putSockaddr(&sa, netip.MustParseAddrPort(c.in))
		if err != nil {
			t.Errorf("%s (v6 %v): %v", c.in, c.v6, err)
			continue
		}
		if got := addrPort(&sa, n); got != netip.MustParseAddrPort(c.want) {
			t.Errorf("%s (v6 %v): %v, want %s", c.in, c.v6, got, c.want)
		}
	}
	// Ports are big-endian in the raw struct, whatever the CPU.
	var sa syscall.RawSockaddrInet6
	if _, err := (&batchConn{}).putSockaddr(&sa, netip.MustParseAddrPort("127.0.0.1:258")); err != nil {
		t.Fatal(err)
	}
	if p := (*syscall.RawSockaddrInet4)(unsafe.Pointer(&sa)).Port; *(*[2]byte)(unsafe.Pointer(&p)) != [2]byte{1, 2} {
		t.Errorf("port 258 stored as % x", *(*[2]byte)(unsafe.Pointer(&p)))
	}
	if _, err := (&batchConn{}).putSockaddr(&sa, netip.MustParseAddrPort("[::1]:53")); err == nil {
		t.Error("an IPv6 address went into an IPv4 socket's sockaddr")
	}
	if got := addrPort(&sa, 2); got.IsValid() {
		t.Errorf("a short sockaddr read as %v", got)
	}
}

func loopback() (*net.Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for i := range ifs {
		if ifs[i].Flags&net.FlagLoopback != 0 {
			return &ifs[i], nil
		}
	}
	return nil, errors.New("none is a loopback interface")
}

// TestSourcePortZero: a query from source port 0, which the kernel will not send a reply to,
// costs neither the listener nor the clients after it.
func TestSourcePortZero(t *testing.T) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_UDP)
	if err != nil {
		t.Skipf("no raw socket to send from port 0 (needs CAP_NET_RAW): %v", err)
	}
	defer syscall.Close(fd)
	s := listen(t, Options{Resolver: fakeResolver(answerA)})
	// Answered at once by delve (REFUSED), so in the batch that sendmmsg sends.
	q := question("version.bind", dns.TypeTXT)
	q.Question[0].Qclass = dns.ClassCHAOS
	payload, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	// A UDP header of our own, checksum 0 (none, for IPv4).
	pkt := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(pkt[2:], uint16(port(s)))
	binary.BigEndian.PutUint16(pkt[4:], uint16(8+len(payload)))
	pkt = append(pkt, payload...)
	for range 3 {
		if err := syscall.Sendto(fd, pkt, 0, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Fatal(err)
		}
	}
	c := &dns.Client{Timeout: 2 * time.Second}
	for range 3 {
		r, _, err := c.Exchange(q, udpAddr(s))
		if err != nil {
			t.Fatalf("after queries from port 0: %v", err)
		}
		if r.Rcode != dns.RcodeRefused {
			t.Fatalf("rcode %s, want REFUSED", dns.RcodeToString[r.Rcode])
		}
	}
	if got := s.Stats().UDPQueries; got != 6 {
		t.Errorf("%d UDP queries counted, want 6", got)
	}
}
