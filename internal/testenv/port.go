package testenv

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// MinPort is the lowest port FreePort hands out: low ports belong to real services (5353 is mDNS).
const MinPort = 10001

// FreePort returns a port that was free on loopback a moment ago, for a server that must be told
// its port before it binds (a child process such as unbound, or a configuration file). Where a
// server can bind port 0 and report the port, prefer that: nothing can take the port in between.
//
// The port is drawn at random from outside the kernel's ephemeral range
// (net.ipv4.ip_local_port_range), so that no port-0 bind and no outgoing connection of another
// test can be given it between this check and the caller's bind; only another caller of FreePort
// could pick the same port at the same moment, so callers that bind through a child process
// should still retry when the bind fails. network is "tcp", "udp" (127.0.0.1), "tcp6", "udp6"
// (::1), "tcp4", "udp4", or "tcp+udp" for a port free for both on 127.0.0.1, as a DNS server
// needs.
func FreePort(network string) (int, error) {
	host := "127.0.0.1"
	switch network {
	case "tcp6", "udp6":
		host = "::1"
	case "tcp", "tcp4", "udp", "udp4", "tcp+udp":
	default:
		return 0, fmt.Errorf("finding a free port: unknown network %q", network)
	}
	lo, hi := portRange()
	var last error
	for range 200 {
		port := lo + rand.IntN(hi-lo+1)
		err := bindable(network, net.JoinHostPort(host, strconv.Itoa(port)))
		if err == nil {
			return port, nil
		}
		last = err
		if !errors.Is(err, errInUse) {
			return 0, fmt.Errorf("finding a free port: %w", err)
		}
	}
	return 0, fmt.Errorf("finding a free port in %d-%d: 200 ports tried, the last: %w", lo, hi, last)
}

var errInUse = errors.New("port in use")

// portRange is the range FreePort draws from: the ports from MinPort below the kernel's
// ephemeral range, or those above it when that leaves too few.
func portRange() (lo, hi int) {
	elo, ehi := 32768, 60999 // Linux's default
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			a, err1 := strconv.Atoi(f[0])
			z, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil && a <= z {
				elo, ehi = a, z
			}
		}
	}
	const enough = 2000
	switch {
	case elo-1-MinPort >= enough:
		return MinPort, elo - 1
	case 65535-ehi-1 >= enough:
		return max(ehi+1, MinPort), 65535
	default:
		// No room outside the ephemeral range: draw from all of it above MinPort.
		return MinPort, 65535
	}
}

// bindable binds addr for network ("tcp+udp": both) and lets go of it again.
func bindable(network, addr string) error {
	inUse := func(err error) error {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("%w: %w", errInUse, err)
		}
		return err
	}
	if network != "udp" && network != "udp4" && network != "udp6" {
		n := network
		if n == "tcp+udp" {
			n = "tcp"
		}
		l, err := net.Listen(n, addr)
		if err != nil {
			return inUse(err)
		}
		defer l.Close()
	}
	if strings.HasPrefix(network, "udp") || network == "tcp+udp" {
		n := network
		if n == "tcp+udp" {
			n = "udp"
		}
		c, err := net.ListenPacket(n, addr)
		if err != nil {
			return inUse(err)
		}
		defer c.Close()
	}
	return nil
}

// DeadPort returns a TCP port on 127.0.0.1 where nothing listens, and nothing can while the test
// runs: a socket bound to it, never listening and without SO_REUSEADDR, holds it, so a connect is
// refused at once and no other bind can take the port. (A port found free and let go could be
// taken by another test before the connect.)
func DeadPort(t testing.TB) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatalf("holding a dead port: %v", err)
	}
	syscall.CloseOnExec(fd)
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("holding a dead port: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("holding a dead port: %v", err)
	}
	return sa.(*syscall.SockaddrInet4).Port
}
