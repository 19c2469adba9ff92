package faults

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/jsonrpc"
)

// Sizes of the large answers of TestLargeAnswersRSS.
const (
	largeNames   = 3000
	largeRRs     = 8  // TXT records per answer
	largeStrings = 15 // strings of 255 bytes per record: 8 × 15 × 255 = 30,600 bytes of TXT
)

// largeTXT answers every TXT question with about 30 KB of TXT records that differ by name, as a
// hostile (or just generous) authoritative server would.
var largeTXT = replying(largeReply)

func largeReply(q *dns.Msg) *dns.Msg {
	r := new(dns.Msg)
	r.SetReply(q)
	if len(q.Question) != 1 || q.Question[0].Qtype != dns.TypeTXT {
		return r
	}
	name := q.Question[0].Name
	for i := range largeRRs {
		rr := &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 3600}}
		for j := range largeStrings {
			tag := fmt.Sprintf("%s-%d-%d-", name, i, j)
			rr.Txt = append(rr.Txt, tag+strings.Repeat("x", 255-len(tag)))
		}
		r.Answer = append(r.Answer, rr)
	}
	return r
}

// vmHWM is the peak resident set of process pid, from /proc/<pid>/status, in KiB.
func vmHWM(t testing.TB, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatal("no VmHWM in /proc/<pid>/status")
	return 0
}

// TestLargeAnswersRSS: 3,000 distinct ~30 KB TXT answers through the real daemon, with
// cache_size at its maximum and cache_memory at its default, leave its peak RSS under 40 MiB
// (bounded by entries alone the cache made it ~120 MiB), and the cache within its budget.
func TestLargeAnswersRSS(t *testing.T) {
	t.Parallel()
	srv := newDotServer(t, dotOptions{}, largeTXT)
	c := newConf(t)
	c.ups = append(c.ups, srv.upstream("large"))
	c.main = []string{"option cache_size '1000000'", "option timeout '10000'"}
	p := serve(t, c, serveOptions{})
	const workers = 4
	clients := make([]*jsonrpc.Client, workers)
	for i := range clients {
		clients[i] = p.client(t)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < largeNames; i += workers {
				if time.Since(start) > time.Minute {
					errs <- fmt.Errorf("not done within a minute, at lookup %d", i)
					return
				}
				name := fmt.Sprintf("large%d.delve.test.", i)
				l, _, err := lookup(clients[w], name, "TXT")
				if err != nil {
					errs <- fmt.Errorf("%s: %v", name, err)
					return
				}
				if n := len(l.Answers); n != largeRRs || !strings.Contains(l.Answers[0].Data, name+"-0-0-") {
					errs <- fmt.Errorf("%s: %d answers, want %d of this name's TXT", name, n, largeRRs)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := status(t, p.client(t))
	peak := vmHWM(t, p.cmd.Process.Pid)
	t.Logf("%d lookups of ~30 KB TXT in %v: peak RSS %d KiB; cache %+v", largeNames, time.Since(start).Round(time.Millisecond), peak, st.Cache)
	if srv.queries.Load() < largeNames {
		t.Errorf("the upstream was asked %d times for %d distinct names", srv.queries.Load(), largeNames)
	}
	if st.Cache.Entries == 0 || st.Cache.Bytes > st.Cache.Memory || st.Cache.Memory != 4<<20 {
		t.Errorf("cache %+v: want entries within the default budget of 4 MiB", st.Cache)
	}
	if peak >= 40<<10 {
		t.Errorf("peak RSS %d KiB, want under 40 MiB", peak)
	}
}
