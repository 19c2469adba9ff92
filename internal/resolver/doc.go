// Package resolver sends lookups to a set of upstreams by a strategy (failover, round robin,
// fastest) with backoff and probes for failing ones, caches answers by their TTLs (negative ones
// per RFC 2308) within a byte budget, serves expired answers when the upstreams fail (serve-stale,
// RFC 8767), refreshes popular answers before they expire (prefetch), coalesces identical
// concurrent queries, and merges lookups of several types.
//
// # The failure model
//
// On a router every LAN lookup goes through here, and the Internet answers some names after
// seconds (their authorities are dead) while it answers the rest at once. So a slow name is
// never taken for a dead upstream. README.md's "Failure model" section says the same for users.
//
// What counts against an upstream's health (member.fail; MaxFails in a row mark it down):
//   - a connection that cannot be made: TCP refused or unreachable, the TLS handshake failed or
//     did not finish within the dial timeout (upstream.DefaultDialTimeout, 5 s);
//   - a connection that reads nothing at all for upstream.StallInterval (3 s) while queries are
//     owed on it (upstream.ErrStalled): after upstream.StallProbe (1 s) of quiet it is sent ". NS",
//     which every recursive server answers at once, and any reply to anything ends the quiet;
//   - a malformed reply, or a server that closes every connection without answering;
//   - REFUSED, and a SERVFAIL whose Extended DNS Error (RFC 8914) does not put the fault with the
//     zone (DNSSEC, codes 1-12) or its authorities (22, 23; another upstream would do no better);
//   - a bare SERVFAIL (no Extended DNS Error) only when the upstream also fails the SERVFAIL
//     check (servfailed): the last name it answered, asked again in the background, gets
//     SERVFAIL or REFUSED too. A bare SERVFAIL is what unbound says for a name whose authorities
//     are dead or lame, and counting it took the only upstream down after one such lookup (A and
//     AAAA). One check runs at a time per upstream, none for ServfailCheckEvery (10 s) after one
//     passed.
//
// What does not count:
//   - one query that is slow or times out while the connection keeps answering (the attempt's
//     error is a deadline, and Upstream.Faults did not move meanwhile);
//   - the caller's own deadline or cancellation: a caller that gives up only forgets its query
//     ID, which stays reserved for upstream.LateWindow (10 s, about when a recursive server gives
//     up on a dead authority and says SERVFAIL) so that a late reply is read and dropped, not
//     taken for another query's; at most maxOwed (1024) such queries are kept per connection;
//   - a reused connection found closed before the query was sent on it (it is sent on another
//     connection, without using one of the 3 attempts upstream.maxAttempts allows a query whose
//     connection closed under it);
//   - a reload closing the upstream (upstream.ErrClosed).
//
// The timing constants, and why:
//   - Options.Timeout (UCI timeout, default 3 s) is a lookup's whole budget. A flight (the one
//     upstream query identical concurrent questions share) runs to the later of its first
//     caller's deadline and Timeout from its start, and no caller's leaving ends it, so a
//     client's retransmit that joins it gets the answer. A joiner waits with its own deadline;
//     when the flight ends in a timeout and the joiner has at least MinAttempt left, it starts
//     (or joins) another flight.
//   - The attempt budget (attemptContext): an attempt gets half of what is left while other
//     upstreams remain, all of it for the last, so a stalled upstream leaves time for the next.
//     No attempt starts with less than MinAttempt (20 ms) left: it could only time out, and a
//     timeout says nothing about the upstream. upstream.Upstream.acquire checks the same.
//   - MaxFails (default 2) consecutive failures mark an upstream down: one is noise on a
//     flapping link, two in a row is a pattern. A down upstream is skipped and probed in the
//     background with a backoff from BackoffMin (500 ms) doubling to BackoffMax (30 s): quick
//     to come back after a link flap, cheap when a server is gone for good. While every upstream
//     is down a lookup fails at once with the reason of each (ErrNoUpstream), rather than
//     waiting for its timeout.
//   - FlightGrace (100 ms): a caller whose deadline passed waits this long for the flight it
//     started, which ends at that same deadline, to learn the reason.
//   - upstream.DefaultIdleTimeout (20 s) closes an unused connection, shorter when the server's
//     edns-tcp-keepalive (RFC 7828) asks for less.
package resolver
