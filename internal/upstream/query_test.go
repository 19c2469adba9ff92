package upstream

import (
	"testing"

	"github.com/miekg/dns"
)

// wireQuery is the query wireFrame sends for q, without its length prefix.
func wireQuery(q *dns.Msg) ([]byte, error) {
	f, err := wireFrame(q)
	if err != nil {
		return nil, err
	}
	return f[2:], nil
}

// TestCleanReply: padding and keepalive leave the reply, other options stay, and nothing the
// reply no longer shows stays reachable from it (a cached reply would keep it alive).
func TestCleanReply(t *testing.T) {
	m := new(dns.Msg)
	m.SetQuestion("a.delve.test.", dns.TypeA)
	m.Response = true
	opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	nsid := &dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: "6e73"}
	opt.Option = []dns.EDNS0{
		&dns.EDNS0_PADDING{Padding: make([]byte, 400)},
		nsid,
		&dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE, Timeout: 300},
	}
	m.Extra = append(m.Extra, opt)

	ka, ok := cleanReply(m)
	if !ok || ka != 300 {
		t.Errorf("keepalive = %d, %v; want 300, true", ka, ok)
	}
	if len(opt.Option) != 1 || opt.Option[0] != nsid {
		t.Errorf("options left: %v, want only the NSID", opt.Option)
	}
	for i, o := range opt.Option[len(opt.Option):cap(opt.Option)] {
		if o != nil {
			t.Errorf("a dropped option is still referenced past the end, at %d: %v", len(opt.Option)+i, o)
		}
	}
}
