// Package testenv gives tests and benchmark programs the real parts they need on loopback: a
// throwaway CA, a real unbound serving a fixed test zone over DNS-over-TLS, kdig and dig as
// reference clients, and free ports. Nothing here touches the Internet.
//
// # The test unbound
//
// StartUnbound (or UnboundT in a test) runs `unbound -d -c DIR/unbound.conf` on
// 127.0.0.1@PORT with tls-port PORT, so PORT speaks DoT over TCP and plain DNS over UDP;
// UnboundOptions.Plain adds a second, plain UDP+TCP port. The server certificate names TLSName
// (dot.delve.test) and the IP 127.0.0.1 and is issued by a fresh CA whose PEM is CAFile. It
// never recurses: module-config "iterator" and local-zone "." refuse. rrset-roundrobin is off, so
// records come back in the order of the configuration (the order of MultiAddrs, BigAddrs,
// BigTXT); minimal-responses is on, so positive answers carry no authority or additional
// records.
//
// TLS session tickets are off: unbound 1.17 has no option for that (tls-session-ticket-keys only
// picks the keys), so the unbound process gets OPENSSL_CONF=DIR/openssl.cnf whose system_default
// section says "Options = -SessionTicket" (SSL_OP_NO_TICKET: no TLS 1.2 tickets) and
// "NumTickets = 0" (no TLS 1.3 tickets, which SSL_OP_NO_TICKET alone would only make stateful).
// Both are needed; TestUnboundSessionTicketsOff shows it with a Go client's session cache, and
// against a server with tickets left on (UnboundOptions.SessionTickets) it sees the tickets and
// the ~40 ms first answer they cause.
//
// # What unbound 1.17.1 answers
//
// Verified with kdig over DoT by TestUnboundZone. Every answer has the flags qr aa rd ra, the TTLs
// are fixed (TTL 300 for data, SOATTL 60 for the SOA) and "SOA" means
// "delve.test. 60 IN SOA ns.delve.test. hostmaster.delve.test. 2024010101 3600 600 86400 60".
//
//	query                               rcode     answer                                   authority
//	a.delve.test A                      NOERROR   A 192.0.2.1                              -
//	a.delve.test AAAA                   NOERROR   AAAA 2001:db8::1                         -
//	a.delve.test MX                     NOERROR   - (NODATA)                               SOA
//	missing.delve.test A (any name      NXDOMAIN  -                                        SOA
//	  not listed, at any depth)
//	multi.delve.test A                  NOERROR   A 192.0.2.1, .2, .3, .4 in that order    -
//	delve.test MX                       NOERROR   MX 10 mail.delve.test.                   -
//	delve.test NS                       NOERROR   NS ns.delve.test.                        -
//	delve.test SOA                      NOERROR   SOA                                      -
//	delve.test ANY                      NOERROR   - (local zones do not answer ANY)        SOA
//	ns.delve.test A                     NOERROR   A 192.0.2.53                             -
//	dot.delve.test A                    NOERROR   A 127.0.0.1                              -
//	txt.delve.test TXT                  NOERROR   TXT "hello world"                        -
//	www.delve.test A, AAAA or CNAME     NOERROR   CNAME a.delve.test. only: unbound does   -
//	                                              not follow a CNAME inside local data
//	big.delve.test A                    NOERROR   300 A: 198.51.100.1-150, 203.0.113.1-150 -
//	bigtxt.delve.test TXT               NOERROR   20 TXT of 240 characters (BigTXT)        -
//	                                              over UDP: TC set and no records, even with
//	                                              a 4096-byte buffer (unbound caps at 1232)
//	<anything>.wild.delve.test A        NOERROR   <anything>.wild.delve.test. A 192.0.2.99 -
//	wild.delve.test A                   NOERROR   A 192.0.2.99                             -
//	<anything>.wild.delve.test AAAA     NOERROR   - (NODATA; redirect zone has no SOA)     -
//	1.2.0.192.in-addr.arpa PTR          NOERROR   PTR a.delve.test.                        -
//	2.2.0.192.in-addr.arpa PTR          NXDOMAIN  -                                        SOA of 2.0.192.in-addr.arpa.
//	h<i>.bench.delve.test A             NOERROR   A BenchAddr(i) for i < BenchNames;       -
//	                                              NXDOMAIN with the SOA beyond
//	bench.delve.test A                  NOERROR   - when BenchNames > 0 (empty             SOA
//	                                              non-terminal), else NXDOMAIN
//	example.com A, . NS (outside)       REFUSED   -                                        -
//	other.test A                        NXDOMAIN  -                                        test. 10800 IN SOA localhost. nobody.invalid. 1 3600 1200 604800 10800
//	                                                                                       (unbound's built-in test. zone)
//	localhost A                         NOERROR   localhost. 10800 A 127.0.0.1 (built in)  -
//
// # Reference clients
//
// Kdig runs kdig +tls with the CA and TLS name, Dig runs dig over UDP or TCP; both parse the
// output into a KdigResult (rcode, flags, records with data in presentation form) so a test can
// compare delve's answer with the reference one exactly.
package testenv
