package api

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Answer is one resource record of a lookup, in the form of the JSON contract.
type Answer struct {
	Name string `json:"name"`
	Type string `json:"type"`
	TTL  uint32 `json:"ttl"`
	Data string `json:"data"`
}

// Lookup is the result object of the `lookup` method, of `delve --json` and of `ubus call delve lookup`.
type Lookup struct {
	Name      string   `json:"name"`
	Types     []string `json:"types"`
	Rcode     string   `json:"rcode"`
	Answers   []Answer `json:"answers"`
	Addresses []string `json:"addresses"`
	Upstream  string   `json:"upstream"`
	RTTms     float64  `json:"rtt_ms"`
	Cached    bool     `json:"cached"`
	Secure    bool     `json:"secure"`
	// Stale is set when the answer is an expired one, given because no upstream answered
	// (serve-stale, RFC 8767): its TTLs are 30 s.
	Stale bool `json:"stale,omitempty"`
	// Capped is set when the answers were cut to keep a reply small (ubus messages are limited to
	// 1 MiB); AnswersTotal then says how many there were.
	Capped       bool `json:"capped,omitempty"`
	AnswersTotal int  `json:"answers_total,omitempty"`
}

// RecordData is the presentation form of an RR's data: what `dig +short` prints.
func RecordData(rr dns.RR) string {
	hdr := rr.Header().String()
	return strings.TrimPrefix(rr.String(), hdr)
}

// NewLookup builds the lookup object. rtt is the upstream round trip (zero for cached answers).
func NewLookup(name string, types []uint16, rcode int, answers []dns.RR, upstream string, rtt time.Duration, cached, secure bool) *Lookup {
	l := &Lookup{
		Name:      name,
		Types:     make([]string, 0, len(types)),
		Rcode:     RcodeName(rcode),
		Answers:   make([]Answer, 0, len(answers)),
		Addresses: []string{},
		Upstream:  upstream,
		RTTms:     Millis(rtt),
		Cached:    cached,
		Secure:    secure,
	}
	for _, t := range types {
		l.Types = append(l.Types, TypeName(t))
	}
	for _, rr := range answers {
		h := rr.Header()
		l.Answers = append(l.Answers, Answer{Name: h.Name, Type: TypeName(h.Rrtype), TTL: h.Ttl, Data: RecordData(rr)})
		switch v := rr.(type) {
		case *dns.A:
			l.Addresses = append(l.Addresses, v.A.String())
		case *dns.AAAA:
			l.Addresses = append(l.Addresses, v.AAAA.String())
		}
	}
	return l
}

// Cap keeps at most max answers (and the addresses among them), marking the object as capped.
func (l *Lookup) Cap(max int) {
	if len(l.Answers) <= max {
		return
	}
	l.AnswersTotal = len(l.Answers)
	l.Capped = true
	l.Answers = l.Answers[:max]
	l.Addresses = l.Addresses[:0]
	for _, a := range l.Answers {
		if a.Type == "A" || a.Type == "AAAA" {
			l.Addresses = append(l.Addresses, a.Data)
		}
	}
}

// TypeName is the mnemonic of a record type, or TYPEnnn (RFC 3597) when it has none.
func TypeName(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return "TYPE" + strconv.Itoa(int(t))
}

// RcodeName is the mnemonic of a response code.
func RcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return "RCODE" + strconv.Itoa(rc)
}

// MaxTypes is how many record types one lookup may ask for (the command line's TYPE arguments, the
// UCI type list): each type is a query of its own, and a list of thousands would send thousands.
const MaxTypes = 16

// ParseType accepts a type mnemonic in any case ("aaaa") or the RFC 3597 form ("TYPE65"), for a
// lookup: types that are not record types a question can ask for are refused with a sentence that
// says why (see MetaType). ANY is accepted: it is an ordinary question, which a server answers as
// it sees fit (RFC 8482).
func ParseType(s string) (uint16, error) {
	u := strings.ToUpper(s)
	t, ok := dns.StringToType[u]
	if !ok || t == dns.TypeNone {
		n, isNum := strings.CutPrefix(u, "TYPE")
		if !isNum {
			return 0, errors.New("unknown record type " + quoteShort(s))
		}
		v, err := strconv.ParseUint(n, 10, 32)
		switch {
		case err == nil && v >= 1 && v <= 65535:
			t = uint16(v)
		case err == nil || errors.Is(err, strconv.ErrRange):
			return 0, errors.New("record type number " + quoteShort(s) + " is out of range (1-65535)")
		default:
			return 0, errors.New("unknown record type " + quoteShort(s))
		}
	}
	if why := MetaType(t); why != "" {
		return 0, errors.New("record type " + quoteShort(s) + " " + why + ", not a record type a lookup can ask for")
	}
	return t, nil
}

// quoteShort quotes s for a message, cut after 32 bytes: an error need not echo a whole
// hostile argument.
func quoteShort(s string) string {
	if len(s) <= 32 {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:32]) + "…"
}

// MetaType says what t is when it is not a type a lookup may ask for, else "". Refused are the
// pseudo-record OPT, the meta and question types (RFC 6895 §3.1: 128-255, with TKEY, TSIG, IXFR,
// AXFR, MAILB and MAILA) except ANY, and the reserved 0 and 65535.
func MetaType(t uint16) string {
	switch {
	case t == dns.TypeOPT:
		return "is the EDNS(0) pseudo-record (RFC 6891)"
	case t == dns.TypeTKEY || t == dns.TypeTSIG:
		return "is a transaction-security meta-type"
	case t == dns.TypeAXFR || t == dns.TypeIXFR:
		return "asks for a zone transfer"
	case t == dns.TypeMAILA || t == dns.TypeMAILB:
		return "is an obsolete mailbox meta-query"
	case t == dns.TypeANY:
		return ""
	case t >= 128 && t <= 255:
		return "is in the range kept for meta and question types (128-255)"
	case t == dns.TypeNone || t == dns.TypeReserved:
		return "is reserved"
	}
	return ""
}
