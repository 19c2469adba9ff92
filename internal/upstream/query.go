package upstream

import (
	"encoding/binary"
	"encoding/hex"
	"errors"

	"github.com/miekg/dns"
)

// paddingBlock is the RFC 8467 §4.1 block size for queries.
const paddingBlock = 128

// ednsSize is the UDP payload size advertised in the OPT record (the DNS flag day 2020 value);
// it means nothing on a stream transport but must be present.
const ednsSize = 1232

// ErrBadQuery is returned for a message that cannot be sent: no question, or more than one.
var ErrBadQuery = errors.New("a query must have exactly one question")

// wireFrame packs the query delve sends for q, with the 2-octet length prefix of a stream
// transport (RFC 1035 §4.2.2), into the buffer it is sent from. It is built afresh whatever q
// holds: forwarding is hop by hop. It has q's one question; opcode QUERY and RD (delve is a stub:
// its upstreams recurse, and a recursive server answers RD=0 from a stub with REFUSED); q's CD;
// AD set (RFC 6840 §5.7: a stub that wants the upstream's validation verdict asks with AD=1, and
// the answer's AD is then that verdict whoever asked, so one cached answer serves every client;
// the DNS listener clears AD again for a client that set neither AD nor DO, §5.8); and delve's
// own EDNS(0): UDP size 1232, q's DO bit, the edns-tcp-keepalive option (RFC 7828 §3.2.1: empty
// in queries) and padding to a multiple of 128 octets (RFC 7830, RFC 8467). Of q's EDNS options
// only Client Subnet goes on (the DNS listener leaves it in only with ForwardECS, and the cache
// keys answers by it); q's cookies, padding, keepalive and NSID, and every other record it
// carries, never do.
func wireFrame(q *dns.Msg) ([]byte, error) {
	if len(q.Question) != 1 {
		return nil, ErrBadQuery
	}
	p := new(queryParts)
	m := &p.m
	m.Opcode, m.RecursionDesired, m.AuthenticatedData = dns.OpcodeQuery, true, true
	m.CheckingDisabled = q.CheckingDisabled
	m.Question = q.Question
	opt := &p.opt
	opt.Hdr = dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}
	opt.SetUDPSize(ednsSize)
	opt.Option = p.opts[:0]
	if old := q.IsEdns0(); old != nil {
		opt.SetDo(old.Do())
		for _, o := range old.Option {
			if o.Option() == dns.EDNS0SUBNET {
				opt.Option = append(opt.Option, o)
			}
		}
	}
	p.ka.Code = dns.EDNS0TCPKEEPALIVE
	opt.Option = append(opt.Option, &p.ka, &p.pad)
	p.extra[0] = opt
	m.Extra = p.extra[:]
	n := m.Len()
	if r := n % paddingBlock; r != 0 {
		p.pad.Padding = p.zeros[:paddingBlock-r]
		n += paddingBlock - r
	}
	// PackBuffer wants one octet more than the message, or it allocates a buffer of its own.
	f := make([]byte, 2+n+1)
	w, err := m.PackBuffer(f[2:])
	if err != nil {
		return nil, err
	}
	if &w[0] != &f[2] { // miekg/dns wanted more room after all: it packed into its own buffer
		f = append(f[:2], w...)
	}
	binary.BigEndian.PutUint16(f, uint16(len(w)))
	return f[:2+len(w)], nil
}

// queryParts are the pieces of the message wireFrame packs, in one allocation instead of one
// each: nothing refers to them once it is packed.
type queryParts struct {
	_     [0]func() // never compared: no equality function in the binary
	m     dns.Msg
	opt   dns.OPT
	ka    dns.EDNS0_TCP_KEEPALIVE
	pad   dns.EDNS0_PADDING
	extra [1]dns.RR
	opts  [3]dns.EDNS0 // Client Subnet, keepalive, padding
	zeros [paddingBlock]byte
}

// salvage unpacks a reply that dns.Msg.Unpack refused, keeping each record that does not unpack
// as opaque data (RFC 3597), for MalformedError.Relay. It returns nil unless the header and the
// one question unpack, every record is framed right (its name, fixed fields and data length end
// where the next begins, the last at the end of the message), and each record kept opaque is of
// a type whose data holds no compressed name (RFC 3597 §4 lists those that may), since its
// octets are passed on as they are.
func salvage(raw []byte) *dns.Msg {
	qend := QuestionEnd(raw)
	if qend < 0 {
		return nil
	}
	hq := append([]byte(nil), raw[:qend]...)
	clear(hq[6:12]) // no records: unpack the header and question alone
	m := new(dns.Msg)
	if err := m.Unpack(hq); err != nil || len(m.Question) != 1 {
		return nil
	}
	off := qend
	for i, sec := range []*[]dns.RR{&m.Answer, &m.Ns, &m.Extra} {
		for range binary.BigEndian.Uint16(raw[6+2*i:]) {
			rr, next, err := dns.UnpackRR(raw, off)
			if err != nil {
				if rr, next = opaque(raw, off); rr == nil {
					return nil
				}
			}
			*sec = append(*sec, rr)
			off = next
		}
	}
	if off != len(raw) {
		return nil
	}
	return m
}

// opaque reads the record at off as RFC 3597 opaque data, or returns nil (see salvage).
func opaque(raw []byte, off int) (dns.RR, int) {
	name, off, err := dns.UnpackDomainName(raw, off)
	if err != nil || off+10 > len(raw) {
		return nil, 0
	}
	h := dns.RR_Header{
		Name:     name,
		Rrtype:   binary.BigEndian.Uint16(raw[off:]),
		Class:    binary.BigEndian.Uint16(raw[off+2:]),
		Ttl:      binary.BigEndian.Uint32(raw[off+4:]),
		Rdlength: binary.BigEndian.Uint16(raw[off+8:]),
	}
	off += 10
	end := off + int(h.Rdlength)
	if end > len(raw) {
		return nil, 0
	}
	switch h.Rrtype {
	case dns.TypeOPT, dns.TypeNS, dns.TypeMD, dns.TypeMF, dns.TypeCNAME, dns.TypeSOA, dns.TypeMB,
		dns.TypeMG, dns.TypeMR, dns.TypePTR, dns.TypeMINFO, dns.TypeMX, dns.TypeRP, dns.TypeAFSDB,
		dns.TypeRT, dns.TypeSIG, dns.TypePX, dns.TypeNXT, dns.TypeNAPTR, dns.TypeSRV:
		return nil, 0
	}
	return &dns.RFC3597{Hdr: h, Rdata: hex.EncodeToString(raw[off:end])}, end
}

// QuestionEnd returns the offset just past the question section of a packed message with one
// question, or -1 when it is malformed. A question name is never compressed: nothing precedes it
// that a pointer could refer to.
func QuestionEnd(msg []byte) int {
	if len(msg) < 12 || binary.BigEndian.Uint16(msg[4:]) != 1 {
		return -1
	}
	off := 12
	for {
		if off >= len(msg) {
			return -1
		}
		l := int(msg[off])
		if l == 0 {
			off++
			break
		}
		if l > 63 {
			return -1
		}
		off += 1 + l
	}
	off += 4 // type and class
	if off > len(msg) {
		return -1
	}
	return off
}

// sameQuestion reports whether a reply carries the question q (the packed question section of
// the query): names compare without regard to ASCII case, type and class exactly. A reply with
// no question section matches by ID alone (RFC 7858 §3.3).
func sameQuestion(reply, q []byte) bool {
	if len(reply) < 12 {
		return false
	}
	if binary.BigEndian.Uint16(reply[4:]) == 0 {
		return true
	}
	end := 12 + len(q)
	if len(reply) < end {
		return false
	}
	r := reply[12:end]
	n := len(q) - 4
	// Length octets are below 64 and so never ASCII letters: folding the whole name is safe.
	for i := 0; i < n; i++ {
		a, b := r[i], q[i]
		if a != b && lower(a) != lower(b) {
			return false
		}
	}
	return string(r[n:]) == string(q[n:])
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// cleanReply removes the transport options (padding, keepalive) from a reply, returning the
// server's keepalive timeout when it sent one (RFC 7828 §3.3.1).
func cleanReply(m *dns.Msg) (keepalive uint16, hasKeepalive bool) {
	opt := m.IsEdns0()
	if opt == nil {
		return 0, false
	}
	kept := opt.Option[:0]
	for _, o := range opt.Option {
		switch v := o.(type) {
		case *dns.EDNS0_PADDING:
		case *dns.EDNS0_TCP_KEEPALIVE:
			keepalive, hasKeepalive = v.Timeout, true
		default:
			kept = append(kept, o)
		}
	}
	// The dropped options stay in the backing array past len(kept): clear them, or the cache
	// keeps every reply's padding (often 400 octets, RFC 8467) alive with the message.
	clear(opt.Option[len(kept):])
	opt.Option = kept
	return keepalive, hasKeepalive
}
