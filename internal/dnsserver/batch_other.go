//go:build !linux

package dnsserver

import (
	"net"
	"syscall"
)

// batchConn is one datagram per system call where there is no recvmmsg: delve serves routers,
// which run Linux; this keeps the package building and testable elsewhere.
type batchConn struct{ c *net.UDPConn }

func newBatchConn(c *net.UDPConn, _ int) (*batchConn, error) { return &batchConn{c}, nil }

func (b *batchConn) readBatch(ps []packet) (int, error) {
	n, _, flags, addr, err := b.c.ReadMsgUDPAddrPort(ps[0].buf, nil)
	if err != nil {
		return 0, err
	}
	ps[0].n, ps[0].addr, ps[0].trunc = n, addr, flags&syscall.MSG_TRUNC != 0
	return 1, nil
}

func (b *batchConn) writeBatch(ps []packet) (int, error) {
	if _, err := b.c.WriteToUDPAddrPort(ps[0].buf, ps[0].addr); err != nil {
		return 0, err
	}
	return 1, nil
}
