package api

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/delvedns/delve/internal/json"
	"github.com/miekg/dns"
)

func mustRR(t testing.TB, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("dns.NewRR(%q): %v", s, err)
	}
	return rr
}

// lookupResults are results whose objects take every branch of AppendJSON: each record type it
// formats itself and others, text that needs escaping, odd addresses, caps, flags and round trips.
func lookupResults(t testing.TB) []*LookupResult {
	a := func(ip net.IP) dns.RR {
		return &dns.A{Hdr: dns.RR_Header{Name: "a.test.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 7}, A: ip}
	}
	aaaa := func(ip net.IP) dns.RR {
		return &dns.AAAA{Hdr: dns.RR_Header{Name: "a.test.", Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: 7}, AAAA: ip}
	}
	mixed := []dns.RR{
		mustRR(t, "www.openwrt.org. 300 IN CNAME wiki.openwrt.org."),
		mustRR(t, "wiki.openwrt.org. 300 IN A 139.59.209.225"),
		mustRR(t, "wiki.openwrt.org. 300 IN AAAA 2a03:b0c0:3:d0::1af1:1"),
		mustRR(t, "wiki.openwrt.org. 300 IN AAAA ::ffff:192.0.2.1"),
		mustRR(t, `t.test. 60 IN TXT "<b>&amp;</b>" "quote\"back\\slash" "ctl\009\127" "\195\188ber" "\226\128\168"`),
		mustRR(t, "t.test. 60 IN MX 10 mail.t.test."),
		mustRR(t, `we\ ird\.na\"me.test. 1 IN A 192.0.2.9`),
		mustRR(t, "t.test. 60 IN TYPE65280 \\# 3 010203"),
		mustRR(t, `t.test. 60 IN CAA 0 issue "letsencrypt.org"`),
		mustRR(t, "t.test. 4294967295 IN SRV 0 5 443 s.t.test."),
		a(nil), a(net.IP{192, 0, 2, 1}), a(net.ParseIP("192.0.2.2")), a(net.ParseIP("2001:db8::1")), a(net.IP{1, 2, 3}),
		aaaa(nil), aaaa(net.IP{192, 0, 2, 3}), aaaa(net.ParseIP("2001:db8::2")), aaaa(net.IP{1, 2, 3, 4, 5}),
	}
	var many []dns.RR
	for i := range 300 {
		many = append(many, mixed[i%len(mixed)])
	}
	rs := []*LookupResult{
		{Name: "openwrt.org.", Types: []uint16{dns.TypeA}, Rcode: dns.RcodeSuccess,
			Answers: mixed[1:2], Upstream: "quad9", Cached: true},
		{Name: "nx.test.", Types: []uint16{dns.TypeA, dns.TypeAAAA}, Rcode: dns.RcodeNameError, Upstream: "cloudflare",
			RTT: 12345678 * time.Nanosecond, Secure: true},
		{Name: "t.test.", Types: []uint16{dns.TypeTXT, 65280, 0, dns.TypeHTTPS}, Rcode: 4095, Answers: mixed,
			Upstream: `odd "name" <&>`, RTT: 3 * time.Second, Stale: true, Max: 256},
		{Name: "many.test.", Types: []uint16{dns.TypeA}, Answers: many, Max: 256, Upstream: "u"},
		{Name: "many.test.", Types: []uint16{dns.TypeA}, Answers: many, Max: 3},
		{Name: "many.test.", Types: []uint16{dns.TypeA}, Answers: many},
		{Name: "many.test.", Answers: many[:256], Max: 256},
		{Name: "", RTT: time.Microsecond, Rcode: -1},
		{Name: "ünïcode\x00\xff.", RTT: 10000 * time.Hour},
	}
	for i := range many {
		rs = append(rs, &LookupResult{Name: "one.test.", Types: []uint16{dns.TypeANY}, Answers: many[i : i+1],
			Max: i % 2, RTT: time.Duration(i) * 1777 * time.Microsecond})
	}
	return rs
}

// TestLookupResultJSON: what the socket writes for a lookup is what encoding/json writes for the
// lookup object, byte for byte, and encoding/json writes the same for the result itself (ubus).
func TestLookupResultJSON(t *testing.T) {
	for i, r := range lookupResults(t) {
		want, err := json.Marshal(r.Lookup())
		if err != nil {
			t.Fatal(err)
		}
		got := r.AppendJSON([]byte("prefix"))
		if !bytes.Equal(got[len("prefix"):], want) {
			t.Errorf("result %d: AppendJSON wrote\n%s\nencoding/json writes\n%s", i, got[len("prefix"):], want)
		}
		viaMarshal, err := json.Marshal(r)
		if err != nil || !bytes.Equal(viaMarshal, want) {
			t.Errorf("result %d: json.Marshal(result) = %s, %v; want %s", i, viaMarshal, err, want)
		}
	}
}

// FuzzLookupResultJSON holds AppendJSON to encoding/json on records made of arbitrary text and
// arbitrary wire data.
func FuzzLookupResultJSON(f *testing.F) {
	f.Add("name.test.", "txt \x00 <&> \"\\ \xff\u2028", []byte{192, 0, 2, 1}, uint32(5), int64(1500))
	f.Fuzz(func(t *testing.T, name, text string, raw []byte, ttl uint32, rttMicros int64) {
		h := func(rrtype uint16) dns.RR_Header {
			return dns.RR_Header{Name: name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: ttl}
		}
		answers := []dns.RR{
			&dns.TXT{Hdr: h(dns.TypeTXT), Txt: []string{text, name}},
			&dns.A{Hdr: h(dns.TypeA), A: net.IP(raw)},
			&dns.AAAA{Hdr: h(dns.TypeAAAA), AAAA: net.IP(raw)},
			&dns.CNAME{Hdr: h(dns.TypeCNAME), Target: text},
			&dns.RFC3597{Hdr: h(uint16(ttl)), Rdata: text},
		}
		for max := range 3 {
			r := &LookupResult{Name: name, Types: []uint16{uint16(ttl), dns.TypeA}, Rcode: int(ttl % 30), Answers: answers,
				Upstream: text, RTT: time.Duration(rttMicros) * time.Microsecond, Cached: ttl%2 == 0, Stale: ttl%3 == 0, Max: max}
			want, err := json.Marshal(r.Lookup())
			if err != nil {
				t.Fatal(err)
			}
			if got := r.AppendJSON(nil); !bytes.Equal(got, want) {
				t.Fatalf("AppendJSON wrote\n%s\nencoding/json writes\n%s", got, want)
			}
		}
	})
}

// BenchmarkLookupResult is the lookup object of a cached A record, built and encoded as the socket
// did, and written by AppendJSON as it does.
func BenchmarkLookupResult(b *testing.B) {
	r := &LookupResult{Name: "h7.bench.delve.test.", Types: []uint16{dns.TypeA}, Rcode: dns.RcodeSuccess,
		Answers: []dns.RR{mustRR(b, "h7.bench.delve.test. 300 IN A 198.18.0.7")}, Upstream: "bench", Cached: true, Max: 256}
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			json.Marshal(r.Lookup())
		}
	})
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for b.Loop() {
			buf = r.AppendJSON(buf[:0])
		}
	})
}
