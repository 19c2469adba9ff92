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
// Faults are counted per event, each with a scope, and only connection- and upstream-scoped
// events feed an upstream's health (Resolver.failed; MaxFails in a row mark it down), each once:
//
// Name-scoped, never counted: the name's own problem, which another upstream would share.
//   - an answer that does not parse (ErrBadAnswer): a record a zone published and the upstream
//     relayed as it came, such as an HTTPS record whose SvcParamKeys are out of order. The lookup
//     fails with that error; the DNS listener relays the answer as it came when its header,
//     question and framing are sound (Relay; never cached), else says SERVFAIL with Extended DNS
//     Error 24. It counts against the upstream only if the upstream also fails the check below;
//   - a SERVFAIL that puts the fault with the zone: an Extended DNS Error (RFC 8914) for DNSSEC
//     (codes 1-12) or its authorities (22, 23), or a bare one (no Extended DNS Error) while the
//     upstream passes the check below. A bare SERVFAIL is what unbound says for a name whose
//     authorities are dead or lame, and counting it took the only upstream down after one such
//     lookup (A and AAAA);
//   - one query that is slow or times out while the connection keeps answering others (the
//     attempt's error is a deadline, and Upstream.Faults did not move meanwhile).
//
// Connection-scoped, one fault per connection however many lookups waited on it (the upstream
// counts them, upstream.Upstream.Faults, and of the lookups that saw one only the first to look
// counts it: an A and an AAAA lookup sharing one failed dial are one failure, not two):
//   - a connection that cannot be made: TCP refused or unreachable, the TLS handshake failed or
//     did not finish within the dial timeout (upstream.DefaultDialTimeout, 5 s);
//   - a connection that reads nothing at all for upstream.StallInterval (3 s) while queries are
//     owed on it (upstream.ErrStalled): after upstream.StallProbe (1 s) of quiet it is sent ". NS",
//     which every recursive server answers at once, and any reply to anything ends the quiet;
//   - a connection the server closes, with queries owed, before answering anything.
//
// Upstream-scoped, one fault per reply:
//   - REFUSED (every query delve sends is a well-formed RD=1 query, so a REFUSED is the server's
//     policy, not the client's doing);
//   - a SERVFAIL with an Extended DNS Error that does not blame the zone or its authorities;
//   - the check failing: a bare SERVFAIL or an answer that does not parse is followed by the last
//     name the upstream answered, asked again in the background (". NS" before it answered any,
//     to which REFUSED passes too); SERVFAIL, REFUSED or another unparseable answer to it counts
//     (so does an error, as any attempt's); NOERROR or NXDOMAIN clears the upstream. One check
//     runs at a time per upstream, none for ServfailCheckEvery (10 s) after one passed;
//   - every connection failing: the connection faults above, in a row.
//
// What is no fault at all:
//   - the caller's own deadline or cancellation: a caller that gives up only forgets its query
//     ID, which stays reserved for upstream.LateWindow (10 s, about when a recursive server gives
//     up on a dead authority and says SERVFAIL) so that a late reply is read and dropped, not
//     taken for another query's; at most maxOwed (1024) such queries are kept per connection;
//   - a reused connection found closed before the query was sent on it (it is sent on another
//     connection, without using one of the 3 attempts upstream.maxAttempts allows a query whose
//     connection closed under it);
//   - a reload closing the upstream (upstream.ErrClosed).
//
// The health of each upstream is one state machine (health): healthy, suspect, down with a probe
// owed, probing; its doc comment has the transitions, and the rule that an upstream that is down
// always has a probe alive.
//
// # Forwarding is hop by hop
//
// Every query to an upstream, a miss's, a prefetch's, a check's or a probe's, is built by delve
// (upstream.wireQuery): RD=1, AD=1, delve's own EDNS (padding, keepalive). Of the question it is
// asked (Exchange's q), only the question, CD, the DO bit and an EDNS Client Subnet are honoured
// (the cache keys answers by exactly those); a prefetch's query is rebuilt from the cache key.
// Whatever else a client put in its query (RD=0, cookies, padding, NSID, records in the
// additional section) never leaves.
//
// # Serve-stale
//
// With MaxStale, an expired answer at hand is given (Info.Stale, TTL StaleTTL) when the refresh
// fails (RFC 8767 §4): every upstream tried answered SERVFAIL or REFUSED, or errors, or none
// answered within StaleAnswerAfter. A SERVFAIL or REFUSED is never cached.
//
// The timing constants, and why:
//   - Options.Timeout (UCI timeout, default 3 s) is a lookup's whole budget. A flight (the one
//     upstream query identical concurrent questions share) runs to the later of its first
//     caller's deadline and Timeout from its start, and no caller's leaving ends it, so a
//     client's retransmit that joins it gets the answer. A caller whose deadline is the flight's
//     (the DNS listener's, a lookup's) runs the flight in its own goroutine rather than wait for
//     a worker's: its cancellation, not its deadline, then ends the flight, and a caller that
//     joined it asks again. A joiner waits with its own deadline;
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
