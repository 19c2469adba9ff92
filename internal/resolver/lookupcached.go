package resolver

import "github.com/miekg/dns"

// LookupCached is Lookup of one type answered from the cache alone, without waiting for anything,
// for a front end that answers cached lookups in the goroutine that read them: ok is false when
// the answer is not cached, and nothing is counted then (the Lookup that follows counts the miss).
// types must hold one type; it is the Result's.
func (r *Resolver) LookupCached(name string, types []uint16) (res *Result, ok bool) {
	if len(types) != 1 {
		return nil, false
	}
	q := new(dns.Msg)
	q.SetQuestion(name, types[0])
	m, info, ok := r.Cached(q)
	if !ok {
		return nil, false
	}
	res, err := merge(name, types, []typeReply{{msg: m, info: info}})
	return res, err == nil
}
