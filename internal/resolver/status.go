package resolver

import (
	"net"
	"strconv"
	"time"
)

// UpstreamStatus is one upstream in the daemon's `status` reply.
type UpstreamStatus struct {
	_           [0]func() // never compared: the binary then carries no equality function for it
	Name        string    `json:"name"`
	Address     string    `json:"address"`
	Port        int       `json:"port"`
	TLSName     string    `json:"tls_name"`
	Healthy     bool      `json:"healthy"`
	SRTTms      float64   `json:"srtt_ms"`
	Queries     uint64    `json:"queries"`
	Failures    uint64    `json:"failures"`
	OpenConns   int       `json:"open_connections"`
	InFlight    int       `json:"in_flight"`
	ConnsOpened uint64    `json:"connections_opened"`
	Resumed     uint64    `json:"sessions_resumed"`
	Retries     uint64    `json:"retries"`
	Unmatched   uint64    `json:"unmatched_replies"`
	Stalls      uint64    `json:"stalls"`               // connections closed as stalled (upstream.StallInterval)
	DialFails   uint64    `json:"dial_failures"`        // connections that could not be made
	Dropped     uint64    `json:"dropped_connections"`  // connections the server closed unanswered
	DownSince   string    `json:"down_since,omitempty"` // RFC 3339
	LastError   string    `json:"last_error,omitempty"`
}

// CacheStatus is the cache part of `status`.
type CacheStatus struct {
	Entries int    `json:"entries"`
	Size    int    `json:"size"`   // the bound on entries: cache_size
	Bytes   int    `json:"bytes"`  // what the entries hold, as the budget counts it
	Memory  int    `json:"memory"` // the bound on Bytes: cache_memory, in bytes
	Hits    uint64 `json:"hits"`
	Misses  uint64 `json:"misses"`
	// Prefetches counts refreshes of popular answers started before they expired.
	Prefetches uint64 `json:"prefetches"`
	// Stale counts the expired answers serve-stale gave because no upstream answered in time.
	Stale uint64 `json:"stale"`
}

// Status returns the state of every upstream, in configured order, and of the cache.
func (r *Resolver) Status() ([]UpstreamStatus, CacheStatus) {
	s := r.set.Load()
	ups := make([]UpstreamStatus, 0, len(s.members))
	for _, m := range s.members {
		st := m.u.Stats()
		o := m.u.Options()
		host, port, _ := net.SplitHostPort(m.u.Addr())
		p, _ := strconv.Atoi(port)
		healthy, since, lastErr := m.h.snapshot()
		us := UpstreamStatus{
			Name: m.u.Name(), Address: host, Port: p, TLSName: o.TLSName,
			Healthy: healthy, SRTTms: float64(st.SRTT.Microseconds()) / 1000,
			Queries: st.Queries, Failures: m.failures.Load(),
			OpenConns: st.OpenConns, InFlight: st.InFlight, ConnsOpened: st.ConnsOpened, Resumed: st.Resumed,
			Retries: st.Retries, Unmatched: st.Unmatched, Stalls: st.Stalls, DialFails: st.DialFails, Dropped: st.Dropped, LastError: lastErr,
		}
		if !healthy {
			us.DownSince = since.UTC().Format(time.RFC3339)
		}
		ups = append(ups, us)
	}
	u := r.cache.use()
	return ups, CacheStatus{Entries: u.entries, Size: u.max, Bytes: u.bytes, Memory: u.budget,
		Hits: r.cache.hits.Load(), Misses: r.cache.misses.Load(), Prefetches: r.prefetches.Load(),
		Stale: r.stale.Load()}
}
