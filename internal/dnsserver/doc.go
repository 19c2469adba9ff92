// Package dnsserver answers plain DNS over UDP and TCP on the addresses it is given (for dnsmasq
// and the LAN behind it) from delve's resolver, so that those lookups share the cache, failover
// and counters of the ubus ones.
//
// What a query gets:
//
//	query                                       reply
//	one IN question, opcode QUERY               the resolver's answer: the client's ID, question (as
//	                                            written, 0x20 case kept), RD and CD; RA set, AA clear,
//	                                            AD only to a client that sent DO or AD (RFC 6840 §5.8);
//	                                            TTLs aged by the cache
//	  ... that no upstream answered             SERVFAIL (+ EDE 22 No Reachable Authority on timeout,
//	                                            23 Network Error otherwise, for an EDNS client)
//	  ... whose answer does not parse (a        the upstream's answer as it came (its records as
//	      zone's bad record, such as an HTTPS   they were, delve's header flags and OPT), not
//	      record with SvcParamKeys out of       cached, when its header, question and framing are
//	      order)                                sound; else SERVFAIL (+ EDE 24 Invalid Data)
//	  ... too large for the client's UDP        TC, the question, no records (RFC 2181 §9): the client
//	      buffer (512 without EDNS, else its     retries over TCP
//	      size capped to 1232)
//	AXFR, IXFR, TSIG, TKEY, OPT, MAILA, MAILB   REFUSED (+ EDE 21 Not Supported)
//	class other than IN (CHAOS version.bind)    REFUSED (+ EDE 21): it would describe the upstream
//	opcode other than QUERY (NOTIFY, UPDATE)    NOTIMP
//	no question or more than one, two OPTs      FORMERR
//	EDNS version above 0                        BADVERS, with an OPT of version 0 (RFC 6891 §6.1.3)
//	not parseable, header counts wrong,         no reply; counted as malformed
//	  a response (QR set), UDP over 4096 octets
//	UDP over the per-client rate                no reply (nothing to reflect); counted
//	TCP over the per-client rate                REFUSED (+ EDE 18 Prohibited)
//	a TCP connection beyond 16 from one client  closed at accept, counted (Stats.TCPRefused): one
//	  (IPv6: one /64) or 64 in all              client cannot take every slot (MaxTCPPerClient)
//
// EDNS: a reply carries an OPT (UDP size 1232, the client's DO) exactly when the query did, with
// the upstream's Extended DNS Errors; a padded query gets a padded reply (RFC 7830 §4, blocks of
// 468).
//
// Forwarding is hop by hop: every query to an upstream, a miss's or a prefetch's, is built by
// delve (upstream.wireQuery). Of the client's query only the question, its CD flag and its DO bit
// are honoured (and its Client Subnet with Options.ForwardECS); the query has RD=1 whatever the
// client sent (delve is a stub: its upstreams recurse, and a recursive server refuses RD=0 from a
// stub), AD=1 (RFC 6840 §5.7) and delve's own EDNS (padding, keepalive). The client's RD, AD,
// cookies, padding, keepalive and NSID never leave, nor any other record it sent (TSIG). An
// upstream's SERVFAIL or REFUSED is passed on as it is, unless an expired answer is at hand
// (serve-stale).
package dnsserver
