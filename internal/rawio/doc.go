// Package rawio reads and writes a socket the runtime's poller already manages with raw system
// calls, for the stream sockets a lookup crosses: the upstream's TCP connection under TLS and the
// JSON-RPC socket's connections. (The DNS listener's UDP socket does the same in its own batch
// reads and writes, internal/dnsserver's batchConn.)
//
// Why: the socket is non-blocking, so read(2) and write(2) return at once; net.Conn makes them
// through syscall.Syscall all the same, which tells the scheduler the thread may block
// (entersyscall). On the first such call after every idle moment the Go runtime wakes its
// monitor thread (sysmon), which looks around for 20 us and goes back to sleep: a futex wake-up,
// a nanosleep and a futex wait, costing a daemon that waits between one client's lookups (a
// household's router) more than the read or write itself. syscall.RawSyscall skips that, which
// is right only for a call that cannot block; EAGAIN still parks the goroutine in the poller
// (syscall.RawConn), deadlines and Close work as on the net.Conn, and errors come back shaped as
// net.Conn's (*net.OpError wrapping *os.SyscallError, io.EOF at the end).
//
// Elsewhere than Linux, IO uses the connection's own methods. Measured with `perf stat -e
// syscalls:sys_enter_futex,syscalls:sys_enter_nanosleep` on the daemon during delvebench's
// one-client runs (bench/README.md, "One client at a time").
package rawio
