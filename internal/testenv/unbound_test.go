package testenv

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// dotQuery asks u one question over a fresh DoT connection with miekg/dns.
func dotQuery(u *Unbound, name string, qtype uint16) (*dns.Msg, error) {
	c := &dns.Client{Net: "tcp-tls", TLSConfig: u.ClientConfig(), Timeout: 3 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	r, _, err := c.Exchange(m, u.Addr())
	return r, err
}

func TestUnboundBenchNames(t *testing.T) {
	t.Parallel()
	const n = 20000
	start := time.Now()
	u := UnboundT(t, UnboundOptions{BenchNames: n, Threads: 2})
	took := time.Since(start)
	// Logged, not asserted: a time is bench's to measure (StartUnbound bounds a start that hangs).
	t.Logf("unbound with %d bench names answered after %v", n, took)
	for _, i := range []int{0, 1, 9999, n - 1} {
		r := KdigT(t, u, BenchName(i), "A")
		if r.Rcode != "NOERROR" || len(r.Answer) != 1 || r.Answer[0].String() != fmt.Sprintf("%s %d IN A %s", BenchName(i), TTL, BenchAddr(i)) {
			t.Errorf("%s: %s %v, want A %s", BenchName(i), r.Rcode, r.Answer, BenchAddr(i))
		}
	}
	soa := []string{soaLine(Zone)}
	if r := KdigT(t, u, BenchName(n), "A"); r.Rcode != "NXDOMAIN" || !slices.Equal(recordLines(r.Authority), soa) {
		t.Errorf("%s: %s %v, want NXDOMAIN with the SOA past the last bench name", BenchName(n), r.Rcode, r.Authority)
	}
	// With names below it, the bench zone's own name is an empty non-terminal: NODATA.
	if r := KdigT(t, u, BenchZone, "A"); r.Rcode != "NOERROR" || len(r.Answer) != 0 || !slices.Equal(recordLines(r.Authority), soa) {
		t.Errorf("%s: %s %v %v, want NODATA with the SOA", BenchZone, r.Rcode, r.Answer, r.Authority)
	}
	// The rest of the zone is still there.
	if r := KdigT(t, u, NameA, "A"); len(r.Answer) != 1 {
		t.Errorf("%s A: %v", NameA, r.Answer)
	}
}

func TestUnboundStopStart(t *testing.T) {
	t.Parallel()
	u := UnboundT(t, UnboundOptions{})
	port, pid := u.Port, u.PID()
	if pid == 0 || !u.Running() {
		t.Fatalf("PID %d, Running %v after start", pid, u.Running())
	}
	if err := u.Stop(); err != nil {
		t.Fatal(err)
	}
	if u.PID() != 0 || u.Running() {
		t.Errorf("PID %d, Running %v after Stop", u.PID(), u.Running())
	}
	if processAlive(pid) {
		t.Errorf("pid %d still alive after Stop", pid)
	}
	if _, err := dotQuery(u, NameA, dns.TypeA); err == nil {
		t.Fatal("a DoT query succeeded while unbound was stopped")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("query to a stopped unbound: %v, want connection refused", err)
	}
	if err := u.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}

	if err := u.Start(); err != nil {
		t.Fatal(err)
	}
	if u.Port != port {
		t.Errorf("port %d after Start, want %d", u.Port, port)
	}
	if u.PID() == 0 || u.PID() == pid {
		t.Errorf("PID %d after Start, want a new process (old %d)", u.PID(), pid)
	}
	if r := KdigT(t, u, NameA, "AAAA"); len(r.Answer) != 1 || r.Answer[0].Data != AddrAAAA {
		t.Errorf("after Start: %v", r.Answer)
	}
	if err := u.Start(); err != nil { // already running: nothing happens
		t.Errorf("Start while running: %v", err)
	}

	// A crash, then Start again.
	pid = u.PID()
	if err := u.Kill(); err != nil {
		t.Fatal(err)
	}
	if processAlive(pid) {
		t.Errorf("pid %d alive after Kill", pid)
	}
	if err := u.Start(); err != nil {
		t.Fatal(err)
	}
	if r, err := dotQuery(u, NameA, dns.TypeA); err != nil || len(r.Answer) != 1 {
		t.Errorf("after Kill and Start: %v %v", r, err)
	}
}

func TestUnboundCloseLeavesNoProcess(t *testing.T) {
	t.Parallel()
	RequireTool(t, "unbound", "unbound")
	u, err := StartUnbound(t.TempDir(), UnboundOptions{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	pid := u.PID()
	if got := unboundsUsing(t, u.ConfFile); len(got) != 1 || got[0] != pid {
		t.Fatalf("processes using %s: %v, want [%d]", u.ConfFile, got, pid)
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	if got := unboundsUsing(t, u.ConfFile); len(got) != 0 {
		t.Errorf("after Close, processes still using %s: %v", u.ConfFile, got)
	}
	if processAlive(pid) {
		t.Errorf("pid %d alive after Close", pid)
	}
	if err := u.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// processAlive reports whether pid exists (the test reaps its children, so no zombies linger).
func processAlive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

// unboundsUsing lists the processes whose command line names conf.
func unboundsUsing(t *testing.T, conf string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("listing processes: %v", err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue // gone meanwhile
		}
		if bytes.Contains(cmdline, []byte(conf)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestUnboundPortBusy(t *testing.T) {
	t.Parallel()
	RequireTool(t, "unbound", "unbound")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	start := time.Now()
	u, err := StartUnbound(t.TempDir(), UnboundOptions{Port: port})
	if err == nil {
		u.Close()
		t.Fatalf("unbound started on port %d that a listener holds", port)
	}
	if !errors.Is(err, errBind) {
		t.Errorf("error %v, want errBind", err)
	}
	// Behaviour, not speed: the bind failure is seen as such, before the start timeout that an
	// unbound that never answers would run into.
	if took := time.Since(start); took >= StartTimeout {
		t.Errorf("noticing the busy port took %v: it waited for the start timeout", took)
	}
}

// countingCache is a ClientSessionCache that counts the sessions (tickets) the server sent.
type countingCache struct {
	tls.ClientSessionCache
	puts atomic.Int32
}

func (c *countingCache) Put(key string, cs *tls.ClientSessionState) {
	if cs != nil {
		c.puts.Add(1)
	}
	c.ClientSessionCache.Put(key, cs)
}

// ticketProbe makes two DoT connections to u with one session cache and reports how many
// sessions the server handed out and whether the second connection resumed. It reads an answer
// on each connection first, since TLS 1.3 tickets arrive after the handshake.
func ticketProbe(t *testing.T, u *Unbound, version uint16) (puts int, resumed bool, firstAnswer time.Duration) {
	t.Helper()
	cache := &countingCache{ClientSessionCache: tls.NewLRUClientSessionCache(8)}
	cfg := u.ClientConfig()
	cfg.ClientSessionCache = cache
	cfg.MinVersion, cfg.MaxVersion = version, version
	for i := range 2 {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", u.Addr(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(3 * time.Second))
		start := time.Now()
		dc := &dns.Conn{Conn: conn}
		m := new(dns.Msg)
		m.SetQuestion(NameA, dns.TypeA)
		if err := dc.WriteMsg(m); err != nil {
			t.Fatal(err)
		}
		if _, err := dc.ReadMsg(); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			firstAnswer = time.Since(start)
		} else {
			resumed = conn.ConnectionState().DidResume
		}
		conn.Close()
	}
	return int(cache.puts.Load()), resumed, firstAnswer
}

func TestUnboundSessionTicketsOff(t *testing.T) {
	t.Parallel()
	off := UnboundT(t, UnboundOptions{})
	on := UnboundT(t, UnboundOptions{SessionTickets: true})
	for _, v := range []struct {
		name    string
		version uint16
	}{{"TLS1.3", tls.VersionTLS13}, {"TLS1.2", tls.VersionTLS12}} {
		t.Run(v.name, func(t *testing.T) {
			puts, resumed, rtt := ticketProbe(t, off, v.version)
			t.Logf("tickets off: %d sessions, resumed %v, first answer after %v", puts, resumed, rtt)
			if puts != 0 || resumed {
				t.Errorf("tickets off: the server sent %d sessions and resumed=%v, want none and false", puts, resumed)
			}
			// The same probe against OpenSSL's defaults sees tickets, so it can tell.
			puts, resumed, rtt = ticketProbe(t, on, v.version)
			t.Logf("tickets on: %d sessions, resumed %v, first answer after %v", puts, resumed, rtt)
			if puts == 0 || !resumed {
				t.Errorf("tickets on: the server sent %d sessions and resumed=%v, want some and true", puts, resumed)
			}
		})
	}
}

// TestUnboundManyConnections holds many DoT connections open at once: unbound's default
// incoming-num-tcp (10) would stall all but ten of them.
func TestUnboundManyConnections(t *testing.T) {
	t.Parallel()
	u := UnboundT(t, UnboundOptions{})
	const conns = 200
	cfg := u.ClientConfig()
	var wg sync.WaitGroup
	var open sync.WaitGroup
	open.Add(conns)
	errs := make(chan error, conns)
	deadline := time.Now().Add(10 * time.Second)
	for i := range conns {
		wg.Go(func() {
			conn, err := tls.DialWithDialer(&net.Dialer{Deadline: deadline}, "tcp", u.Addr(), cfg)
			open.Done()
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			open.Wait() // every connection is open before any asks
			conn.SetDeadline(deadline)
			dc := &dns.Conn{Conn: conn}
			m := new(dns.Msg)
			name := WildName(fmt.Sprintf("c%d", i))
			m.SetQuestion(name, dns.TypeA)
			if err := dc.WriteMsg(m); err != nil {
				errs <- err
				return
			}
			r, err := dc.ReadMsg()
			if err != nil {
				errs <- err
				return
			}
			if len(r.Answer) != 1 || r.Answer[0].Header().Name != name {
				errs <- fmt.Errorf("%s: answer %v", name, r.Answer)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestUnboundPlainAndUDP(t *testing.T) {
	t.Parallel()
	u := UnboundT(t, UnboundOptions{Plain: true, ExtraLocalData: []string{
		"extra.delve.test. 300 IN A 192.0.2.7",
		`extra.delve.test. 300 IN TXT "from ExtraLocalData"`,
	}})
	if u.PlainAddr() == "" || u.PlainPort == u.Port {
		t.Fatalf("PlainAddr %q with DoT port %d", u.PlainAddr(), u.Port)
	}
	for _, tt := range []struct{ net, addr string }{
		{"udp", u.Addr()}, // the DoT port answers plain DNS over UDP
		{"udp", u.PlainAddr()},
		{"tcp", u.PlainAddr()},
	} {
		c := &dns.Client{Net: tt.net, Timeout: 3 * time.Second}
		m := new(dns.Msg)
		m.SetQuestion("extra.delve.test.", dns.TypeTXT)
		r, _, err := c.Exchange(m, tt.addr)
		if err != nil {
			t.Errorf("%s %s: %v", tt.net, tt.addr, err)
			continue
		}
		if len(r.Answer) != 1 || r.Answer[0].(*dns.TXT).Txt[0] != "from ExtraLocalData" {
			t.Errorf("%s %s: %v", tt.net, tt.addr, r.Answer)
		}
	}
	// Plain TCP on the DoT port is not DNS: unbound expects TLS there.
	c := &dns.Client{Net: "tcp", Timeout: time.Second}
	if _, _, err := c.Exchange(new(dns.Msg).SetQuestion(NameA, dns.TypeA), u.Addr()); err == nil {
		t.Error("plain DNS over TCP on the DoT port answered")
	}
}
