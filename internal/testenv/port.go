package testenv

import (
	"errors"
	"fmt"
	"net"
)

// MinPort is the lowest port FreePort hands out: low ports belong to real services (5353 is mDNS).
const MinPort = 10001

// FreePort returns a port that was free on loopback a moment ago: it binds port 0, notes the
// port and closes the socket, so a race with another process is possible and callers that bind
// through a child process should retry. network is "tcp", "udp" (127.0.0.1), "tcp6", "udp6"
// (::1), "tcp4", "udp4", or "tcp+udp" for a port free for both on 127.0.0.1, as a DNS server
// needs.
func FreePort(network string) (int, error) {
	for range 20 {
		port, err := freePortOnce(network)
		if err != nil {
			return 0, err
		}
		if port >= MinPort {
			return port, nil
		}
	}
	return 0, errors.New("finding a free port: the kernel keeps giving ports below 10001")
}

func freePortOnce(network string) (int, error) {
	host := "127.0.0.1"
	switch network {
	case "tcp6", "udp6":
		host = "::1"
	case "tcp", "tcp4", "udp", "udp4", "tcp+udp":
	default:
		return 0, fmt.Errorf("finding a free port: unknown network %q", network)
	}
	addr := net.JoinHostPort(host, "0")
	switch network {
	case "udp", "udp4", "udp6":
		c, err := net.ListenPacket(network, addr)
		if err != nil {
			return 0, fmt.Errorf("finding a free port: %w", err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	case "tcp+udp":
		for range 20 {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return 0, fmt.Errorf("finding a free port: %w", err)
			}
			port := l.Addr().(*net.TCPAddr).Port
			c, err := net.ListenPacket("udp", net.JoinHostPort(host, fmt.Sprint(port)))
			l.Close()
			if err == nil {
				c.Close()
				return port, nil
			}
		}
		return 0, errors.New("finding a free port: no port free for both TCP and UDP")
	default:
		l, err := net.Listen(network, addr)
		if err != nil {
			return 0, fmt.Errorf("finding a free port: %w", err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port, nil
	}
}
