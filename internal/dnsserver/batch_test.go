package dnsserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"
)

// TestBatchConn: more datagrams than a batch from several clients are each read once with their
// source and payload, an oversize one is flagged truncated, and the replies sent in batches reach
// each its own client, past destinations the kernel refuses (port 0).
func TestBatchConn(t *testing.T) {
	for _, network := range []string{"udp4", "udp6"} {
		t.Run(network, func(t *testing.T) {
			ip := netip.MustParseAddr("127.0.0.1")
			if network == "udp6" {
				ip = netip.IPv6Loopback()
			}
			srv, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
			if err != nil {
				if network == "udp6" {
					t.Skipf("no IPv6 loopback: %v", err)
				}
				t.Fatal(err)
			}
			defer srv.Close()
			bc, err := newBatchConn(srv, udpBatch)
			if err != nil {
				t.Fatal(err)
			}
			srvAddr := srv.LocalAddr().(*net.UDPAddr).AddrPort()

			const clients, each = 3, 12 // 36 datagrams: more than two batches
			cs := make([]*net.UDPConn, clients)
			want := map[string]netip.AddrPort{} // payload -> source
			for i := range cs {
				if cs[i], err = net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0))); err != nil {
					t.Fatal(err)
				}
				defer cs[i].Close()
				from := cs[i].LocalAddr().(*net.UDPAddr).AddrPort()
				if from.Addr() != ip {
					t.Fatalf("client bound to %v, want %v", from, ip)
				}
				for j := range each {
					msg := fmt.Sprintf("client %d query %d", i, j)
					want[msg] = from
					if _, err := cs[i].WriteToUDPAddrPort([]byte(msg), srvAddr); err != nil {
						t.Fatal(err)
					}
				}
			}
			big := make([]byte, udpBufSize+100)
			if _, err := cs[0].WriteToUDPAddrPort(big, srvAddr); err != nil {
				t.Fatal(err)
			}

			if err := srv.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
				t.Fatal(err)
			}
			in := make([]packet, udpBatch)
			for i := range in {
				in[i].buf = make([]byte, udpBufSize)
			}
			var replies []packet
			total, truncated, largest := len(want)+1, 0, 0
			for range total { // each call returns at least one
				if len(replies)+truncated == total {
					break
				}
				n, err := bc.readBatch(in)
				if err != nil {
					t.Fatalf("after %d datagrams: %v", len(replies)+truncated, err)
				}
				largest = max(largest, n)
				for _, p := range in[:n] {
					if p.trunc {
						truncated++
						if p.addr != cs[0].LocalAddr().(*net.UDPAddr).AddrPort() {
							t.Errorf("truncated datagram from %v, want client 0", p.addr)
						}
						continue
					}
					msg := string(p.buf[:p.n])
					from, ok := want[msg]
					switch {
					case !ok:
						t.Errorf("unexpected datagram %q from %v (a duplicate?)", msg, p.addr)
					case p.addr != from:
						t.Errorf("%q from %v, want %v", msg, p.addr, from)
					}
					delete(want, msg)
					replies = append(replies, packet{buf: []byte("reply to " + msg), addr: p.addr})
				}
			}
			if len(want) != 0 || truncated != 1 {
				t.Fatalf("%d datagrams not read, %d truncated (want 1)", len(want), truncated)
			}
			// recvmmsg, when all were waiting: anything less than a full batch is one call per
			// datagram again.
			if runtime.GOOS == "linux" && largest != udpBatch {
				t.Errorf("at most %d datagrams per read, want %d", largest, udpBatch)
			}

			// Refused destinations first (where the batch starts) and amid the others.
			refused := packet{buf: []byte("to nobody"), addr: netip.AddrPortFrom(ip, 0)}
			replies = append([]packet{refused}, replies...)
			replies = append(replies[:20], append([]packet{refused}, replies[20:]...)...)
			s := &Server{log: slog.New(slog.DiscardHandler)}
			s.sendAll(bc, replies)

			for i, c := range cs {
				if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
					t.Fatal(err)
				}
				mine := map[string]bool{}
				for j := range each {
					mine[fmt.Sprintf("reply to client %d query %d", i, j)] = true
				}
				buf := make([]byte, 512)
				for j := range each {
					n, from, err := c.ReadFromUDPAddrPort(buf)
					if err != nil {
						t.Fatalf("client %d, reply %d: %v", i, j, err)
					}
					if got := string(buf[:n]); !mine[got] {
						t.Errorf("client %d got %q, not one of its replies (or twice)", i, got)
					} else {
						delete(mine, got)
					}
					if from != srvAddr {
						t.Errorf("client %d: reply from %v, want %v", i, from, srvAddr)
					}
				}
			}

			if err := srv.SetReadDeadline(time.Now()); err != nil {
				t.Fatal(err)
			}
			if _, err := bc.readBatch(in); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("read past the deadline: %v, want %v", err, os.ErrDeadlineExceeded)
			}
			_ = srv.Close()
			if _, err := bc.readBatch(in); !errors.Is(err, net.ErrClosed) {
				t.Errorf("read of a closed socket: %v, want %v", err, net.ErrClosed)
			}
			if n, err := bc.writeBatch(replies[1:]); n != 0 || !errors.Is(err, net.ErrClosed) {
				t.Errorf("write to a closed socket: %d, %v, want 0, %v", n, err, net.ErrClosed)
			}
		})
	}
}
