package upstream

import (
	"net"
	"syscall"
)

// quickAck wraps a TCP connection so that every read re-arms TCP_QUICKACK: the kernel then
// acknowledges at once instead of delaying the ACK by up to 40 ms. A server that does not set
// TCP_NODELAY (unbound's DoT port, for one) holds its second reply of a pipelined burst until the
// first is acknowledged (Nagle), so a delayed ACK would add 40 ms to every burst of two or more
// queries. Linux turns quick-ACK mode off by itself, which is why it is set after each read.
func quickAck(nc net.Conn) net.Conn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nc
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nc
	}
	q := &quickAckConn{Conn: tc, rc: rc}
	q.set()
	return q
}

// quickAckConn embeds the connection as a net.Conn, not a *net.TCPConn: what TLS uses of it is
// net.Conn's, and the binary then carries no wrappers of the TCP connection's other methods.
type quickAckConn struct {
	net.Conn
	rc syscall.RawConn
}

func (c *quickAckConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.set()
	}
	return n, err
}

func (c *quickAckConn) set() {
	_ = c.rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
