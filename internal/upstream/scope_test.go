package upstream

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// badHTTPSRdata is the data of an HTTPS record whose SvcParamKeys are out of order (port, key 3,
// before alpn, key 1): what a zone can publish and a recursive server relays as it came, and what
// miekg/dns refuses to unpack ("svcb keys not in strictly increasing order").
const badHTTPSRdata = "0001" + "00" + "0003" + "0002" + "01bb" + "0001" + "0003" + "026832"

// badHTTPSReply is the packed reply to q with one such record.
func badHTTPSReply(t testing.TB, q *dns.Msg) []byte {
	t.Helper()
	r := new(dns.Msg)
	r.SetReply(q)
	r.Answer = []dns.RR{&dns.RFC3597{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeHTTPS, Class: dns.ClassINET, Ttl: 300}, Rdata: badHTTPSRdata}}
	r.SetEdns0(1232, false)
	raw, err := r.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestZoneBadDataIsRelayable is issue 20's second finding in the upstream package: a reply with
// one record miekg/dns cannot unpack (an HTTPS record with SvcParamKeys out of order) is an
// ErrMalformed error of the lookup, carrying the reply as it came (the record kept as opaque
// data) for a forwarder to pass on. A reply whose header, question or framing is not sound, or
// whose bad record is of a type that may hold compressed names, carries none.
func TestZoneBadDataIsRelayable(t *testing.T) {
	q := query("svcb.delve.test.")
	q.Question[0].Qtype = dns.TypeHTTPS
	good := badHTTPSReply(t, q)
	if err := new(dns.Msg).Unpack(good); err == nil {
		t.Fatal("miekg/dns unpacks the out-of-order SvcParamKeys: the test shows nothing")
	}
	mx := func() []byte {
		r := new(dns.Msg)
		r.SetReply(q)
		r.Answer = []dns.RR{&dns.RFC3597{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeMX, Class: dns.ClassINET, Ttl: 300}, Rdata: "000a" + "c0ff"}}
		raw, _ := r.Pack()
		return raw
	}()
	cases := []struct {
		name  string
		raw   []byte
		relay bool
	}{
		{"an HTTPS record with keys out of order", good, true},
		{"the same with its data cut short", good[:len(good)-14], false},
		{"a header that counts two questions", append(append(append([]byte{}, good[:4]...), 0, 2), good[6:]...), false},
		{"an MX whose exchange points nowhere", mx, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u, err := New(Options{Name: "u", Address: "127.0.0.1", TLSName: "dot.delve.test"})
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			c := &conn{u: u, idle: time.Minute}
			m, err := u.reply(c, q, tc.raw, time.Millisecond)
			var me *MalformedError
			if m != nil || !errors.Is(err, ErrMalformed) || !errors.As(err, &me) {
				t.Fatalf("reply = %v, %v; want a MalformedError", m, err)
			}
			if (me.Relay != nil) != tc.relay {
				t.Fatalf("relay %v, want %v (%v)", me.Relay, tc.relay, err)
			}
			if !tc.relay {
				return
			}
			r := me.Relay
			if r.Id != q.Id || len(r.Question) != 1 || len(r.Answer) != 1 {
				t.Fatalf("relay %v", r)
			}
			o, ok := r.Answer[0].(*dns.RFC3597)
			if !ok || o.Hdr.Rrtype != dns.TypeHTTPS || o.Rdata != badHTTPSRdata || o.Hdr.Ttl != 300 {
				t.Fatalf("the bad record is %v, want it as it came", r.Answer[0])
			}
			packed, err := r.Pack()
			if err != nil {
				t.Fatal(err)
			}
			if !containsHex(packed, badHTTPSRdata) {
				t.Fatalf("the relay packs to %x, without the record's data as it came", packed)
			}
		})
	}
}

func containsHex(b []byte, h string) bool {
	want, _ := hex.DecodeString(h)
	for i := 0; i+len(want) <= len(b); i++ {
		if string(b[i:i+len(want)]) == string(want) {
			return true
		}
	}
	return false
}

// TestForwardingIsHopByHop is issue 20's third finding in the upstream package: whatever the
// query handed to Exchange carries (RD=0, a cookie, NSID, padding, a record in the additional
// section, a large UDP size, opcode and flags), what goes on the wire is built by delve: RD=1,
// AD=1, the caller's CD and DO, delve's own OPT (size 1232, keepalive, padding) and of the
// caller's options only Client Subnet.
func TestForwardingIsHopByHop(t *testing.T) {
	for _, do := range []bool{false, true} {
		q := new(dns.Msg)
		q.SetQuestion("hop.delve.test.", dns.TypeA)
		q.RecursionDesired = false
		q.CheckingDisabled = true
		q.Authoritative = true
		q.Zero = true
		q.SetEdns0(4096, do)
		opt := q.IsEdns0()
		ecs := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: []byte{192, 0, 2, 0}}
		opt.Option = append(opt.Option,
			&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"},
			&dns.EDNS0_NSID{Code: dns.EDNS0NSID},
			&dns.EDNS0_PADDING{Padding: make([]byte, 7)},
			ecs)
		extra, _ := dns.NewRR("extra.delve.test. 60 IN A 192.0.2.9")
		q.Extra = append([]dns.RR{extra}, q.Extra...)
		wire, err := wireQuery(q)
		if err != nil {
			t.Fatal(err)
		}
		m := new(dns.Msg)
		if err := m.Unpack(wire); err != nil {
			t.Fatal(err)
		}
		if !m.RecursionDesired || !m.AuthenticatedData || !m.CheckingDisabled || m.Authoritative || m.Zero || m.Opcode != dns.OpcodeQuery || m.Response {
			t.Errorf("header %+v: want RD, AD and the caller's CD only", m.MsgHdr)
		}
		if len(m.Extra) != 1 || m.IsEdns0() == nil {
			t.Fatalf("additional section %v: want delve's OPT alone", m.Extra)
		}
		o := m.IsEdns0()
		if o.UDPSize() != ednsSize || o.Do() != do {
			t.Errorf("OPT size %d DO %v, want %d and %v", o.UDPSize(), o.Do(), ednsSize, do)
		}
		var codes []uint16
		for _, e := range o.Option {
			codes = append(codes, e.Option())
		}
		if len(codes) != 3 || codes[0] != dns.EDNS0SUBNET || codes[1] != dns.EDNS0TCPKEEPALIVE || codes[2] != dns.EDNS0PADDING {
			t.Errorf("options %v: want Client Subnet, then delve's keepalive and padding", codes)
		}
		if len(wire)%paddingBlock != 0 {
			t.Errorf("%d octets, not padded to %d", len(wire), paddingBlock)
		}
		if binary.BigEndian.Uint16(wire) != 0 {
			t.Errorf("ID %d, want 0 (the connection sets it)", binary.BigEndian.Uint16(wire))
		}
	}
}

// TestOneDroppedConnectionIsOneFault is issue 20's fourth finding in the upstream package: a
// server that reads the queries and closes the connection without answering fails every query
// waiting on it, and that is one connection fault (Faults), counted once per connection however
// many queries waited.
func TestOneDroppedConnectionIsOneFault(t *testing.T) {
	read := make(chan struct{}, 16)
	srv := newFaultServer(t, certOpts{}, func(c *srvConn) {
		for range 2 {
			if _, _, err := c.read(); err != nil {
				return
			}
			read <- struct{}{}
		}
	})
	u := srv.upstream(t, func(o *Options) { o.DialTimeout = 5 * time.Second })
	errs := make(chan error, 2)
	for _, name := range []string{"a.example.", "b.example."} {
		go func() {
			_, err := u.Exchange(ctxT(t, 5*time.Second), query(name))
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; !errors.Is(err, ErrConnClosed) {
			t.Fatalf("err = %v, want ErrConnClosed", err)
		}
	}
	// Every connection the server took and closed is one drop. A retry can have opened one more
	// that is still open (on a busy machine the failed queries return while it is dialled): it
	// is not dropped, so the count waits for the connections to settle.
	var st Stats
	waitFor(t, func() bool {
		st = u.Stats()
		return st.Dropped == uint64(srv.accepted()-st.OpenConns)
	}, "every closed connection counted as dropped")
	if st.Dropped == 0 || u.Faults() != st.Dropped+st.DialFails+st.Stalls {
		t.Fatalf("%d connections dropped, %d accepted, %d open, faults %d: want one fault per connection (%+v)", st.Dropped, srv.accepted(), st.OpenConns, u.Faults(), st)
	}
}
