package daemon

import (
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Process is the daemon's own footprint, for `status` and for spotting leaks on a router.
type Process struct {
	// Threads is how many threads may run Go code at once (GOMAXPROCS): main.threads, or the
	// GOMAXPROCS environment variable when that is set.
	Threads    int   `json:"threads"`
	Goroutines int   `json:"goroutines"`
	OpenFDs    int   `json:"open_fds"` // -1 when /proc is not there
	RSSKiB     int64 `json:"rss_kib"`  // VmRSS; -1 when /proc is not there
	PeakRSSKiB int64 `json:"peak_rss_kib"`
	HeapKiB    int64 `json:"heap_kib"` // Go heap in use
}

func process() Process {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	p := Process{Threads: runtime.GOMAXPROCS(0), Goroutines: runtime.NumGoroutine(), OpenFDs: -1, RSSKiB: -1, PeakRSSKiB: -1, HeapKiB: int64(ms.HeapInuse / 1024)}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		p.OpenFDs = len(ents)
	}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				continue
			}
			switch k {
			case "VmRSS":
				p.RSSKiB = n
			case "VmHWM":
				p.PeakRSSKiB = n
			}
		}
	}
	return p
}
