package testenv

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func soaLine(zone string) string { return fmt.Sprintf("%s %d IN SOA %s", zone, SOATTL, SOA) }

func rrLines(name, typ string, data ...string) []string {
	out := make([]string, len(data))
	for i, d := range data {
		out[i] = fmt.Sprintf("%s %d IN %s %s", name, TTL, typ, d)
	}
	return out
}

func recordLines(rrs []Record) []string {
	out := make([]string, len(rrs))
	for i, rr := range rrs {
		out[i] = rr.String()
	}
	return out
}

// TestUnboundZone asks the real unbound for every name of the test zone with kdig over DoT and
// checks rcode, answer and authority exactly: this is what the package doc promises.
func TestUnboundZone(t *testing.T) {
	t.Parallel()
	u := UnboundT(t, UnboundOptions{})
	tests := []struct {
		name, qname, qtype string
		rcode              string
		answer, authority  []string
	}{
		{"A", NameA, "A", "NOERROR", rrLines(NameA, "A", AddrA), nil},
		{"AAAA", NameA, "AAAA", "NOERROR", rrLines(NameA, "AAAA", AddrAAAA), nil},
		{"NODATA", NameA, "MX", "NOERROR", nil, []string{soaLine(Zone)}},
		{"NXDOMAIN", NameMissing, "A", "NXDOMAIN", nil, []string{soaLine(Zone)}},
		{"NXDOMAIN deep", "x.y.missing.delve.test.", "AAAA", "NXDOMAIN", nil, []string{soaLine(Zone)}},
		{"multi", NameMulti, "A", "NOERROR", rrLines(NameMulti, "A", MultiAddrs...), nil},
		{"MX", Zone, "MX", "NOERROR", rrLines(Zone, "MX", MXData), nil},
		{"NS", Zone, "NS", "NOERROR", rrLines(Zone, "NS", NS), nil},
		{"SOA", Zone, "SOA", "NOERROR", []string{soaLine(Zone)}, nil},
		{"NS address", NS, "A", "NOERROR", rrLines(NS, "A", NSAddr), nil},
		{"TLS name", TLSName + ".", "A", "NOERROR", rrLines(TLSName+".", "A", "127.0.0.1"), nil},
		{"TXT", NameTXT, "TXT", "NOERROR", rrLines(NameTXT, "TXT", TXTData), nil},
		// unbound 1.17 does not follow a CNAME inside local data: only the CNAME comes back.
		{"CNAME for A", NameCNAME, "A", "NOERROR", rrLines(NameCNAME, "CNAME", NameA), nil},
		{"CNAME for AAAA", NameCNAME, "AAAA", "NOERROR", rrLines(NameCNAME, "CNAME", NameA), nil},
		{"CNAME", NameCNAME, "CNAME", "NOERROR", rrLines(NameCNAME, "CNAME", NameA), nil},
		{"big", NameBig, "A", "NOERROR", rrLines(NameBig, "A", BigAddrs()...), nil},
		{"bigtxt", NameBigTXT, "TXT", "NOERROR", rrLines(NameBigTXT, "TXT", BigTXT()...), nil},
		{"wild", WildName("x1"), "A", "NOERROR", rrLines(WildName("x1"), "A", WildAddr), nil},
		{"wild deep", WildName("a.b.c"), "A", "NOERROR", rrLines(WildName("a.b.c"), "A", WildAddr), nil},
		{"wild apex", WildZone, "A", "NOERROR", rrLines(WildZone, "A", WildAddr), nil},
		// A redirect zone has no SOA of its own, so its NODATA carries no authority.
		{"wild NODATA", WildName("x1"), "AAAA", "NOERROR", nil, nil},
		{"PTR", NamePTR, "PTR", "NOERROR", rrLines(NamePTR, "PTR", NameA), nil},
		{"PTR NXDOMAIN", "2." + ReverseZone, "PTR", "NXDOMAIN", nil, []string{soaLine(ReverseZone)}},
		// unbound's local zones do not answer ANY: NODATA.
		{"ANY", Zone, "ANY", "NOERROR", nil, []string{soaLine(Zone)}},
		{"no bench names", BenchName(0), "A", "NXDOMAIN", nil, []string{soaLine(Zone)}},
		{"outside refused", "example.com.", "A", "REFUSED", nil, nil},
		{"root refused", ".", "NS", "REFUSED", nil, nil},
		{"localhost built in", "localhost.", "A", "NOERROR", []string{"localhost. 10800 IN A 127.0.0.1"}, nil},
		{"other test name", "other.test.", "A", "NXDOMAIN", nil,
			[]string{"test. 10800 IN SOA localhost. nobody.invalid. 1 3600 1200 604800 10800"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := KdigT(t, u, tt.qname, tt.qtype)
			if r.Rcode != tt.rcode {
				t.Errorf("rcode %s, want %s", r.Rcode, tt.rcode)
			}
			if !r.HasFlag("aa") || !r.HasFlag("qr") {
				t.Errorf("flags %v, want qr and aa", r.Flags)
			}
			if got := recordLines(r.Answer); !slices.Equal(got, tt.answer) {
				t.Errorf("answer\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.answer, "\n"))
			}
			if got := recordLines(r.Authority); !slices.Equal(got, tt.authority) {
				t.Errorf("authority\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.authority, "\n"))
			}
			if len(r.Additional) != 0 {
				t.Errorf("additional section %v, want none (minimal-responses)", r.Additional)
			}
		})
	}
}

func TestZoneData(t *testing.T) {
	if n := len(BigAddrs()); n != BigCount {
		t.Errorf("BigAddrs has %d addresses, want %d", n, BigCount)
	}
	size := 0
	for _, txt := range BigTXT() {
		size += len(txt) - 2
	}
	if size <= 4096 {
		t.Errorf("BigTXT holds %d bytes, want more than 4096", size)
	}
	for i, want := range map[int]string{0: "198.18.0.0", 1: "198.18.0.1", 256: "198.18.1.0", MaxBenchNames - 1: "198.19.255.255"} {
		if got := BenchAddr(i); got != want {
			t.Errorf("BenchAddr(%d) = %s, want %s", i, got, want)
		}
	}
	// The CI check rejects private ranges in tests; the zone must not use them either.
	addrs := append([]string{AddrA, AddrAAAA, NSAddr, WildAddr, BenchAddr(0), BenchAddr(MaxBenchNames - 1)}, MultiAddrs...)
	for _, a := range append(addrs, BigAddrs()...) {
		if netip.MustParseAddr(a).IsPrivate() {
			t.Errorf("zone address %s is in a private range", a)
		}
	}
}
