//go:build linux

package dnsserver

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"unsafe"
)

// mmsghdr is the kernel's struct mmsghdr: Go pads it as C does (32 bytes on 32-bit, 64 on
// 64-bit, which a test checks).
type mmsghdr struct {
	hdr syscall.Msghdr
	n   uint32
}

// batchConn reads and writes a UDP socket a batch of datagrams per system call, through
// recvmmsg(2) and sendmmsg(2) on the socket's descriptor: a page of code instead of x/net's ipv4
// and ipv6 PacketConn, which cost the armv7 binary 36 KB.
type batchConn struct {
	rc   syscall.RawConn
	v6   bool
	hdrs []mmsghdr
	iovs []syscall.Iovec
	// The larger of a UDP socket's two kinds of name. Its uint32 fields align it as they need
	// (RawSockaddrAny only to 2 bytes: MIPS faults on them).
	names []syscall.RawSockaddrInet6

	// The system call's number, length and results live here so that the function rc.Read and
	// rc.Write call is made once, not as a closure (an allocation) per batch.
	trap  uintptr
	vlen  int
	n     int
	errno syscall.Errno
	call  func(fd uintptr) bool
}

func newBatchConn(c *net.UDPConn, size int) (*batchConn, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("getting the socket's descriptor: %w", err)
	}
	b := &batchConn{
		rc:    rc,
		hdrs:  make([]mmsghdr, size),
		iovs:  make([]syscall.Iovec, size),
		names: make([]syscall.RawSockaddrInet6, size),
	}
	// An IPv6 socket takes and gives sockaddr_in6 even for an IPv4 peer (IPv4-mapped).
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		b.v6 = true
	}
	b.call = b.run
	return b, nil
}

// run is the function given to rc.Read and rc.Write: false on EAGAIN, so that the runtime's
// poller waits until the socket is ready and calls it again.
//
// The socket is non-blocking (the runtime's poller made it so), so recvmmsg and sendmmsg return
// at once, and run makes them as raw system calls: syscall.Syscall6 would tell the scheduler
// that the thread may block (entersyscall), and on the first such call after an idle moment the
// runtime wakes its monitor thread (sysmon), which then sleeps again: with one client asking at
// a time, a futex wake-up, a nanosleep and a futex wait per cached answer. Measured with
// `perf stat -e syscalls:sys_enter_futex,syscalls:sys_enter_nanosleep` on the daemon during
// delvebench's one-client UDP hit run at GOMAXPROCS=1: 4,988 futex and 4,464 nanosleep calls in
// 2 s before, 18 and 40 after (bench/README.md, "One client at a time").
func (b *batchConn) run(fd uintptr) bool {
	for {
		n, _, errno := syscall.RawSyscall6(b.trap, fd, uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(b.vlen), 0, 0, 0)
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		b.n, b.errno = int(n), errno
		return true
	}
}

// do makes the system call trap on the first vlen headers.
func (b *batchConn) do(write bool, trap uintptr, vlen int) (int, error) {
	b.trap, b.vlen = trap, vlen
	b.n, b.errno = 0, 0
	var err error
	if write {
		err = b.rc.Write(b.call)
	} else {
		err = b.rc.Read(b.call)
	}
	if err != nil {
		return 0, err // closed, or past the deadline Close sets
	}
	if b.errno != 0 {
		return 0, b.errno
	}
	return b.n, nil
}

// readBatch reads up to len(ps) datagrams, at least one, into the buffers of ps, waiting for
// the first.
func (b *batchConn) readBatch(ps []packet) (int, error) {
	ps = ps[:min(len(ps), len(b.hdrs))]
	for i := range ps {
		b.iovs[i].Base = unsafe.SliceData(ps[i].buf)
		b.iovs[i].SetLen(len(ps[i].buf))
		// The kernel overwrites the name's length and the flags: set them again each time.
		b.hdrs[i].hdr = syscall.Msghdr{
			Name:    (*byte)(unsafe.Pointer(&b.names[i])),
			Namelen: syscall.SizeofSockaddrInet6,
			Iov:     &b.iovs[i],
			Iovlen:  1,
		}
	}
	n, err := b.do(false, syscall.SYS_RECVMMSG, len(ps))
	if err != nil {
		return 0, fmt.Errorf("receiving datagrams: %w", err)
	}
	for i := range n {
		h := &b.hdrs[i]
		ps[i].n = int(h.n)
		ps[i].trunc = h.hdr.Flags&syscall.MSG_TRUNC != 0
		ps[i].addr = addrPort(&b.names[i], h.hdr.Namelen)
	}
	return n, nil
}

// writeBatch sends each datagram of ps to its address. It returns how many it sent; on an error
// ps[n] is the one that failed (the kernel reports an error only when it sent none).
func (b *batchConn) writeBatch(ps []packet) (int, error) {
	ps = ps[:min(len(ps), len(b.hdrs))]
	for i := range ps {
		namelen, err := b.putSockaddr(&b.names[i], ps[i].addr)
		if err != nil {
			if i == 0 {
				return 0, fmt.Errorf("sending a datagram: %w", err)
			}
			ps = ps[:i] // the ones before it go; the next call reports it
			break
		}
		b.iovs[i].Base = unsafe.SliceData(ps[i].buf)
		b.iovs[i].SetLen(len(ps[i].buf))
		b.hdrs[i].hdr = syscall.Msghdr{
			Name:    (*byte)(unsafe.Pointer(&b.names[i])),
			Namelen: namelen,
			Iov:     &b.iovs[i],
			Iovlen:  1,
		}
	}
	n, err := b.do(true, sysSENDMMSG, len(ps))
	if err != nil {
		return 0, fmt.Errorf("sending datagrams: %w", err)
	}
	return n, nil
}

// putSockaddr writes ap as the socket's family of address into sa.
func (b *batchConn) putSockaddr(sa *syscall.RawSockaddrInet6, ap netip.AddrPort) (uint32, error) {
	a := ap.Addr()
	if b.v6 {
		*sa = syscall.RawSockaddrInet6{Family: syscall.AF_INET6, Addr: a.As16()}
		if z := a.Zone(); z != "" {
			sa.Scope_id = zoneIndex(z)
		}
		putRawPort(&sa.Port, ap.Port())
		return syscall.SizeofSockaddrInet6, nil
	}
	if a = a.Unmap(); !a.Is4() {
		return 0, fmt.Errorf("%v is not an IPv4 address", ap)
	}
	p := (*syscall.RawSockaddrInet4)(unsafe.Pointer(sa))
	*p = syscall.RawSockaddrInet4{Family: syscall.AF_INET, Addr: a.As4()}
	putRawPort(&p.Port, ap.Port())
	return syscall.SizeofSockaddrInet4, nil
}

// addrPort is the address in sa as the net package gives it for the same socket (for
// *net.UDPAddr.AddrPort and ReadFromUDPAddrPort): an IPv4-mapped peer of an IPv6 socket stays
// mapped, a link-local one has its interface's name as zone. It is the zero AddrPort for what is
// not an IP address.
func addrPort(sa *syscall.RawSockaddrInet6, namelen uint32) netip.AddrPort {
	switch sa.Family {
	case syscall.AF_INET:
		if namelen < syscall.SizeofSockaddrInet4 {
			break
		}
		p := (*syscall.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(p.Addr), rawPort(&p.Port))
	case syscall.AF_INET6:
		if namelen < syscall.SizeofSockaddrInet6 {
			break
		}
		a := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			a = a.WithZone(zoneName(sa.Scope_id))
		}
		return netip.AddrPortFrom(a, rawPort(&sa.Port))
	}
	return netip.AddrPort{}
}

// The port of a raw sockaddr is in network byte order, whatever the CPU's.
func rawPort(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}

func putRawPort(p *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}

// zones names the interfaces of link-local peers as the net package does, asking the kernel
// once per interface rather than per packet. They are the few a router's packets arrive on.
var zones struct {
	sync.Mutex
	names map[uint32]string
}

// zoneName is the name of interface i, or i in decimal when it has none.
func zoneName(i uint32) string {
	zones.Lock()
	name, ok := zones.names[i]
	zones.Unlock()
	if ok {
		return name
	}
	name = strconv.FormatUint(uint64(i), 10)
	if ifi, err := net.InterfaceByIndex(int(i)); err == nil {
		name = ifi.Name
	}
	zones.Lock()
	if zones.names == nil {
		zones.names = map[uint32]string{}
	}
	zones.names[i] = name
	zones.Unlock()
	return name
}

// zoneIndex reads back a zone that zoneName gave: the replies sendAll sends go to the sources
// addrPort read.
func zoneIndex(z string) uint32 {
	zones.Lock()
	defer zones.Unlock()
	for i, name := range zones.names {
		if name == z {
			return i
		}
	}
	i, _ := strconv.ParseUint(z, 10, 32)
	return uint32(i)
}
