package testenv

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// Bounds on waiting for unbound.
const (
	// StartTimeout bounds how long StartUnbound and Start wait for the first DoT answer.
	StartTimeout = 10 * time.Second
	// StopTimeout bounds how long Stop waits after SIGTERM before it sends SIGKILL.
	StopTimeout = 5 * time.Second
	// portAttempts is how often StartUnbound picks a new port when unbound cannot bind one.
	portAttempts = 4
)

// UnboundOptions configures a test unbound. The zero value is a one-thread server on a free port.
type UnboundOptions struct {
	// Port is the DoT port (TCP) and plain DNS port (UDP) on 127.0.0.1; 0 picks a free one.
	Port int
	// Threads is unbound's num-threads; 0 means 1.
	Threads int
	// BenchNames adds BenchName(0..BenchNames-1) with A records BenchAddr(i), for benchmarks.
	// Up to MaxBenchNames.
	BenchNames int
	// ExtraLocalData are more records in presentation form ("x.delve.test. 300 IN A 192.0.2.7"),
	// each becoming a local-data: line.
	ExtraLocalData []string
	// ExtraConfig are more raw lines for the server: clause.
	ExtraConfig []string
	// Verbosity is unbound's verbosity (0 logs errors only). The log is LogFile.
	Verbosity int
	// Plain also opens a plain-DNS port (UDP and TCP) on 127.0.0.1, PlainAddr, serving the same
	// zone, for tests that compare a plain DNS listener with unbound.
	Plain bool
	// SessionTickets leaves OpenSSL's TLS session tickets on. They are off by default because
	// unbound then writes the tickets before the first answer and that write meets the client's
	// delayed ACK (~40 ms); set this only to measure that or to prove tickets are really off.
	SessionTickets bool
}

// Unbound is a running unbound serving the test zone over DoT on loopback. Its methods are safe
// for concurrent use.
type Unbound struct {
	// Dir holds every file of the instance.
	Dir string
	// Port is the DoT port on 127.0.0.1 (also plain DNS over UDP); PlainPort is the plain-DNS
	// port (UDP and TCP) when UnboundOptions.Plain is set, else 0.
	Port      int
	PlainPort int
	// TLSName is the name in the server certificate (TLSName).
	TLSName string
	// CA issued the server certificate; CAFile is its PEM file (for kdig +tls-ca=).
	CA     *CA
	CAFile string
	// Leaf is the server certificate; Leaf.Pin is its SPKI pin.
	Leaf *Leaf
	// ConfFile is unbound.conf and LogFile unbound's log (stderr goes to StderrFile).
	ConfFile   string
	LogFile    string
	StderrFile string

	opts UnboundOptions
	bin  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
}

// StartUnbound writes a configuration, a CA and a server certificate into dir, starts unbound in
// the foreground and waits (at most StartTimeout) until it answers a DoT query.
func StartUnbound(dir string, opts UnboundOptions) (*Unbound, error) {
	if opts.Threads <= 0 {
		opts.Threads = 1
	}
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("starting unbound: %d is not a port", opts.Port)
	}
	if opts.BenchNames < 0 || opts.BenchNames > MaxBenchNames {
		return nil, fmt.Errorf("starting unbound: BenchNames %d is not in 0..%d", opts.BenchNames, MaxBenchNames)
	}
	bin, err := LookTool("unbound")
	if err != nil {
		return nil, fmt.Errorf("starting unbound: %w", err)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("starting unbound: %w", err)
	}
	u := &Unbound{
		Dir:        dir,
		TLSName:    TLSName,
		CAFile:     filepath.Join(dir, "ca.pem"),
		ConfFile:   filepath.Join(dir, "unbound.conf"),
		LogFile:    filepath.Join(dir, "unbound.log"),
		StderrFile: filepath.Join(dir, "unbound.stderr"),
		opts:       opts,
		bin:        bin,
	}
	if err := u.writeFiles(); err != nil {
		return nil, fmt.Errorf("starting unbound: %w", err)
	}
	attempts := 1
	if opts.Port == 0 || opts.Plain {
		attempts = portAttempts
	}
	for i := range attempts {
		u.Port = opts.Port
		if u.Port == 0 {
			if u.Port, err = FreePort("tcp+udp"); err != nil {
				return nil, fmt.Errorf("starting unbound: %w", err)
			}
		}
		u.PlainPort = 0
		if opts.Plain {
			for u.PlainPort == 0 || u.PlainPort == u.Port {
				if u.PlainPort, err = FreePort("tcp+udp"); err != nil {
					return nil, fmt.Errorf("starting unbound: %w", err)
				}
			}
		}
		if err := os.WriteFile(u.ConfFile, []byte(u.config()), 0o644); err != nil {
			return nil, fmt.Errorf("starting unbound: %w", err)
		}
		err = u.Start()
		if err == nil {
			return u, nil
		}
		if !errors.Is(err, errBind) || i == attempts-1 {
			return nil, err
		}
	}
	return nil, err
}

var errBind = errors.New("unbound could not bind its port")

func (u *Unbound) writeFiles() error {
	ca, err := NewCA("delve test CA for unbound")
	if err != nil {
		return err
	}
	leaf, err := ca.Issue(IssueOptions{
		DNSNames: []string{TLSName},
		IPs:      []net.IP{net.IPv4(127, 0, 0, 1)},
		NotAfter: time.Now().Add(30 * 24 * time.Hour),
	})
	if err != nil {
		return err
	}
	u.CA, u.Leaf = ca, leaf
	if err := ca.WriteFile(u.CAFile); err != nil {
		return err
	}
	if err := leaf.WriteFiles(filepath.Join(u.Dir, "server.pem"), filepath.Join(u.Dir, "server.key")); err != nil {
		return err
	}
	// OPENSSL_CONF for the unbound process: unbound 1.17 has no option to turn tickets off
	// (tls-session-ticket-keys only chooses their keys), but OpenSSL applies the system_default
	// section to every SSL_CTX it makes. -SessionTicket sets SSL_OP_NO_TICKET, which for TLS 1.2
	// stops tickets; TLS 1.3 would still send stateful tickets, which NumTickets = 0 stops.
	const opensslConf = `# Written by delve's testenv for the test unbound: no TLS session tickets.
openssl_conf = delve_conf

[delve_conf]
ssl_conf = delve_ssl

[delve_ssl]
system_default = delve_tls

[delve_tls]
Options = -SessionTicket
NumTickets = 0
`
	if err := os.WriteFile(filepath.Join(u.Dir, "openssl.cnf"), []byte(opensslConf), 0o644); err != nil {
		return err
	}
	if u.opts.BenchNames > 0 {
		if err := writeBenchFile(filepath.Join(u.Dir, "bench.conf"), u.opts.BenchNames); err != nil {
			return err
		}
	}
	return nil
}

func writeBenchFile(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<16)
	fmt.Fprintln(w, "server:")
	for i := range n {
		fmt.Fprintf(w, "local-data: \"%s %d IN A %s\"\n", BenchName(i), TTL, BenchAddr(i))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (u *Unbound) config() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, "\t"+format+"\n", args...) }
	b.WriteString("# Written by delve's testenv: a loopback-only DoT server for the test zone; never recurses.\nserver:\n")
	p("verbosity: %d", u.opts.Verbosity)
	p("num-threads: %d", u.opts.Threads)
	p(`username: ""`)
	p(`chroot: ""`)
	p(`directory: "%s"`, u.Dir)
	p(`pidfile: "%s"`, filepath.Join(u.Dir, "unbound.pid"))
	p(`logfile: "%s"`, u.LogFile)
	p("use-syslog: no")
	p("log-time-ascii: yes")
	p("do-daemonize: no")
	p("do-ip6: no")
	p(`interface: 127.0.0.1@%d`, u.Port)
	if u.PlainPort != 0 {
		p(`interface: 127.0.0.1@%d`, u.PlainPort)
	}
	p("port: %d", u.Port)
	p("tls-port: %d", u.Port)
	p(`tls-service-key: "%s"`, filepath.Join(u.Dir, "server.key"))
	p(`tls-service-pem: "%s"`, filepath.Join(u.Dir, "server.pem"))
	// Without SO_REUSEPORT a second unbound (or anything else) on the port makes bind fail
	// instead of sharing the port and splitting the queries.
	p("so-reuseport: no")
	p("incoming-num-tcp: 1000")
	p("outgoing-range: 64")
	p("outgoing-num-tcp: 1")
	p("access-control: 127.0.0.0/8 allow")
	p(`module-config: "iterator"`)
	// Answers in the order of the configuration, so tests can compare them exactly.
	p("rrset-roundrobin: no")
	p("minimal-responses: yes")
	p("remote-control:")
	p("\tcontrol-enable: no")
	b.WriteString("server:\n")
	for _, line := range ZoneConfig() {
		p("%s", line)
	}
	for _, rr := range u.opts.ExtraLocalData {
		p("%s", localData(rr))
	}
	for _, line := range u.opts.ExtraConfig {
		p("%s", line)
	}
	if u.opts.BenchNames > 0 {
		p(`include: "%s"`, filepath.Join(u.Dir, "bench.conf"))
	}
	return b.String()
}

// Addr returns the DoT address, 127.0.0.1:Port.
func (u *Unbound) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(u.Port)) }

// PlainAddr returns the plain-DNS address (UDP and TCP), or "" when UnboundOptions.Plain is off.
func (u *Unbound) PlainAddr() string {
	if u.PlainPort == 0 {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(u.PlainPort))
}

// CertPool returns a pool holding only the server's CA.
func (u *Unbound) CertPool() *x509.CertPool { return u.CA.Pool() }

// ClientConfig returns a TLS client configuration that verifies the server as TLSName.
func (u *Unbound) ClientConfig() *tls.Config { return u.CA.ClientConfig(u.TLSName) }

// PID returns the process id of the running unbound, or 0 when it is stopped.
func (u *Unbound) PID() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.cmd == nil {
		return 0
	}
	return u.cmd.Process.Pid
}

// Running reports whether the unbound process is alive.
func (u *Unbound) Running() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.cmd == nil {
		return false
	}
	select {
	case <-u.done:
		return false
	default:
		return true
	}
}

// Start starts unbound again with the same files on the same port (after Stop, or after it died)
// and waits at most StartTimeout for a DoT answer. It does nothing while unbound is running.
func (u *Unbound) Start() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.cmd != nil {
		select {
		case <-u.done:
			u.cmd = nil
		default:
			return nil
		}
	}
	stderr, err := os.OpenFile(u.StderrFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("starting unbound: %w", err)
	}
	logStart := fileSize(u.LogFile)
	errStart := fileSize(u.StderrFile)
	cmd := exec.Command(u.bin, "-d", "-c", u.ConfFile)
	cmd.Dir = u.Dir
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	cmd.Env = os.Environ()
	if !u.opts.SessionTickets {
		cmd.Env = append(cmd.Env, "OPENSSL_CONF="+filepath.Join(u.Dir, "openssl.cnf"))
	}
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		stderr.Close()
		return fmt.Errorf("starting unbound: %w", err)
	}
	stderr.Close() // the child holds its own copy
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	u.cmd, u.done = cmd, done

	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	probeErr := u.waitReady(ctx, done)
	if probeErr == nil {
		return nil
	}
	u.stopLocked()
	u.cmd = nil
	out := tail(u.StderrFile, errStart) + tail(u.LogFile, logStart)
	if strings.Contains(out, "can't bind socket") || strings.Contains(out, "could not open ports") ||
		strings.Contains(out, "Address already in use") {
		return fmt.Errorf("starting unbound on port %d: %w: %s", u.Port, errBind, out)
	}
	return fmt.Errorf("starting unbound on port %d: %w; its output: %s", u.Port, probeErr, out)
}

// waitReady polls with a real DoT query until unbound answers, it exits, or ctx ends.
func (u *Unbound) waitReady(ctx context.Context, done <-chan struct{}) error {
	// An exit ends the wait at once, even mid-probe (something else may hold the port and
	// accept connections that never answer).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-done:
			cancel()
		case <-ctx.Done():
		}
	}()
	var last error
	for {
		err := u.probe(ctx)
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-done:
			return errors.New("unbound exited")
		case <-ctx.Done():
			return fmt.Errorf("no DoT answer within %v: %w", StartTimeout, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// probe asks for NameA over a fresh DoT connection; a cancelled ctx ends it at once.
func (u *Unbound) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	d := &tls.Dialer{Config: u.ClientConfig()}
	conn, err := d.DialContext(ctx, "tcp", u.Addr())
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	dc := &dns.Conn{Conn: conn}
	m := new(dns.Msg)
	m.SetQuestion(NameA, dns.TypeA)
	if err := dc.WriteMsg(m); err != nil {
		return err
	}
	r, err := dc.ReadMsg()
	if err != nil {
		return err
	}
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
		return fmt.Errorf("probe answered %s with %d records", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	return nil
}

// Stop sends SIGTERM and waits for unbound to exit (SIGKILL after StopTimeout). Stopping a
// stopped server does nothing.
func (u *Unbound) Stop() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.stopLocked()
}

func (u *Unbound) stopLocked() error {
	if u.cmd == nil {
		return nil
	}
	cmd, done := u.cmd, u.done
	u.cmd = nil
	select {
	case <-done:
		return nil // already gone
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stopping unbound: %w", err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(StopTimeout):
	}
	cmd.Process.Kill()
	select {
	case <-done:
		return fmt.Errorf("stopping unbound: it ignored SIGTERM for %v and was killed", StopTimeout)
	case <-time.After(StopTimeout):
		return fmt.Errorf("stopping unbound: pid %d survived SIGKILL for %v", cmd.Process.Pid, StopTimeout)
	}
}

// Kill kills unbound with SIGKILL, as a crash would, and waits for it to be gone.
func (u *Unbound) Kill() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.cmd == nil {
		return nil
	}
	cmd, done := u.cmd, u.done
	u.cmd = nil
	cmd.Process.Kill()
	select {
	case <-done:
		return nil
	case <-time.After(StopTimeout):
		return fmt.Errorf("killing unbound: pid %d survived SIGKILL for %v", cmd.Process.Pid, StopTimeout)
	}
}

// Close stops unbound; the files stay in Dir, which belongs to the caller.
func (u *Unbound) Close() error { return u.Stop() }

// Log returns unbound's log and stderr so far, for failure messages.
func (u *Unbound) Log() string {
	return tail(u.StderrFile, 0) + tail(u.LogFile, 0)
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// tail returns at most 4 KB of path from offset on.
func tail(path string, from int64) string {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) <= from {
		return ""
	}
	b = b[from:]
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(b)
}
