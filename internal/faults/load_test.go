package faults

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/jsonrpc"
	"github.com/delvedns/delve/internal/testenv"
)

// load runs lookups through the daemon from several workers until stopped, each worker at most
// maxPerWorker lookups and the whole at most maxTime. Every lookup is checked: a cached name
// (a.delve.test), a miss (a fresh name under the wildcard) or an NXDOMAIN (a fresh missing name).
type load struct {
	t    testing.TB
	tag  string
	stop chan struct{}
	wg   sync.WaitGroup

	calls, failed, misses atomic.Int64

	mu        sync.Mutex
	errs      []string
	byUp      map[string]int64 // misses answered, by upstream
	watchUp   string           // the upstream whose next miss answer is noted after watchFrom
	watchFrom time.Time
	watchAt   time.Time
}

func startLoad(t testing.TB, clients []*jsonrpc.Client, workers, maxPerWorker int, maxTime time.Duration, tag string) *load {
	l := &load{t: t, tag: tag, stop: make(chan struct{}), byUp: map[string]int64{}}
	deadline := time.Now().Add(maxTime)
	for w := range workers {
		cl := clients[w%len(clients)]
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; i < maxPerWorker && time.Now().Before(deadline); i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				l.one(cl, w, i)
			}
		}()
	}
	return l
}

func (l *load) one(cl *jsonrpc.Client, w, i int) {
	label := fmt.Sprintf("%s-w%d-%d", l.tag, w, i)
	var name, want string
	switch {
	case i%10 == 3:
		name, want = "missing-"+label+".delve.test", "NXDOMAIN"
	case i%3 == 0:
		name, want = testenv.WildName(label), "192.0.2.99"
	default:
		name, want = "a.delve.test", "192.0.2.1"
	}
	res, _, err := lookup(cl, name, "A")
	l.calls.Add(1)
	ok := err == nil
	switch {
	case !ok:
	case want == "NXDOMAIN":
		ok = res.Rcode == "NXDOMAIN" && len(res.Answers) == 0
	default:
		ok = res.Rcode == "NOERROR" && len(res.Addresses) == 1 && res.Addresses[0] == want
	}
	if !ok {
		l.failed.Add(1)
		l.mu.Lock()
		if len(l.errs) < 10 {
			l.errs = append(l.errs, fmt.Sprintf("%s: %v %+v", name, err, res))
		}
		l.mu.Unlock()
		return
	}
	if !res.Cached {
		l.misses.Add(1)
		now := time.Now()
		l.mu.Lock()
		l.byUp[res.Upstream]++
		if res.Upstream == l.watchUp && !l.watchFrom.IsZero() && l.watchAt.IsZero() && now.After(l.watchFrom) {
			l.watchAt = now
		}
		l.mu.Unlock()
	}
}

// watch notes the first miss answered by upstream from now on; answeredBy reports it.
func (l *load) watch(upstream string) {
	l.mu.Lock()
	l.watchUp, l.watchFrom, l.watchAt = upstream, time.Now(), time.Time{}
	l.mu.Unlock()
}

func (l *load) answeredBy() (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.watchAt, !l.watchAt.IsZero()
}

// finish stops the load and fails the test if any lookup failed.
func (l *load) finish() {
	l.t.Helper()
	close(l.stop)
	l.wg.Wait()
	if n := l.failed.Load(); n != 0 {
		l.t.Errorf("%d of %d lookups failed; first: %v", n, l.calls.Load(), l.errs)
	}
}

func (l *load) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strconv.FormatInt(l.calls.Load(), 10) + " lookups (" + strconv.FormatInt(l.misses.Load(), 10) +
		" sent upstream: " + fmt.Sprint(l.byUp) + "), " + strconv.FormatInt(l.failed.Load(), 10) + " failed"
}

// wantCode checks that err is an api error with code and a message holding frag.
func wantCode(t testing.TB, err error, code api.Code, frag string) {
	t.Helper()
	if codeOf(err) != code || (frag != "" && !contains(err.Error(), frag)) {
		t.Fatalf("err = %v (%s), want %s with %q", err, codeOf(err), code, frag)
	}
}
