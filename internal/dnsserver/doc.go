// Package dnsserver answers plain DNS over UDP and TCP on the addresses it is given (for dnsmasq
// and the LAN behind it) from delve's resolver, with EDNS(0) handled for a stub: the client's DO
// and CD reach the upstream, its padding, cookies and Client Subnet do not (Client Subnet only
// when configured), UDP answers larger than the client's buffer are truncated so it retries over
// TCP, and queries a stub should not forward are refused. A per-client token bucket limits
// floods; malformed packets are dropped and counted.
package dnsserver
