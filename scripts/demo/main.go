// Command demo shows delve working without the Internet (make demo): it starts a DNS-over-TLS
// server on loopback (internal/testenv's unbound, serving the zone delve.test with a throwaway
// CA), runs `delve serve` against it with a plain DNS listener, and shows, each with the command
// it runs, a lookup by the delve command, a JSON-RPC lookup on the daemon's socket, dig through
// the DNS listener and `delve status`. Then it stops everything it started, also on Ctrl-C or
// a failure, and removes its temporary directory.
//
//	go run ./scripts/demo -delve ./delve          # what make demo runs, after make build
//	go run ./scripts/demo -delve ./delve -wait    # keep both running until Ctrl-C
//
// It needs unbound and dig (the Debian packages unbound and bind9-dnsutils, which make deps
// installs as root), and nothing beyond loopback. It is a separate program so that none of
// this ends up in the delve binary.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/delvedns/delve/internal/jsonrpc"
	"github.com/delvedns/delve/internal/testenv"
)

// Bounds on the demo's waits; each step is one short command on loopback.
const (
	readyTimeout = 20 * time.Second // for the daemon's socket to answer
	stepTimeout  = 20 * time.Second // for one step's command
	stopTimeout  = 10 * time.Second // for the daemon to exit after SIGTERM
	// listenAttempts is how often a new DNS listener port is tried when the daemon cannot bind
	// the one chosen (another process took it in between).
	listenAttempts = 3
)

// upstreamName is the UCI section of the loopback upstream.
const upstreamName = "loopback"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	delve := fs.String("delve", "./delve", "the delve binary to run (make build makes ./delve)")
	wait := fs.Bool("wait", false, "after the steps, keep the server and the daemon running until Ctrl-C")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	// SIGPIPE too: with its output gone (make demo | head), the demo stops and cleans up
	// rather than dying with its directory left behind.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE)
	defer stop()
	d := &demo{out: stdout, delve: *delve}
	err := d.run(ctx, *wait)
	d.cleanup()
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "demo: interrupted; stopped everything it had started")
		return 130
	case err != nil:
		fmt.Fprintln(stderr, "demo:", err)
		if d.daemonLog != "" {
			fmt.Fprintf(stderr, "the daemon's log:\n%s", d.daemonLog)
		}
		return 1
	}
	return 0
}

type demo struct {
	out   io.Writer
	delve string

	dir       string // removed by cleanup
	ub        *testenv.Unbound
	daemon    *exec.Cmd
	done      chan struct{} // closed when daemon has been waited for
	daemonErr error         // of Wait, once done is closed
	daemonLog string        // kept by cleanup, for a failure message
	log       *os.File      // the daemon's stdout and stderr

	config, socket, listen string
}

func (d *demo) say(format string, a ...any) { fmt.Fprintf(d.out, format+"\n", a...) }

// step prints a header and the command line, then runs the command with its output on d.out.
func (d *demo) step(ctx context.Context, header string, argv ...string) error {
	d.say("\n== %s", header)
	d.say("$ %s", shellLine(argv))
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = d.out, d.out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("running %s: %w", shellLine(argv), err)
	}
	return nil
}

func (d *demo) run(ctx context.Context, wait bool) error {
	if _, err := os.Stat(d.delve); err != nil {
		return fmt.Errorf("no delve binary at %s (make build makes ./delve): %w", d.delve, err)
	}
	if _, err := testenv.LookTool("unbound"); err != nil {
		return fmt.Errorf("unbound is needed for the loopback DoT server: install the Debian package unbound (make deps does, as root): %w", err)
	}
	dig, err := testenv.LookTool("dig")
	if err != nil {
		return fmt.Errorf("dig is needed to ask the DNS listener: install the Debian package bind9-dnsutils (make deps does, as root): %w", err)
	}
	if p, err := exec.LookPath("dig"); err == nil && p == dig {
		dig = "dig" // as one would type it
	}
	// A short path: a unix socket's path has at most 107 bytes.
	if d.dir, err = os.MkdirTemp("", "delve-demo-"); err != nil {
		return fmt.Errorf("making a temporary directory: %w", err)
	}
	up := filepath.Join(d.dir, "upstream")
	if err := os.Mkdir(up, 0o755); err != nil {
		return fmt.Errorf("making a temporary directory: %w", err)
	}

	d.say("== A DNS-over-TLS server on loopback: unbound, serving the zone %s with a CA of its own", strings.TrimSuffix(testenv.Zone, "."))
	if d.ub, err = testenv.StartUnbound(up, testenv.UnboundOptions{}); err != nil {
		return err
	}
	d.say("unbound (pid %d) answers DoT on %s; its certificate names %s and is issued by the CA in %s",
		d.ub.PID(), d.ub.Addr(), d.ub.TLSName, d.ub.CAFile)
	if ctx.Err() != nil {
		return ctx.Err()
	}

	if err := d.step(ctx, "The delve command asks it directly (no daemon)",
		d.delve, fmt.Sprintf("@%s#%s", d.ub.Addr(), d.ub.TLSName), "--ca", d.ub.CAFile, strings.TrimSuffix(testenv.NameA, ".")); err != nil {
		return err
	}

	if err := d.startDaemon(ctx); err != nil {
		return err
	}
	if err := d.rpc(ctx, `{"jsonrpc":"2.0","id":1,"method":"lookup","params":{"name":"delve.test","type":"MX"}}`); err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(d.listen)
	if err := d.step(ctx, "dig asks the daemon's plain DNS listener (what dnsmasq forwards to)",
		dig, "@"+host, "-p", port, "+noall", "+answer", strings.TrimSuffix(testenv.NameMulti, ".")); err != nil {
		return err
	}
	if err := d.step(ctx, "The daemon's state, from the socket named in its UCI file",
		d.delve, "status", "--config", d.config); err != nil {
		return err
	}
	if wait {
		d.say("\nunbound and delve serve keep running: try the commands above. Ctrl-C stops both.")
		<-ctx.Done()
		return nil
	}
	d.say("")
	return ctx.Err()
}

// startDaemon writes the UCI file and starts `delve serve` on it, with a DNS listener on a free
// port (another one when that port was taken before the daemon could bind it), and waits until
// its socket answers.
func (d *demo) startDaemon(ctx context.Context) error {
	d.config = filepath.Join(d.dir, "delve")
	d.socket = filepath.Join(d.dir, "delve.sock")
	var err error
	for attempt := 1; ; attempt++ {
		port, perr := testenv.FreePort("tcp+udp")
		if perr != nil {
			return perr
		}
		d.listen = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		conf := fmt.Sprintf(`config delve 'main'
	option socket '%s'
	list listen '%s'
	option ca_file '%s'

config upstream '%s'
	option address '127.0.0.1'
	option port '%d'
	option tls_name '%s'
`, d.socket, d.listen, d.ub.CAFile, upstreamName, d.ub.Port, d.ub.TLSName)
		if err := os.WriteFile(d.config, []byte(conf), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", d.config, err)
		}
		if attempt == 1 {
			d.say("\n== delve serve, with the upstream above and a DNS listener, from this UCI file")
			d.say("$ cat %s\n%s", d.config, conf)
			d.say("$ %s serve --config %s &", d.delve, d.config)
		}
		err = d.serve(ctx)
		if err == nil {
			d.say("delve serve (pid %d) answers JSON-RPC on %s and DNS on %s", d.daemon.Process.Pid, d.socket, d.listen)
			return nil
		}
		if ctx.Err() != nil || attempt == listenAttempts || !strings.Contains(d.daemonLog, "address already in use") {
			return err
		}
	}
}

// serve starts the daemon and waits for its socket; on failure the daemon has exited and its
// log is in d.daemonLog.
func (d *demo) serve(ctx context.Context) error {
	log, err := os.Create(filepath.Join(d.dir, "delve.log"))
	if err != nil {
		return fmt.Errorf("making the daemon's log: %w", err)
	}
	d.log = log
	cmd := exec.Command(d.delve, "serve", "--config", d.config)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s serve: %w", d.delve, err)
	}
	d.daemon, d.done = cmd, make(chan struct{})
	go func() { d.daemonErr = cmd.Wait(); close(d.done) }()

	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-d.done:
			d.stopDaemon()
			return fmt.Errorf("delve serve exited at start (%v)", d.daemonErr)
		default:
		}
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := jsonrpc.Dial(dctx, d.socket)
		cancel()
		if err == nil {
			c.Close()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			d.stopDaemon()
			return fmt.Errorf("delve serve did not answer on %s within %v", d.socket, readyTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rpc sends one JSON-RPC request line on the daemon's socket and prints it and the reply
// exactly as they went over the wire.
func (d *demo) rpc(ctx context.Context, request string) error {
	d.say("\n== A JSON-RPC 2.0 lookup on the daemon's unix socket (one JSON value per line; > sent, < received)")
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	var dialer net.Dialer
	c, err := dialer.DialContext(ctx, "unix", d.socket)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", d.socket, err)
	}
	defer c.Close()
	stopWatch := context.AfterFunc(ctx, func() { c.Close() })
	defer stopWatch()
	d.say("> %s", request)
	if _, err := io.WriteString(c, request+"\n"); err != nil {
		return fmt.Errorf("writing to %s: %w", d.socket, err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading the reply on %s: %w", d.socket, err)
	}
	d.say("< %s", strings.TrimSuffix(line, "\n"))
	return nil
}

// stopDaemon ends the daemon (SIGTERM, then SIGKILL) and keeps its log.
func (d *demo) stopDaemon() {
	if d.daemon == nil {
		return
	}
	select {
	case <-d.done:
	default:
		_ = d.daemon.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(stopTimeout):
			_ = d.daemon.Process.Kill()
			<-d.done
		}
	}
	d.daemon = nil
	if d.log != nil {
		d.log.Close()
		if b, err := os.ReadFile(d.log.Name()); err == nil {
			d.daemonLog = string(b)
		}
		d.log = nil
	}
}

// cleanup stops what run started, the daemon before its upstream, and removes the directory.
func (d *demo) cleanup() {
	var stopped []string
	if d.daemon != nil {
		pid := d.daemon.Process.Pid
		d.stopDaemon()
		stopped = append(stopped, fmt.Sprintf("delve serve (pid %d)", pid))
	}
	if d.ub != nil {
		pid := d.ub.PID()
		if err := d.ub.Close(); err != nil {
			fmt.Fprintln(d.out, "demo: stopping unbound:", err)
		}
		stopped = append(stopped, fmt.Sprintf("unbound (pid %d)", pid))
	}
	if d.dir != "" {
		if err := os.RemoveAll(d.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintln(d.out, "demo: removing", d.dir+":", err)
		}
	}
	if len(stopped) > 0 {
		d.say("stopped %s; removed %s", strings.Join(stopped, " and "), d.dir)
	}
}

// shellLine is argv as one would type it into sh.
func shellLine(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

func shellQuote(s string) string {
	if s == "" || s[0] == '#' {
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./_#-", r)) {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}
