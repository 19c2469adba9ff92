package resolver

import (
	"context"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Result is the merged answer of a lookup of one name for one or more record types.
type Result struct {
	Name     string   // fully qualified, as asked
	Types    []uint16 // as asked
	Rcode    int
	Answers  []dns.RR // TTLs aged by the time spent in the cache; duplicates removed
	Upstream string   // the upstream that answered (the first type's, when they differ)
	RTT      time.Duration
	Cached   bool // every type came from the cache
	Secure   bool // every reply had the AD bit
	Stale    bool // some type was answered from an expired entry (serve-stale, Info.Stale)
}

// Lookup asks for name (fully qualified) and each type in types, in parallel, and merges the
// replies. via names an upstream to use instead of the strategy. When only some types fail, the
// others' answers are returned; when all fail, the first error is.
func (r *Resolver) Lookup(ctx context.Context, name string, types []uint16, via string) (*Result, error) {
	replies := make([]typeReply, len(types))
	if len(types) == 1 {
		replies[0] = r.lookupType(ctx, name, types[0], via)
	} else {
		var wg sync.WaitGroup
		for i, t := range types {
			wg.Add(1)
			go func() {
				defer wg.Done()
				replies[i] = r.lookupType(ctx, name, t, via)
			}()
		}
		wg.Wait()
	}
	return merge(name, types, replies)
}

type typeReply struct {
	_    [0]func() // never compared: the binary then carries no equality function for it
	msg  *dns.Msg
	info Info
	err  error
}

func (r *Resolver) lookupType(ctx context.Context, name string, t uint16, via string) typeReply {
	q := new(dns.Msg)
	q.SetQuestion(name, t)
	m, info, err := r.Exchange(ctx, q, via)
	return typeReply{msg: m, info: info, err: err}
}

func merge(name string, types []uint16, replies []typeReply) (*Result, error) {
	res := &Result{Name: name, Types: types, Cached: true, Secure: true, Rcode: -1}
	var firstErr error
	ok := 0
	// The keys of the records kept, made once there is a second record to compare: a lookup of
	// one record (most cached A or AAAA answers) then packs no key and makes no map.
	var seen map[string]bool
	var buf []byte
	for _, tr := range replies {
		if tr.err != nil {
			if firstErr == nil {
				firstErr = tr.err
			}
			continue
		}
		ok++
		m := tr.msg
		if res.Upstream == "" {
			res.Upstream = tr.info.Upstream
		}
		res.RTT = max(res.RTT, tr.info.RTT)
		res.Cached = res.Cached && tr.info.Cached
		res.Stale = res.Stale || tr.info.Stale
		res.Secure = res.Secure && m.AuthenticatedData
		res.Rcode = mergeRcode(res.Rcode, m.Rcode)
		for _, rr := range m.Answer {
			if len(res.Answers) == 0 {
				res.Answers = append(res.Answers, rr)
				continue
			}
			var k string
			if seen == nil {
				seen = make(map[string]bool, len(m.Answer)+1)
				k, buf = rrKey(res.Answers[0], buf)
				seen[k] = true
			}
			if k, buf = rrKey(rr, buf); !seen[k] {
				seen[k] = true
				res.Answers = append(res.Answers, rr)
			}
		}
	}
	if ok == 0 {
		return nil, firstErr
	}
	if len(res.Answers) > 0 {
		res.Rcode = dns.RcodeSuccess
	}
	return res, nil
}

// mergeRcode keeps the most telling code: an answer beats NXDOMAIN, which beats a failure.
func mergeRcode(a, b int) int {
	rank := func(rc int) int {
		switch rc {
		case -1:
			return 0
		case dns.RcodeSuccess:
			return 3
		case dns.RcodeNameError:
			return 2
		default:
			return 1
		}
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// rrKey says what makes two records the same record: owner name (case-insensitive), class, type
// and data; not the TTL. It is the record's wire form, uncompressed, with the owner lower-cased and
// the TTL zeroed, so names in the data compare as written. buf is scratch space, returned for the
// next call. (dns.IsDuplicate says the same through a method of each record type, which the
// linker then keeps; see clone.)
func rrKey(rr dns.RR, buf []byte) (string, []byte) {
	if n := dns.Len(rr); cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:cap(buf)]
	end, err := dns.PackRR(rr, buf, 0, nil, false)
	if err != nil {
		return "unpackable " + rr.String(), buf
	}
	i := 0 // past the owner name's labels
	for i < end && buf[i] != 0 {
		i += int(buf[i]) + 1
	}
	i++
	if i+8 > end {
		return "unpackable " + rr.String(), buf
	}
	for j := range buf[:i] {
		if 'A' <= buf[j] && buf[j] <= 'Z' { // label lengths are at most 63: never a letter
			buf[j] += 'a' - 'A'
		}
	}
	clear(buf[i+4 : i+8]) // the TTL, after type and class
	return string(buf[:end]), buf
}
