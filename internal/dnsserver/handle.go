package dnsserver

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/resolver"
)

const (
	// ednsSize is the UDP payload size delve advertises and the most it sends over UDP (the DNS
	// flag day 2020 value: no IP fragmentation on any common path).
	ednsSize = 1232
	// minUDPSize is what a client without EDNS can take (RFC 1035 §4.2.1), and the least an
	// EDNS client is assumed to take whatever it says (RFC 6891 §6.2.3).
	minUDPSize = 512
	// paddingBlock is the RFC 8467 §4.1 block size for padded responses.
	paddingBlock = 468
)

// Extended DNS Error codes (RFC 8914 §4).
const (
	edeOther          = 0
	edeProhibited     = 18
	edeNotSupported   = 21
	edeNoReachableAut = 22
	edeNetworkError   = 23
	edeInvalidData    = 24
)

// query is one parsed query and where it came from.
type query struct {
	_      [0]func() // never compared: the binary then carries no equality function for it
	msg    *dns.Msg
	opt    *dns.OPT // the client's, nil without EDNS
	udp    bool
	client netip.Addr
}

// udpLimit is the largest UDP reply the client can take.
func (q *query) udpLimit() int {
	if q.opt == nil {
		return minUDPSize
	}
	return min(max(int(q.opt.UDPSize()), minUDPSize), ednsSize)
}

func (q *query) do() bool { return q.opt != nil && q.opt.Do() }

func (q *query) transport() string {
	if q.udp {
		return "udp"
	}
	return "tcp"
}

// parse reads a packet into a query. It returns nil for what is dropped as malformed: anything
// that does not unpack, and responses (a server never answers a response: that is how loops and
// reflection start).
func parse(pkt []byte) *dns.Msg {
	if len(pkt) < 12 || pkt[2]&0x80 != 0 { // QR set
		return nil
	}
	m := new(dns.Msg)
	if err := m.Unpack(pkt); err != nil {
		return nil
	}
	// miekg/dns stops quietly at the end of a short message: the header's counts must match.
	if int(binary.BigEndian.Uint16(pkt[4:])) != len(m.Question) ||
		int(binary.BigEndian.Uint16(pkt[6:])) != len(m.Answer) ||
		int(binary.BigEndian.Uint16(pkt[8:])) != len(m.Ns) ||
		int(binary.BigEndian.Uint16(pkt[10:])) != len(m.Extra) {
		return nil
	}
	return m
}

// policy returns delve's own reply to a query it will not forward, or nil for one to forward.
// It also fills in q.opt.
func (s *Server) policy(q *query) *dns.Msg {
	m := q.msg
	nopt := 0
	for _, rr := range m.Extra {
		if opt, ok := rr.(*dns.OPT); ok {
			q.opt = opt
			nopt++
		}
	}
	switch {
	case m.Opcode != dns.OpcodeQuery:
		// NOTIFY, UPDATE, IQUERY, DSO... are for authoritative servers.
		return q.refuse(dns.RcodeNotImplemented, edeNotSupported, "only standard queries are forwarded")
	case nopt > 1 || (q.opt != nil && q.opt.Hdr.Name != "."):
		q.opt = nil // RFC 6891 §6.1.1: FORMERR, and no OPT in it
		return q.refuse(dns.RcodeFormatError, -1, "")
	case len(m.Question) != 1:
		return q.refuse(dns.RcodeFormatError, -1, "")
	case q.opt != nil && q.opt.Version() != 0:
		return q.refuse(dns.RcodeBadVers, -1, "")
	case m.Question[0].Qclass != dns.ClassINET:
		// CHAOS (version.bind, id.server) would describe the upstream, not delve; other
		// classes are not served by public resolvers.
		return q.refuse(dns.RcodeRefused, edeNotSupported, "only class IN is forwarded")
	}
	switch m.Question[0].Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		return q.refuse(dns.RcodeRefused, edeNotSupported, "zone transfers are not forwarded")
	case dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeMAILA, dns.TypeMAILB:
		return q.refuse(dns.RcodeRefused, edeNotSupported, "meta query types are not forwarded")
	}
	return nil
}

// refuse builds delve's own reply with rcode and, when the client speaks EDNS and ede >= 0, an
// Extended DNS Error.
func (q *query) refuse(rcode int, ede int, text string) *dns.Msg {
	r := new(dns.Msg)
	r.SetReply(q.msg)
	r.RecursionAvailable = true
	r.Rcode = rcode
	if rcode == dns.RcodeFormatError {
		r.Question = nil // the question may be what is wrong
	}
	if q.opt != nil {
		opt := replyOPT(q.do())
		if ede >= 0 {
			opt.Option = append(opt.Option, &dns.EDNS0_EDE{InfoCode: uint16(ede), ExtraText: text})
		}
		r.Extra = append(r.Extra, opt)
	}
	return r
}

func replyOPT(do bool) *dns.OPT {
	opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	opt.SetUDPSize(ednsSize)
	opt.SetDo(do)
	return opt
}

// upstreamQuery is the question the resolver is asked for q: the question, the client's CD, and
// EDNS with the client's DO bit, and its Client Subnet only with ForwardECS. The query that goes
// upstream is built from it afresh by upstream.wireQuery (RD=1, AD=1, delve's own EDNS), as is a
// prefetch's from the cache key: the client's RD, cookies, padding, keepalive, NSID and other
// records (TSIG) are hop by hop and never leave.
func (s *Server) upstreamQuery(q *query) *dns.Msg {
	m := q.msg
	if len(m.Answer) == 0 && len(m.Ns) == 0 && (len(m.Extra) == 0 ||
		len(m.Extra) == 1 && q.opt != nil && (s.opts.ForwardECS || !hasOption(q.opt, dns.EDNS0SUBNET))) {
		// A stub's query, with nothing to take out: the resolver reads no more of it than the
		// above (the cache key; upstream.wireQuery's question, CD, DO and Client Subnet), so
		// the query as the client sent it serves, without a copy per miss.
		return m
	}
	u := &dns.Msg{MsgHdr: dns.MsgHdr{
		Id: m.Id, Opcode: dns.OpcodeQuery, RecursionDesired: true,
		CheckingDisabled: m.CheckingDisabled,
	}, Question: m.Question}
	if q.opt == nil {
		return u
	}
	opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	opt.SetUDPSize(ednsSize)
	opt.SetDo(q.opt.Do())
	if s.opts.ForwardECS {
		for _, o := range q.opt.Option {
			if o.Option() == dns.EDNS0SUBNET {
				opt.Option = append(opt.Option, o)
			}
		}
	}
	u.Extra = []dns.RR{opt}
	return u
}

// hasOption reports whether opt carries an option with code.
func hasOption(opt *dns.OPT, code uint16) bool {
	for _, o := range opt.Option {
		if o.Option() == code {
			return true
		}
	}
	return false
}

// answer turns the resolver's reply (or error) into the reply to q: the client's ID, question
// and flags, the upstream's records with their aged TTLs, and EDNS only if the client used it,
// with the upstream's Extended DNS Errors kept. It changes m's header and replaces its sections,
// and changes nothing they hold.
func (s *Server) answer(q *query, m *dns.Msg, err error) *dns.Msg {
	req := q.msg
	if err != nil {
		// An answer that does not parse (a zone's bad record) is passed on as it came when its
		// header, question and framing are sound: a forwarder need not understand every type.
		relay, ok := resolver.Relay(err)
		if !ok {
			ede, text := failureEDE(err)
			return q.refuse(dns.RcodeServerFailure, ede, text)
		}
		m = relay
	}
	m.Id = req.Id
	m.Response = true
	m.Opcode = dns.OpcodeQuery
	m.Authoritative = false // a forwarder's answer is never authoritative
	m.Truncated = false
	m.RecursionDesired = req.RecursionDesired
	m.RecursionAvailable = true
	m.Zero = false
	m.CheckingDisabled = req.CheckingDisabled
	// RFC 6840 §5.8: AD only to a client that showed it understands it (AD or DO in its query);
	// m's AD is the upstream's verdict, asked for with AD=1 whoever filled the cache.
	m.AuthenticatedData = m.AuthenticatedData && (q.do() || req.AuthenticatedData)
	m.Question = req.Question
	// A new additional section: m's may be the resolver's (Resolver), and so may its OPT, which
	// packing would change (miekg/dns writes the extended rcode into it).
	var upEDE []dns.EDNS0
	extra := make([]dns.RR, 0, len(m.Extra)+1)
	for _, rr := range m.Extra {
		if opt, ok := rr.(*dns.OPT); ok {
			for _, o := range opt.Option {
				if o.Option() == dns.EDNS0EDE {
					upEDE = append(upEDE, o)
				}
			}
			continue
		}
		extra = append(extra, rr)
	}
	m.Extra = extra
	if q.opt != nil {
		opt := replyOPT(q.do())
		opt.Option = upEDE
		m.Extra = append(m.Extra, opt)
	} else if m.Rcode > 0xF {
		m.Rcode = dns.RcodeServerFailure // an extended rcode cannot be said without EDNS
	}
	return m
}

// failureEDE is the Extended DNS Error of the SERVFAIL for a lookup that failed with err.
func failureEDE(err error) (ede int, text string) {
	switch {
	case errors.Is(err, resolver.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return edeNoReachableAut, "the upstreams did not answer in time"
	case errors.Is(err, resolver.ErrBadAnswer):
		return edeInvalidData, "the upstream's answer does not parse"
	case errors.Is(err, resolver.ErrNoUpstream):
		return edeNetworkError, "no upstream could answer"
	}
	return edeOther, "the lookup failed"
}

// pack packs reply for q into buf (reusing it when large enough). Over UDP a reply larger than
// the client's buffer is replaced by one with TC set, the question and no records, so that the
// client retries over TCP and never sees a partial RRset (RFC 2181 §9). A client that padded its
// query gets a padded reply (RFC 7830 §4) when it fits.
func (q *query) pack(reply *dns.Msg, buf []byte) ([]byte, error) {
	reply.Compress = true
	buf = buf[:cap(buf)] // PackBuffer uses what len says
	out, err := reply.PackBuffer(buf)
	if err != nil {
		return nil, err
	}
	limit := dns.MaxMsgSize
	if q.udp {
		limit = q.udpLimit()
	}
	if len(out) > limit {
		t := &dns.Msg{MsgHdr: reply.MsgHdr, Question: reply.Question}
		t.Truncated = true
		if opt := reply.IsEdns0(); opt != nil {
			t.Extra = []dns.RR{opt}
		}
		*reply = *t
		if out, err = reply.PackBuffer(buf); err != nil {
			return nil, err
		}
	}
	if q.opt != nil && hasOption(q.opt, dns.EDNS0PADDING) {
		if n := len(out) % paddingBlock; n != 0 && len(out)+4 <= limit {
			pad := min(paddingBlock-n, limit-len(out)) - 4 // option header: code and length
			if pad < 0 {
				pad = 0
			}
			opt := reply.IsEdns0()
			opt.Option = append(opt.Option, &dns.EDNS0_PADDING{Padding: make([]byte, pad)})
			if out, err = reply.PackBuffer(buf); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// account counts a reply and tells OnQuery about it. own is true for delve's own replies
// (policy, rate limit, SERVFAIL after an error), false for the upstream's.
func (s *Server) account(q *query, rcode int, truncated bool, info resolver.Info, own bool) {
	s.stats.answered.Add(1)
	if info.Cached {
		s.stats.cached.Add(1)
	}
	if truncated {
		s.stats.truncated.Add(1)
	}
	if own {
		switch rcode {
		case dns.RcodeRefused:
			s.stats.refused.Add(1)
		case dns.RcodeServerFailure:
			s.stats.servfail.Add(1)
		case dns.RcodeSuccess, dns.RcodeNameError:
			// Not delve's own: an answer that does not parse, passed on as it came.
		default:
			s.stats.formerr.Add(1)
		}
	}
	if s.opts.OnQuery == nil {
		return
	}
	ev := Event{
		Upstream: info.Upstream, RTT: info.RTT, Cached: info.Cached, Truncated: truncated,
		Transport: q.transport(), Client: q.client, Rcode: rcodeString(rcode),
	}
	if len(q.msg.Question) > 0 {
		ev.Name = q.msg.Question[0].Name
		ev.Type = dns.Type(q.msg.Question[0].Qtype).String()
	}
	s.opts.OnQuery(ev)
}

func rcodeString(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return dns.RcodeToString[dns.RcodeServerFailure]
}
