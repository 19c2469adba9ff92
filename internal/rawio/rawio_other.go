//go:build !linux

package rawio

import "net"

// IO is Linux-only; elsewhere a connection is read and written through its own methods.
type IO struct{}

func (*IO) Init(net.Conn)                           {}
func (*IO) Read(c net.Conn, b []byte) (int, error)  { return c.Read(b) }
func (*IO) Write(c net.Conn, b []byte) (int, error) { return c.Write(b) }
