package upstream

import (
	"net"
	"sync/atomic"
	"syscall"

	"github.com/delvedns/delve/internal/rawio"
)

// quickAck wraps a TCP connection so that a read can re-arm TCP_QUICKACK: the kernel then
// acknowledges what was read at once instead of delaying the ACK (by 40 ms or more on Linux).
// That matters only where the server holds data until it is acknowledged. A server that does not
// set TCP_NODELAY (unbound's DoT port, for one) runs Nagle's algorithm (RFC 896), on Linux in
// Minshall's variant (tcp_nagle_check and tcp_minshall_check, net/ipv4/tcp_output.c): a segment
// shorter than the MSS is held while an earlier short segment it sent is unacknowledged. A reply,
// or the tail of one larger than a segment, is held only behind an earlier reply the client has
// not acknowledged yet: the second of a burst of pipelined replies waits for the ACK of the first.
// With one query in flight nothing is held: the delayed ACK of the previous reply rode on this
// query's write (or left on its timer, if the query came later). So a read re-arms quick-ACK only
// when replies other than the one being read are owed on the connection (conn.owed), and
// before the first reply, because unbound (OpenSSL) writes its TLS 1.3 session tickets before the
// first answer, which would then wait for their ACK. Linux turns quick-ACK mode off by itself,
// which is why it is set after each read that needs it; one query at a time costs no setsockopt
// and no extra pure ACK per reply. (A server that writes the length prefix and the message in two
// writes without TCP_NODELAY holds the message behind its own prefix; RFC 7766 §8 asks for one.)
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
	q.io.Init(tc)
	q.set()
	return q
}

// quickAckConn embeds the connection as a net.Conn, not a *net.TCPConn: what TLS uses of it is
// net.Conn's, and the binary then carries no wrappers of the TCP connection's other methods.
type quickAckConn struct {
	_ [0]func() // never compared: the binary then carries no equality function for it
	net.Conn
	rc syscall.RawConn
	// owner is the connection over this one, set by watchOwed before its reader starts; nil
	// during the handshake, when every read is acknowledged at once.
	owner  *conn
	rearms atomic.Int64 // setsockopt calls after reads, for tests
	// io makes the reads and writes as raw system calls (internal/rawio): a miss at one client
	// then does not wake the runtime's monitor thread twice.
	io rawio.IO
}

// watchOwed makes the quick-ACK wrapper under c's TLS, if it has one, re-arm only as c's owed
// replies say (quickAckConn.Read).
func watchOwed(nc net.Conn, c *conn) {
	if q, ok := nc.(*quickAckConn); ok {
		q.owner = c
	}
}

func (c *quickAckConn) Read(b []byte) (int, error) {
	n, err := c.io.Read(c.Conn, b)
	// Other replies owed besides the one being read, or none read yet: the server's
	// post-handshake messages, such as TLS 1.3 session tickets, come before the first.
	if o := c.owner; n > 0 && (o == nil || o.owed.Load() > 1 || o.reads.Load() == 0) {
		c.rearms.Add(1)
		c.set()
	}
	return n, err
}

func (c *quickAckConn) Write(b []byte) (int, error) { return c.io.Write(c.Conn, b) }

func (c *quickAckConn) set() {
	_ = c.rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
