package resolver

import (
	"reflect"

	"github.com/miekg/dns"
)

// clone returns a copy of a cached reply for a caller to modify: the header, the sections and
// each record's own struct (its header, so that TTLs can be aged) are the copy's; what records
// point to (the rdata's slices, such as a TXT's strings or an OPT's options) stays shared,
// because nothing changes it in place. miekg/dns's Msg.Copy copies that too, through a method
// of each of its ~110 record types, which the linker then keeps: 78 KB of the armv7 binary.
func clone(m *dns.Msg) *dns.Msg {
	c := *m
	c.Question = append([]dns.Question(nil), m.Question...)
	c.Answer = cloneRRs(m.Answer)
	c.Ns = cloneRRs(m.Ns)
	c.Extra = cloneRRs(m.Extra)
	return &c
}

func cloneRRs(rrs []dns.RR) []dns.RR {
	if rrs == nil {
		return nil
	}
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		out[i] = cloneRR(rr)
	}
	return out
}

// cloneRR copies the struct a record points to. Every record type of miekg/dns is a pointer to
// a struct; anything else is returned as it is.
func cloneRR(rr dns.RR) dns.RR {
	v := reflect.ValueOf(rr)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return rr
	}
	c := reflect.New(v.Elem().Type())
	c.Elem().Set(v.Elem())
	return c.Interface().(dns.RR)
}
