package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/jsonrpc"
	"github.com/delvedns/delve/internal/testenv"
)

// callTimeout bounds one lookup of the load generator; a slower one counts as failed.
const callTimeout = 3 * time.Second

// workload is one load run: at most max lookups and at most dur, by clients concurrent clients
// that each wait for an answer before asking again.
type workload struct {
	mode    string // modeMiss or modeHot
	clients int
	max     int
	dur     time.Duration
	prefix  string // makes the miss names of this run unique
}

const (
	modeMiss = "miss" // every name asked once: every lookup misses every cache
	modeHot  = "hot"  // one name over and over: answered from the cache where there is one
)

// hotIndex is the bench name of the hot workload.
const hotIndex = 7

// name returns the i-th name of the run and the address it must resolve to.
func (w workload) name(i int) (name, want string) {
	if w.mode == modeHot {
		return testenv.BenchName(hotIndex), testenv.BenchAddr(hotIndex)
	}
	return testenv.WildName(w.prefix + "-" + strconv.Itoa(i)), testenv.WildAddr
}

// result is what a load run measured.
type result struct {
	ok      int // correct answers
	bad     int // errors, timeouts, wrong or missing answers, lost queries
	elapsed time.Duration
	lat     []time.Duration // of the correct answers
}

func (r *result) qps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ok) / r.elapsed.Seconds()
}

// pct returns the p-th percentile (0 < p <= 100) of the latencies, nearest rank.
func (r *result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	if !slices.IsSorted(r.lat) {
		slices.Sort(r.lat)
	}
	i := int(float64(len(r.lat))*p/100+0.5) - 1
	return r.lat[min(max(i, 0), len(r.lat)-1)]
}

type lookupParams struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

type lookupResult struct {
	Rcode     string   `json:"rcode"`
	Addresses []string `json:"addresses"`
}

// runSocket drives delve's JSON-RPC socket: one connection per client, one call at a time each,
// counting only answers whose first address is the right one.
func runSocket(ctx context.Context, sock string, w workload) (*result, error) {
	clients := make([]*jsonrpc.Client, w.clients)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i := range clients {
		c, err := dialSocket(ctx, sock)
		if err != nil {
			return nil, err
		}
		clients[i] = c
	}
	var next atomic.Int64
	lats := make([][]time.Duration, w.clients)
	bad := make([]int, w.clients)
	var firstErr atomic.Value
	start := time.Now()
	end := start.Add(w.dur)
	var wg sync.WaitGroup
	for ci, c := range clients {
		lats[ci] = make([]time.Duration, 0, min(w.max/w.clients+1, 1<<20))
		wg.Add(1)
		go func() {
			defer wg.Done()
			var res lookupResult
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= w.max || time.Now().After(end) {
					return
				}
				name, want := w.name(i)
				res.Addresses = res.Addresses[:0]
				cctx, cancel := context.WithTimeout(ctx, callTimeout)
				t0 := time.Now()
				err := c.Call(cctx, "lookup", lookupParams{Name: name, Type: "A"}, &res)
				d := time.Since(t0)
				cancel()
				switch {
				case err != nil:
					firstErr.CompareAndSwap(nil, fmt.Errorf("lookup %s: %w", name, err))
					bad[ci]++
				case len(res.Addresses) == 0 || res.Addresses[0] != want:
					firstErr.CompareAndSwap(nil, fmt.Errorf("lookup %s: %s %v, want %s", name, res.Rcode, res.Addresses, want))
					bad[ci]++
				default:
					lats[ci] = append(lats[ci], d)
				}
			}
		}()
	}
	wg.Wait()
	return collect(ctx, start, lats, bad, &firstErr)
}

// dialSocket connects to delve's socket and makes sure the daemon took the connection: it
// refuses connections beyond its limit (64), and one the bench just closed may not have been
// counted out yet, so a refusal is retried for a while.
func dialSocket(ctx context.Context, sock string) (*jsonrpc.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		c, err := jsonrpc.Dial(ctx, sock)
		if err != nil {
			return nil, err
		}
		err = c.Call(ctx, "status", nil, nil)
		if err == nil {
			return c, nil
		}
		c.Close()
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != api.CodeBusy {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the daemon keeps refusing connections: %w", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// runDnsperf drives addr over UDP with dnsperf: clients sockets and as many queries outstanding,
// so each client waits for its answer before asking again, as with runSocket. dnsperf shows
// rcodes, not records: a NOERROR answer counts as correct.
func runDnsperf(ctx context.Context, dnsperf, dir, addr string, w workload) (*result, error) {
	host, port, _ := strings.Cut(addr, ":")
	file := filepath.Join(dir, "queries-"+w.prefix+".txt")
	runs := 1
	if w.mode == modeHot {
		name, _ := w.name(0)
		if err := os.WriteFile(file, []byte(name+" A\n"), 0o644); err != nil {
			return nil, err
		}
		runs = w.max
	} else if err := writeQueries(file, w); err != nil {
		return nil, err
	}
	defer os.Remove(file)

	secs := int((w.dur + time.Second - 1) / time.Second)
	cctx, cancel := context.WithTimeout(ctx, w.dur+30*time.Second)
	defer cancel()
	// -v prints one line per answer with its rcode and latency: the source of the percentiles.
	cmd := exec.CommandContext(cctx, dnsperf, "-s", host, "-p", port, "-d", file,
		"-c", strconv.Itoa(w.clients), "-q", strconv.Itoa(w.clients),
		"-n", strconv.Itoa(runs), "-l", strconv.Itoa(secs), "-t", "2", "-v")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting dnsperf: %w", err)
	}
	r := &result{lat: make([]time.Duration, 0, min(w.max, 1<<20))}
	sent := -1
	var tail []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 5 && f[0] == ">" {
			if f[1] != "NOERROR" {
				r.bad++
				continue
			}
			sec, err := strconv.ParseFloat(f[4], 64)
			if err != nil {
				r.bad++
				continue
			}
			r.lat = append(r.lat, time.Duration(sec*float64(time.Second)))
			continue
		}
		tail = append(tail, line)
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Queries sent":
			sent, _ = strconv.Atoi(v)
		case "Run time (s)":
			sec, _ := strconv.ParseFloat(v, 64)
			r.elapsed = time.Duration(sec * float64(time.Second))
		}
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("dnsperf: %w: %s %s", err, stderr.String(), strings.Join(tail, "\n"))
	}
	r.ok = len(r.lat)
	if sent < 0 || r.elapsed == 0 {
		return nil, fmt.Errorf("dnsperf printed no statistics: %s", strings.Join(tail, "\n"))
	}
	r.bad = sent - r.ok // lost queries have no line of their own
	return r, nil
}

func writeQueries(file string, w workload) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<16)
	for i := range w.max {
		name, _ := w.name(i)
		bw.WriteString(name)
		bw.WriteString(" A\n")
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// runUDP drives a plain DNS server over UDP the way runSocket drives delve's socket: one socket
// per client, one query at a time each, counting only answers with the right address. A query
// without an answer within callTimeout counts as failed and is not sent again.
func runUDP(ctx context.Context, addr string, w workload) (*result, error) {
	conns := make([]*net.UDPConn, w.clients)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	for i := range conns {
		if conns[i], err = net.DialUDP("udp", nil, raddr); err != nil {
			return nil, err
		}
	}
	var next atomic.Int64
	lats := make([][]time.Duration, w.clients)
	bad := make([]int, w.clients)
	var firstErr atomic.Value
	start := time.Now()
	end := start.Add(w.dur)
	var wg sync.WaitGroup
	for ci, c := range conns {
		lats[ci] = make([]time.Duration, 0, min(w.max/w.clients+1, 1<<20))
		wg.Add(1)
		go func() {
			defer wg.Done()
			stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
			defer stop()
			q := new(dns.Msg)
			r := new(dns.Msg)
			buf := make([]byte, 2048)
			var out []byte
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= w.max || time.Now().After(end) {
					return
				}
				name, want := w.name(i)
				q.SetQuestion(name, dns.TypeA)
				q.Id = uint16(rand.Uint32())
				var err error
				if out, err = q.PackBuffer(out); err != nil {
					firstErr.CompareAndSwap(nil, err)
					bad[ci]++
					continue
				}
				t0 := time.Now()
				c.SetDeadline(t0.Add(callTimeout))
				if _, err := c.Write(out); err != nil {
					firstErr.CompareAndSwap(nil, fmt.Errorf("%s: %w", name, err))
					bad[ci]++
					continue
				}
				err = udpAnswer(c, buf, r, q.Id, name, want)
				d := time.Since(t0)
				if err != nil {
					firstErr.CompareAndSwap(nil, fmt.Errorf("%s: %w", name, err))
					bad[ci]++
					continue
				}
				lats[ci] = append(lats[ci], d)
			}
		}()
	}
	wg.Wait()
	return collect(ctx, start, lats, bad, &firstErr)
}

// udpAnswer reads until the reply to id comes (a late reply to an earlier, timed-out query is
// skipped) and checks it.
func udpAnswer(c *net.UDPConn, buf []byte, r *dns.Msg, id uint16, name, want string) error {
	for {
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		if n < 12 || uint16(buf[0])<<8|uint16(buf[1]) != id {
			continue
		}
		if err := r.Unpack(buf[:n]); err != nil {
			return err
		}
		if len(r.Question) != 1 || !strings.EqualFold(r.Question[0].Name, name) {
			continue
		}
		return checkA(r, want)
	}
}

// collect merges the clients' latencies and failures into one result. A run that was cut short
// (ctx) or in which nothing at all was answered returns the error instead.
func collect(ctx context.Context, start time.Time, lats [][]time.Duration, bad []int, firstErr *atomic.Value) (*result, error) {
	res := &result{elapsed: time.Since(start)}
	for ci := range lats {
		res.ok += len(lats[ci])
		res.bad += bad[ci]
		res.lat = append(res.lat, lats[ci]...)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if e, _ := firstErr.Load().(error); e != nil && res.ok == 0 {
		return nil, e
	}
	return res, nil
}
