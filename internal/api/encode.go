package api

import (
	"net"
	"strconv"
	"time"

	"github.com/delvedns/delve/internal/json"
	"github.com/miekg/dns"
)

// LookupResult is what a lookup object is made of, before it is built. A transport that only
// encodes the object writes it with AppendJSON, which formats each record's text straight into
// the reply instead of building the object's strings and slices and encoding them by reflection:
// that was a fifth of the CPU of a cached lookup over the socket, and most of its allocations.
type LookupResult struct {
	Name     string
	Types    []uint16
	Rcode    int
	Answers  []dns.RR
	Upstream string
	RTT      time.Duration // the upstream round trip; zero for cached answers
	Cached   bool
	Secure   bool
	Stale    bool // see Lookup.Stale
	// Max caps the answers as Lookup.Cap does; zero or less: no cap.
	Max int
}

// Lookup builds the lookup object.
func (r *LookupResult) Lookup() *Lookup {
	l := NewLookup(r.Name, r.Types, r.Rcode, r.Answers, r.Upstream, r.RTT, r.Cached, r.Secure)
	l.Stale = r.Stale
	if r.Max > 0 {
		l.Cap(r.Max)
	}
	return l
}

// MarshalJSON is AppendJSON, for encoding/json.
func (r *LookupResult) MarshalJSON() ([]byte, error) { return r.AppendJSON(nil), nil }

// AppendJSON appends the object's JSON to b: byte for byte what encoding/json writes for
// r.Lookup() (TestLookupResultJSON holds it to that).
func (r *LookupResult) AppendJSON(b []byte) []byte {
	// The writer's methods keep each append in one place: on armv7, built without inlining,
	// every append written out here cost some 100 bytes of the binary.
	w := jsonWriter{b}
	w.raw(`{"name":`)
	w.str(r.Name)
	w.raw(`,"types":[`)
	for i, t := range r.Types {
		if i > 0 {
			w.raw(`,`)
		}
		w.str(TypeName(t))
	}
	w.raw(`],"rcode":`)
	w.str(RcodeName(r.Rcode))
	w.raw(`,"answers":[`)
	answers := r.Answers
	capped := r.Max > 0 && len(answers) > r.Max
	if capped {
		answers = answers[:r.Max]
	}
	for i, rr := range answers {
		h := rr.Header()
		if i > 0 {
			w.raw(`,`)
		}
		w.raw(`{"name":`)
		w.str(h.Name)
		w.raw(`,"type":`)
		w.str(TypeName(h.Rrtype))
		w.raw(`,"ttl":`)
		w.b = strconv.AppendInt(w.b, int64(h.Ttl), 10)
		w.raw(`,"data":`)
		w.data(rr, false)
		w.raw(`}`)
	}
	w.raw(`],"addresses":[`)
	n := 0
	for _, rr := range answers {
		// NewLookup takes the address of every *dns.A and *dns.AAAA, Cap the data of every
		// answer whose type is A or AAAA: the same records, as miekg/dns unpacks them, but not
		// the same text for an IPv4-mapped AAAA or a record without an address.
		_, isA := rr.(*dns.A)
		_, isAAAA := rr.(*dns.AAAA)
		t := rr.Header().Rrtype
		if capped && (t == dns.TypeA || t == dns.TypeAAAA) || !capped && (isA || isAAAA) {
			if n > 0 {
				w.raw(`,`)
			}
			w.data(rr, !capped)
			n++
		}
	}
	w.raw(`],"upstream":`)
	w.str(r.Upstream)
	// Whole microseconds in milliseconds are never below 1e-6 nor above 1e21, where
	// encoding/json would write an exponent.
	w.raw(`,"rtt_ms":`)
	w.b = strconv.AppendFloat(w.b, Millis(r.RTT), 'f', -1, 64)
	if r.Cached {
		w.raw(`,"cached":true`)
	} else {
		w.raw(`,"cached":false`)
	}
	if r.Secure {
		w.raw(`,"secure":true`)
	} else {
		w.raw(`,"secure":false`)
	}
	if r.Stale {
		w.raw(`,"stale":true`)
	}
	if capped {
		w.raw(`,"capped":true,"answers_total":`)
		w.b = strconv.AppendInt(w.b, int64(len(r.Answers)), 10)
	}
	w.raw(`}`)
	return w.b
}

// Millis is a duration in milliseconds with microsecond precision, as rtt_ms gives it.
func Millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// jsonWriter appends the parts of a lookup object's JSON.
type jsonWriter struct{ b []byte }

func (w *jsonWriter) raw(s string) { w.b = append(w.b, s...) }

// str appends s as a JSON string. Text that needs no escaping, which is nearly all a lookup
// holds (names, mnemonics, addresses), is copied; the rest is encoding/json's to escape.
func (w *jsonWriter) str(s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			w.b = append(w.b, q...)
			return
		}
	}
	w.raw(`"`)
	w.raw(s)
	w.raw(`"`)
}

// data appends RecordData(rr) as a JSON string, or with addr the address of an A or AAAA record
// as net.IP's String gives it. Addresses are formatted in place; other records, and the
// IPv4-mapped addresses of AAAA records (which miekg/dns writes as ::ffff:a.b.c.d), are given to
// RecordData.
func (w *jsonWriter) data(rr dns.RR, addr bool) {
	var ip net.IP
	switch v := rr.(type) {
	case *dns.A:
		ip = v.A
	case *dns.AAAA:
		if addr || v.AAAA.To4() == nil {
			ip = v.AAAA
		}
	}
	switch {
	case len(ip) == net.IPv4len || len(ip) == net.IPv6len:
		w.raw(`"`)
		w.b, _ = ip.AppendText(w.b) // cannot fail for 4 or 16 bytes
		w.raw(`"`)
	case addr:
		w.str(ip.String()) // "<nil>", "?" and hex
	default:
		w.str(RecordData(rr))
	}
}
