// Package resolver sends lookups to a set of upstreams by a strategy (failover, round robin,
// fastest) with backoff and probes for failing ones, caches answers by their TTLs (negative ones
// per RFC 2308), coalesces identical concurrent queries, and merges lookups of several types.
package resolver
