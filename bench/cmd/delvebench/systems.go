package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/jsonrpc"
	"github.com/delvedns/delve/internal/testenv"
)

// threadsLine is the UCI line of main.threads, or none when it is unset.
func threadsLine(threads string) string {
	if threads == "" {
		return ""
	}
	return "\toption threads '" + threads + "'\n"
}

// startTimeout bounds how long a system under test may take to answer its first query.
const startTimeout = 10 * time.Second

// env is what every system shares: the upstream and the tools.
type env struct {
	dir      string // scratch directory of the run
	upAddr   string // 127.0.0.1
	upPort   int    // DoT port of the upstream (or of the counting proxy in front of it)
	caFile   string
	delve    string // the delve binary
	delveEnv []string
	// cacheSize is delve's cache_size; 0 = 1024, the default.
	cacheSize int
	unbound   string
	stubby    string
	// threads is delve's main.threads; empty: unset (1, the default).
	threads string
	// listener says the delve under test serves plain DNS (found by the first start): later
	// starts wait for it as they wait for the socket.
	listener bool
}

// system is one running DNS-over-TLS client under test.
type system struct {
	name    string // "delve", "stubby", "unbound"
	p       *proc
	dnsAddr string // plain DNS (UDP) address for dnsperf; empty when there is none
	sock    string // delve's JSON-RPC socket
}

func (s *system) stop() { s.p.stop() }

// freePort hands out ports for the systems; each start takes a fresh one so that a slow exit of
// the previous instance cannot collide.
func freePort() (int, error) { return testenv.FreePort("tcp+udp") }

// peerGrace is how long stubby and unbound get to exit after SIGTERM: they take one to two
// seconds to close down and have nothing the bench needs to keep, so after that they are killed.
const peerGrace = 300 * time.Millisecond

// startStubby runs stubby with one upstream, strict TLS, and no DNSSEC.
func startStubby(ctx context.Context, e *env, tag string) (*system, error) {
	dir := filepath.Join(e.dir, "stubby-"+tag)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`# Written by delvebench: stubby against the loopback test upstream only.
resolution_type: GETDNS_RESOLUTION_STUB
dns_transport_list:
  - GETDNS_TRANSPORT_TLS
tls_authentication: GETDNS_AUTHENTICATION_REQUIRED
tls_query_padding_blocksize: 128
tls_ca_file: "%s"
edns_client_subnet_private: 1
round_robin_upstreams: 0
idle_timeout: 10000
appdata_dir: "%s"
listen_addresses:
  - 127.0.0.1@%d
upstream_recursive_servers:
  - address_data: %s
    tls_port: %d
    tls_auth_name: "%s"
`, e.caFile, dir, port, e.upAddr, e.upPort, testenv.TLSName)
	file := filepath.Join(dir, "stubby.yml")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	p, err := startProc("stubby", nil, dir, e.stubby, "-C", file)
	if err != nil {
		return nil, err
	}
	p.grace = peerGrace
	s := &system{name: "stubby", p: p, dnsAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	if err := p.waitReady(ctx, startTimeout, func(ctx context.Context) error { return probeDNS(ctx, s.dnsAddr) }); err != nil {
		p.stop()
		return nil, err
	}
	return s, nil
}

// startUnboundForwarder runs unbound as a caching DoT forwarder: one thread, cache on, forwarding
// everything to the upstream over TLS.
func startUnboundForwarder(ctx context.Context, e *env, tag string) (*system, error) {
	dir := filepath.Join(e.dir, "unbound-"+tag)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`# Written by delvebench: unbound as a DoT forwarder to the loopback test upstream only.
server:
	verbosity: 0
	num-threads: 1
	username: ""
	chroot: ""
	directory: "%[1]s"
	pidfile: "%[1]s/unbound.pid"
	logfile: "%[1]s/unbound.log"
	use-syslog: no
	do-daemonize: no
	do-ip6: no
	interface: 127.0.0.1@%[2]d
	port: %[2]d
	so-reuseport: no
	access-control: 127.0.0.0/8 allow
	module-config: "iterator"
	do-not-query-localhost: no
	# .test is one of unbound's reserved zones: without this it would answer NXDOMAIN itself.
	local-zone: "test." nodefault
	tls-cert-bundle: "%[3]s"
	rrset-roundrobin: no
	minimal-responses: yes
	prefetch: no
remote-control:
	control-enable: no
forward-zone:
	name: "."
	forward-tls-upstream: yes
	forward-addr: %[4]s@%[5]d#%[6]s
`, dir, port, e.caFile, e.upAddr, e.upPort, testenv.TLSName)
	file := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	p, err := startProc("unbound forwarder", nil, dir, e.unbound, "-d", "-c", file)
	if err != nil {
		return nil, err
	}
	p.grace = peerGrace
	s := &system{name: "unbound", p: p, dnsAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	if err := p.waitReady(ctx, startTimeout, func(ctx context.Context) error { return probeDNS(ctx, s.dnsAddr) }); err != nil {
		p.stop()
		return nil, err
	}
	return s, nil
}

// startDelve runs `delve serve` with one upstream, type A, the default cache, its socket in the
// scratch directory and the plain DNS listener on a loopback port (used when the daemon has it).
func startDelve(ctx context.Context, e *env, tag string) (*system, error) {
	dir := filepath.Join(e.dir, "delve-"+tag)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "delve.sock")
	cacheSize := e.cacheSize
	if cacheSize == 0 {
		cacheSize = 1024
	}
	conf := fmt.Sprintf(`# Written by delvebench: delve against the loopback test upstream only.
config delve 'main'
	option enabled '1'
	list type 'A'
	option timeout '3000'
	option strategy 'failover'
	option cache_size '%d'
	option socket '%s'
	list listen '127.0.0.1:%d'
	option ca_file '%s'
	option log_level 'warn'
%s
config upstream 'bench'
	option address '%s'
	option port '%d'
	option tls_name '%s'
	option enabled '1'
`, cacheSize, sock, port, e.caFile, threadsLine(e.threads), e.upAddr, e.upPort, testenv.TLSName)
	file := filepath.Join(dir, "delve.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	p, err := startProc("delve serve", e.delveEnv, dir, e.delve, "serve", "--config", file)
	if err != nil {
		return nil, err
	}
	s := &system{name: "delve", p: p, sock: sock}
	err = p.waitReady(ctx, startTimeout, func(ctx context.Context) error {
		c, err := jsonrpc.Dial(ctx, sock)
		if err != nil {
			return err
		}
		defer c.Close()
		return c.Call(ctx, "status", nil, nil)
	})
	if err != nil {
		p.stop()
		return nil, err
	}
	// The plain DNS listener is used only when this daemon serves it.
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if e.listener {
		if err := p.waitReady(ctx, startTimeout, func(ctx context.Context) error { return probeDNS(ctx, addr) }); err != nil {
			p.stop()
			return nil, err
		}
		s.dnsAddr = addr
		return s, nil
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for pctx.Err() == nil {
		if probeDNS(pctx, addr) == nil {
			s.dnsAddr = addr
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s, nil
}

// delveStatus is what the bench reads of the status method.
type delveStatus struct {
	Upstreams []struct {
		Name              string `json:"name"`
		ConnectionsOpened uint64 `json:"connections_opened"`
		Queries           uint64 `json:"queries"`
		Healthy           bool   `json:"healthy"`
		OpenConns         int    `json:"open_connections"`
		InFlight          int    `json:"in_flight"`
		Failures          uint64 `json:"failures"`
		Retries           uint64 `json:"retries"`
		Unmatched         uint64 `json:"unmatched_replies"`
		LastError         string `json:"last_error"`
	} `json:"upstreams"`
	Config struct {
		TimeoutMS int64 `json:"timeout_ms"`
	} `json:"config"`
	Lookups        uint64 `json:"lookups"`
	LookupFailures uint64 `json:"lookup_failures"`
	Cache          struct {
		Entries int `json:"entries"`
		Bytes   int `json:"bytes"`
		Memory  int `json:"memory"`
	} `json:"cache"`
	Process struct {
		Goroutines int   `json:"goroutines"`
		HeapKiB    int64 `json:"heap_kib"`
	} `json:"process"`
}

func (s *system) status(ctx context.Context) (*delveStatus, error) {
	c, err := dialSocket(ctx, s.sock)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var st delveStatus
	if err := c.Call(ctx, "status", nil, &st); err != nil {
		return nil, err
	}
	if len(st.Upstreams) != 1 {
		return nil, fmt.Errorf("status shows %d upstreams, want 1", len(st.Upstreams))
	}
	return &st, nil
}

// connsOpened returns the TLS connections delve's upstream has opened so far.
func (s *system) connsOpened(ctx context.Context) (uint64, error) {
	st, err := s.status(ctx)
	if err != nil {
		return 0, err
	}
	return st.Upstreams[0].ConnectionsOpened, nil
}

// probeDNS asks addr over UDP for the first bench name and checks the answer.
func probeDNS(ctx context.Context, addr string) error {
	c := &dns.Client{Net: "udp", Timeout: 500 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion(testenv.BenchName(0), dns.TypeA)
	r, _, err := c.ExchangeContext(ctx, m, addr)
	if err != nil {
		return err
	}
	return checkA(r, testenv.BenchAddr(0))
}

// checkA reports whether r answers NOERROR with the A record want.
func checkA(r *dns.Msg, want string) error {
	if r.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("answered %s", dns.RcodeToString[r.Rcode])
	}
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok && a.A.String() == want {
			return nil
		}
	}
	var got []string
	for _, rr := range r.Answer {
		got = append(got, rr.String())
	}
	return errors.New("answer is not " + want + ": " + strings.Join(got, "; "))
}
