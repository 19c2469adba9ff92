//go:build linux

package rawio

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// IO makes the reads and writes of one connection: Init it with the connection, then call Read
// and Write in place of the connection's own.
type IO struct {
	r, w op
}

// Init readies x for c. A connection without a descriptor (net.Pipe) is read and written
// through its own methods.
func (x *IO) Init(c net.Conn) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	x.r.init(rc, syscall.SYS_READ)
	x.w.init(rc, syscall.SYS_WRITE)
}

// op is one direction's system call. Its fields carry the call's arguments and results to and
// from fn, a method value made once, so that a call allocates nothing; mu keeps two callers of
// the same direction from sharing them.
type op struct {
	mu    sync.Mutex
	rc    syscall.RawConn
	trap  uintptr
	buf   []byte
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool
}

func (o *op) init(rc syscall.RawConn, trap uintptr) {
	o.rc, o.trap = rc, trap
	o.fn = o.call
}

// call is given to the RawConn: false on EAGAIN, so that the poller waits until the socket is
// ready and calls it again.
func (o *op) call(fd uintptr) bool {
	for {
		n, _, errno := syscall.RawSyscall(o.trap, fd, uintptr(unsafe.Pointer(unsafe.SliceData(o.buf))), uintptr(len(o.buf)))
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		o.n, o.errno = int(n), errno
		return true
	}
}

// do makes one read or write of b, waiting for the socket as the poller says.
func (o *op) do(c net.Conn, b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf, o.n, o.errno = b, 0, 0
	var err error
	name := "read"
	if o.trap == syscall.SYS_READ {
		err = o.rc.Read(o.fn)
	} else {
		name = "write"
		err = o.rc.Write(o.fn)
	}
	o.buf = nil
	switch {
	case err != nil:
		// The RawConn says "raw-read" and names the local address only; say what net.Conn says.
		var oe *net.OpError
		if errors.As(err, &oe) {
			err = oe.Err
		}
	case o.errno != 0:
		err = os.NewSyscallError(name, o.errno)
	default:
		return o.n, nil
	}
	local := c.LocalAddr()
	return 0, &net.OpError{Op: name, Net: local.Network(), Source: local, Addr: c.RemoteAddr(), Err: err}
}

// Read reads into b from c, as c's Read would.
func (x *IO) Read(c net.Conn, b []byte) (int, error) {
	if x.r.rc == nil {
		return c.Read(b)
	}
	if len(b) == 0 {
		return 0, nil
	}
	n, err := x.r.do(c, b)
	if err == nil && n == 0 {
		return 0, io.EOF
	}
	return n, err
}

// Write writes all of b to c, or fails, as c's Write would.
func (x *IO) Write(c net.Conn, b []byte) (int, error) {
	if x.w.rc == nil {
		return c.Write(b)
	}
	done := 0
	for done < len(b) {
		n, err := x.w.do(c, b[done:])
		done += n
		if err != nil {
			return done, err
		}
	}
	return done, nil
}
