package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/testenv"
)

// The large-answer run (issue 12): distinct names whose answers are each about 30 KB of TXT
// (8 records of 15 strings of 255 bytes), asked through delve's socket with cache_size at its
// maximum, so that only cache_memory bounds what the cache holds.
const (
	largeNames   = 3000
	largeRRs     = 8
	largeStrings = 15
	largeClients = 4
)

// largeRow is the result of the large-answer run.
type largeRow struct {
	names, ok, bad int
	took           time.Duration
	idle, after    usage
	status         *delveStatus
}

// startDoT serves srv (its Handler and limits set by the caller) as DNS over TLS on 127.0.0.1:0,
// under a certificate for testenv.TLSName from a throwaway CA written to dir/NAME-ca.pem, and
// returns once it accepts connections. wrap, when not nil, wraps the TLS listener (to watch the
// connections). srv.Shutdown stops it.
func startDoT(dir, name string, srv *dns.Server, wrap func(net.Listener) net.Listener) (port int, caFile string, err error) {
	ca, err := testenv.NewCA("delvebench " + name + " CA")
	if err != nil {
		return 0, "", err
	}
	leaf, err := ca.Issue(testenv.IssueOptions{DNSNames: []string{testenv.TLSName}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		return 0, "", err
	}
	caFile = filepath.Join(dir, name+"-ca.pem")
	if err := ca.WriteFile(caFile); err != nil {
		return 0, "", err
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{leaf.Certificate}, MinVersion: tls.VersionTLS12})
	if err != nil {
		return 0, "", err
	}
	port = ln.Addr().(*net.TCPAddr).Port
	srv.Listener, srv.Net = ln, "tcp-tls"
	if wrap != nil {
		srv.Listener = wrap(ln)
	}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	return port, caFile, nil
}

// answerProbe fills r with the answer to startDelve's readiness probe (probeDNS), the A record
// of the first bench name that the bench's unbound serves, and reports whether q was that.
func answerProbe(q, r *dns.Msg) bool {
	if q.Question[0].Qtype != dns.TypeA || !strings.EqualFold(q.Question[0].Name, testenv.BenchName(0)) {
		return false
	}
	rr, _ := dns.NewRR(testenv.BenchName(0) + " 60 IN A " + testenv.BenchAddr(0))
	r.Answer = append(r.Answer, rr)
	return true
}

// largeServer is an in-process DoT server (miekg/dns) that answers every TXT question with
// about 30 KB of TXT records naming the question (unbound serves no such RRsets on demand), and
// the A question of startDelve's readiness probe as the bench's unbound does.
func largeServer(dir string) (srv *dns.Server, port int, caFile string, err error) {
	srv = &dns.Server{Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		r := new(dns.Msg)
		r.SetReply(q)
		switch {
		case len(q.Question) != 1:
		case answerProbe(q, r):
		case q.Question[0].Qtype == dns.TypeTXT:
			name := q.Question[0].Name
			for i := range largeRRs {
				rr := &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 3600}}
				for j := range largeStrings {
					tag := fmt.Sprintf("%s-%d-%d-", name, i, j)
					rr.Txt = append(rr.Txt, tag+strings.Repeat("x", max(255-len(tag), 0)))
				}
				r.Answer = append(r.Answer, rr)
			}
		}
		_ = w.WriteMsg(r)
	})}
	if port, caFile, err = startDoT(dir, "large", srv, nil); err != nil {
		return nil, 0, "", err
	}
	return srv, port, caFile, nil
}

func (b *bench) largeRun(ctx context.Context) error {
	srv, port, caFile, err := largeServer(b.env.dir)
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	e := *b.env
	e.upPort, e.caFile, e.cacheSize = port, caFile, 1000000
	s, err := startDelve(ctx, &e, "large")
	if err != nil {
		return err
	}
	defer s.stop()
	pid := s.p.pid()
	r := &largeRow{names: largeNames}
	if r.idle, err = readUsage(pid); err != nil {
		return err
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for w := range largeClients {
		c, err := dialSocket(ctx, s.sock)
		if err != nil {
			return err
		}
		defer c.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < largeNames && ctx.Err() == nil && time.Since(start) < 2*time.Minute; i += largeClients {
				name := fmt.Sprintf("large%d.delve.test.", i)
				var l api.Lookup
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := c.Call(cctx, "lookup", map[string]string{"name": name, "type": "TXT"}, &l)
				cancel()
				good := err == nil && len(l.Answers) == largeRRs && strings.Contains(l.Answers[0].Data, name+"-0-0-")
				mu.Lock()
				if good {
					r.ok++
				} else {
					r.bad++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	r.took = time.Since(start)
	if r.after, err = readUsage(pid); err != nil {
		return err
	}
	if r.status, err = s.status(ctx); err != nil {
		return err
	}
	b.large = r
	b.logf("large answers: %d correct, %d failed in %v; peak RSS %.1f MiB, cache %d entries, %d bytes",
		r.ok, r.bad, r.took.Round(time.Millisecond), mib(r.after.hwm), r.status.Cache.Entries, r.status.Cache.Bytes)
	return nil
}
