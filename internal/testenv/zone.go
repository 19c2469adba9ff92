package testenv

import (
	"fmt"
	"net/netip"
	"strings"
)

// The test zone every test agrees on. The package documentation lists what unbound answers for
// each name, as verified with kdig by this package's tests.
const (
	// TLSName is the name in the test unbound's certificate (beside the IP SAN 127.0.0.1).
	TLSName = "dot.delve.test"

	// Zone is the static local zone unbound serves.
	Zone = "delve.test."
	// SOATTL is the TTL of the SOA record, and SOA its data (its minimum is 60 as well).
	SOATTL = 60
	SOA    = "ns.delve.test. hostmaster.delve.test. 2024010101 3600 600 86400 60"
	// NS is the zone's name server; it has an A record NSAddr.
	NS     = "ns.delve.test."
	NSAddr = "192.0.2.53"

	// TTL is the TTL of every record in the zone except the SOA.
	TTL = 300

	// NameA has A AddrA and AAAA AddrAAAA and nothing else: MX there is NODATA.
	NameA    = "a.delve.test."
	AddrA    = "192.0.2.1"
	AddrAAAA = "2001:db8::1"

	// NameMulti has the four A records MultiAddrs.
	NameMulti = "multi.delve.test."

	// Zone has MX MXData.
	MXData = "10 mail.delve.test."

	// NameTXT has one TXT record, TXTData in presentation form (quoted).
	NameTXT = "txt.delve.test."
	TXTData = `"hello world"`

	// NameCNAME is a CNAME to NameA.
	NameCNAME = "www.delve.test."

	// NameBig has BigCount A records, BigAddrs().
	NameBig  = "big.delve.test."
	BigCount = 300

	// NameBigTXT has BigTXTCount TXT records, BigTXT(), more than 4 KB together: too big for UDP
	// even with a 4096-byte EDNS buffer.
	NameBigTXT  = "bigtxt.delve.test."
	BigTXTCount = 20

	// WildZone is a redirect zone: every name under it (WildName) answers A WildAddr, which gives
	// an unlimited supply of distinct names that miss every cache.
	WildZone = "wild.delve.test."
	WildAddr = "192.0.2.99"

	// ReverseZone is the reverse zone of 192.0.2.0/24, with the same SOA and NS as Zone; NamePTR,
	// the reverse name of AddrA, points at NameA.
	ReverseZone = "2.0.192.in-addr.arpa."
	NamePTR     = "1.2.0.192.in-addr.arpa."

	// NameMissing does not exist: NXDOMAIN with the SOA in the authority section.
	NameMissing = "missing.delve.test."

	// BenchZone holds the names BenchName(0..n-1) when UnboundOptions.BenchNames is n.
	BenchZone = "bench.delve.test."
	// MaxBenchNames is how many bench names there can be: one per address in 198.18.0.0/15
	// (RFC 2544, reserved for benchmarks).
	MaxBenchNames = 1 << 17
)

// MultiAddrs are the A records of NameMulti, in the order unbound returns them
// (rrset-roundrobin is off in the test server).
var MultiAddrs = []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"}

// BigAddrs returns the A records of NameBig: 198.51.100.1–150 and 203.0.113.1–150 (both
// documentation ranges), in the order unbound returns them.
func BigAddrs() []string {
	addrs := make([]string, 0, BigCount)
	for _, prefix := range []string{"198.51.100.", "203.0.113."} {
		for i := 1; i <= BigCount/2; i++ {
			addrs = append(addrs, fmt.Sprintf("%s%d", prefix, i))
		}
	}
	return addrs
}

// BigTXT returns the TXT records of NameBigTXT in presentation form (each one quoted string of
// 240 characters), in the order unbound returns them.
func BigTXT() []string {
	txt := make([]string, BigTXTCount)
	for i := range txt {
		head := fmt.Sprintf("chunk-%02d-", i)
		txt[i] = `"` + head + strings.Repeat(string(rune('a'+i%26)), 240-len(head)) + `"`
	}
	return txt
}

// WildName returns label.wild.delve.test., a name that answers A WildAddr.
func WildName(label string) string { return label + "." + WildZone }

// BenchName returns the i-th benchmark name, hI.bench.delve.test.
func BenchName(i int) string { return fmt.Sprintf("h%d.%s", i, BenchZone) }

// BenchAddr returns the A record of BenchName(i): 198.18.0.0 + i.
func BenchAddr(i int) string {
	b := netip.MustParseAddr("198.18.0.0").As4()
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) + uint32(i)
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}).String()
}

// ZoneConfig returns the unbound.conf server: lines that define the test zone.
func ZoneConfig() []string {
	rr := func(name string, ttl int, typ, data string) string {
		return localData(fmt.Sprintf("%s %d IN %s %s", name, ttl, typ, data))
	}
	lines := []string{
		`local-zone: "." refuse`,
		`local-zone: "` + Zone + `" static`,
		rr(Zone, SOATTL, "SOA", SOA),
		rr(Zone, TTL, "NS", NS),
		rr(NS, TTL, "A", NSAddr),
		rr(Zone, TTL, "MX", MXData),
		rr(NameA, TTL, "A", AddrA),
		rr(NameA, TTL, "AAAA", AddrAAAA),
		rr(NameTXT, TTL, "TXT", TXTData),
		rr(NameCNAME, TTL, "CNAME", NameA),
		// The TLS name resolves too, so a client that looks its server up finds it.
		rr(TLSName+".", TTL, "A", "127.0.0.1"),
	}
	for _, a := range MultiAddrs {
		lines = append(lines, rr(NameMulti, TTL, "A", a))
	}
	for _, a := range BigAddrs() {
		lines = append(lines, rr(NameBig, TTL, "A", a))
	}
	for _, t := range BigTXT() {
		lines = append(lines, rr(NameBigTXT, TTL, "TXT", t))
	}
	lines = append(lines,
		`local-zone: "`+WildZone+`" redirect`,
		rr(WildZone, TTL, "A", WildAddr),
		// 2.0.192.in-addr.arpa is one of unbound's default local zones (TEST-NET-1); naming it
		// here replaces the default.
		`local-zone: "`+ReverseZone+`" static`,
		rr(ReverseZone, SOATTL, "SOA", SOA),
		rr(ReverseZone, TTL, "NS", NS),
		rr(NamePTR, TTL, "PTR", NameA),
	)
	return lines
}

// localData quotes an RR for a local-data: line; data with double quotes (TXT) goes in single
// quotes, which unbound's config parser accepts.
func localData(rr string) string {
	if strings.Contains(rr, `"`) {
		return "local-data: '" + rr + "'"
	}
	return `local-data: "` + rr + `"`
}
