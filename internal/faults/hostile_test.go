package faults

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/miekg/dns"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/cli"
	"github.com/delvedns/delve/internal/json"
	"github.com/delvedns/delve/internal/testenv"
)

// The entry points of the hostile-input table.
type entry int

const (
	viaCLI    entry = iota // the delve command line (the real binary; in process when argv cannot carry the input)
	viaSocket              // one JSON-RPC line on the unix socket
	viaWS                  // one WebSocket text frame
	viaRPCD                // stdin of `delve rpcd call METHOD`
	viaUCI                 // the configuration file, reloaded by the reload method
	viaDNS                 // one UDP packet to the plain DNS listener (main.listen)
	entries
)

var entryNames = [entries]string{"cli", "socket", "websocket", "rpcd", "uci", "dns"}

// outcome is what an entry point must make of an input: refuse it with a code (and a message
// that names the problem), accept it, or, for the transports that cannot answer, close or drop.
type outcome struct {
	na    string   // why the input cannot reach this entry point; empty: it can
	ok    bool     // accepted: a result (the command line: exit 0 or 1; uci: reloaded)
	code  api.Code // the error code (socket, WebSocket, rpcd; uci: config_error)
	exit  int      // the command line's exit status
	msg   string   // a fragment of the error message (stderr for the command line)
	close int      // the WebSocket is closed with this code instead of answered
	rcode int      // DNS: the reply's rcode
	drop  bool     // DNS: no reply at all (malformed packets are dropped)
}

func na(why string) outcome                { return outcome{na: why} }
func accepted() outcome                    { return outcome{ok: true} }
func refused(c api.Code, m string) outcome { return outcome{code: c, msg: m} }
func usage(m string) outcome               { return outcome{exit: cli.ExitUsage, msg: m} }
func badReload(m string) outcome           { return outcome{code: api.CodeConfig, msg: m} }
func rcode(rc int) outcome                 { return outcome{rcode: rc} }
func dropped() outcome                     { return outcome{drop: true} }
func wsClosed(code int) outcome            { return outcome{close: code} }
func bad(m string) outcome                 { return refused(api.CodeBadRequest, m) }

// hostileInput is one row: how the input reaches each entry point, and what must come of it.
type hostileInput struct {
	name  string
	cli   []string // arguments after the common ones
	argv  bool     // false: argv cannot carry it; cli.Run in this process instead
	rpc   []byte   // the message for the socket and the WebSocket
	rpcd  []byte   // stdin of `delve rpcd call lookup` (or rpcdMethod)
	rpcdM string
	uci   func(good string) string
	dns   []byte
	want  [entries]outcome
}

// jstr is s as a JSON string literal that keeps invalid UTF-8 as it is (encoding/json would
// replace it): only quotes, backslashes and control characters are escaped.
func jstr(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func rpcLookup(params string) []byte {
	return []byte(`{"jsonrpc":"2.0","id":1,"method":"lookup","params":` + params + `}`)
}

// dnsPacket is a query with the given raw labels (any octets) and type.
func dnsPacket(qtype uint16, labels ...string) []byte {
	b := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	for _, l := range labels {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	b = append(b, 0)
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, qtype), dns.ClassINET)
}

// withUpstream adds an upstream section whose tls_name is name (the one name a UCI file holds).
func withUpstream(name string) func(string) string {
	return func(good string) string {
		return good + "\nconfig upstream 'hostile'\n\toption address '127.0.0.1'\n\toption tls_name '" + name + "'\n"
	}
}

// withType replaces the type list with typ.
func withType(typ string) func(string) string {
	return func(good string) string { return strings.Replace(good, "list type 'A'", "list type '"+typ+"'", 1) }
}

func whole(text string) func(string) string { return func(string) string { return text } }

// nameRow is an input that is a name: the command line's NAME, the lookup's name, the tls_name
// of an upstream in the file, the question of a DNS query.
func nameRow(title, name string, argv bool, dnsLabels []string, want [entries]outcome) hostileInput {
	r := hostileInput{name: title, cli: []string{name}, argv: argv, rpc: rpcLookup(`{"name":` + jstr(name) + `}`),
		rpcd: []byte(`{"name":` + jstr(name) + `}`), uci: withUpstream(name), want: want}
	if dnsLabels != nil {
		r.dns = dnsPacket(dns.TypeA, dnsLabels...)
	}
	return r
}

// typeRow is an input that is a record type, for the name a.delve.test; qtype, when not zero,
// is the number a DNS query carries.
func typeRow(title, typ string, qtype uint16, want [entries]outcome) hostileInput {
	r := hostileInput{name: title, cli: []string{"a.delve.test", typ}, argv: true,
		rpc:  rpcLookup(`{"name":"a.delve.test","type":` + jstr(typ) + `}`),
		rpcd: []byte(`{"name":"a.delve.test","type":` + jstr(typ) + `}`), uci: withType(typ), want: want}
	if qtype != 0 {
		r.dns = dnsPacket(qtype, "a", "delve", "test")
	}
	return r
}

// rawRow is an input that is a message: for the socket and the WebSocket, and (rpcd) stdin.
func rawRow(title string, rpc, rpcd []byte, want [entries]outcome) hostileInput {
	return hostileInput{name: title, rpc: rpc, rpcd: rpcd, want: want}
}

const (
	noArgv    = "argv cannot carry it"
	noName    = "no name or type here"
	oneType   = "a DNS question carries one 16-bit type"
	noJSON    = "not JSON"
	noWire    = "the DNS wire format cannot express it"
	envelope  = "the bridge writes the envelope itself"
	notAValue = "not a value of the file"
)

func hostileInputs() []hostileInput {
	big := func(n int) string { return strings.Repeat("a", n) }
	tenMiB, oneMB := 10<<20, 1<<20
	overLine := jsonrpcMaxMessage + 1
	deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	var batch strings.Builder
	batch.WriteString("[")
	for i := range 10000 {
		if i > 0 {
			batch.WriteString(",")
		}
		batch.WriteString("{}")
	}
	batch.WriteString("]")
	garbage := make([]byte, 512)
	for i := range garbage {
		garbage[i] = byte(i*131+7) | 0x80 // no newline: the socket reads lines
	}
	garbage[17], garbage[99] = 0, 0x1b
	manyTypes := make([]string, 0, 1000)
	for i := range 1000 {
		manyTypes = append(manyTypes, "TYPE"+strconv.Itoa(1000+i))
	}
	qd10k := func() []byte {
		b := []byte{0x12, 0x34, 0x01, 0x00, 0x27, 0x10, 0, 0, 0, 0, 0, 0} // QDCOUNT 10000
		for range 10000 {
			b = append(b, 0, 0, 1, 0, 1) // . A: 10,000 fit in one UDP datagram
		}
		return b
	}()
	twoOPT := func() []byte {
		m := new(dns.Msg)
		m.SetQuestion("a.delve.test.", dns.TypeA)
		m.SetEdns0(1232, false)
		m.SetEdns0(1232, false)
		m.Extra = append(m.Extra, m.Extra[0])
		b, _ := m.Pack()
		return b
	}()
	update := func() []byte {
		m := new(dns.Msg)
		m.SetUpdate("delve.test.")
		b, _ := m.Pack()
		return b
	}()
	goodPacket := dnsPacket(dns.TypeA, "a", "delve", "test")
	nx := rcode(dns.RcodeNameError)
	notDNSName := badReload("is not a valid DNS name")

	rows := []hostileInput{
		nameRow("invalid UTF-8 in the name", "\xff\xfe.delve.test", true, []string{"\xff\xfe", "delve", "test"}, [entries]outcome{
			usage("the name is not valid UTF-8"), refused(api.CodeParse, "the request is not valid UTF-8"), refused(api.CodeParse, "the request is not valid UTF-8"),
			bad("the arguments are not valid UTF-8"), notDNSName, nx}),
		nameRow("a name over 253 bytes", strings.Repeat("a.", 127)+"ab", true, nil, [entries]outcome{
			usage("is 256 bytes long, more than the 253 allowed"), bad("is 256 bytes long, more than the 253 allowed"), bad("is 256 bytes long, more than the 253 allowed"),
			bad("is 256 bytes long, more than the 253 allowed"), notDNSName, na(noWire)}),
		func() hostileInput {
			r := nameRow("a label over 63 bytes", big(64)+".delve.test", true, nil, [entries]outcome{
				usage("is 64 bytes long, more than the 63 allowed"), bad("is 64 bytes long, more than the 63 allowed"), bad("is 64 bytes long, more than the 63 allowed"),
				bad("is 64 bytes long, more than the 63 allowed"), notDNSName, dropped()})
			r.dns = dnsPacket(dns.TypeA, big(64), "delve", "test") // a length octet of 64 is no label length
			return r
		}(),
		nameRow("an empty name", "", true, []string{}, [entries]outcome{
			usage("the name is empty"), bad("the name is empty"), bad("the name is empty"), bad("the name is empty"),
			badReload("tls_name"), rcode(dns.RcodeRefused)}),
		nameRow("an embedded NUL", "a\x00b.delve.test", false, []string{"a\x00b", "delve", "test"}, [entries]outcome{
			usage(`control character ("\x00")`), bad(`control character ("\x00")`), bad(`control character ("\x00")`),
			bad(`control character ("\x00")`), badReload("binary data"), nx}),
		nameRow("a name that is only dots", "..", true, nil, [entries]outcome{
			usage(`the name ".." has an empty label`), bad("has an empty label"), bad("has an empty label"), bad("has an empty label"), notDNSName, na(noWire)}),
		nameRow("an IDN in UTF-8", "bücher.delve.test", true, []string{"bücher", "delve", "test"}, [entries]outcome{
			usage("xn-- (punycode) form"), bad("xn-- (punycode) form"), bad("xn-- (punycode) form"), bad("xn-- (punycode) form"), notDNSName, nx}),
		nameRow("a terminal escape sequence", "\x1b[2J\x1b[31mred.delve.test", true, []string{"\x1b[2J\x1b[31mred", "delve", "test"}, [entries]outcome{
			usage(`control character ("\x1b")`), bad(`control character ("\x1b")`), bad(`control character ("\x1b")`), bad(`control character ("\x1b")`),
			badReload(`delve.hostile.tls_name: "\x1b[2J\x1b[31mred.delve.test" is not a valid DNS name`), nx}),
		nameRow("a newline in the name", "a\nb.delve.test", true, []string{"a\nb", "delve", "test"}, [entries]outcome{
			usage(`control character ("\n")`), bad(`control character ("\n")`), bad(`control character ("\n")`), bad(`control character ("\n")`),
			badReload("delve.hostile.tls_name: the value on line 16 cannot be passed to go-uci"), nx}),
		nameRow("an IPv6 address with a zone", "fe80::1%eth0", true, nil, [entries]outcome{
			usage(`cannot make a reverse name for "fe80::1%eth0"`), bad("cannot make a reverse name"), bad("cannot make a reverse name"),
			bad("cannot make a reverse name"), badReload(`delve.hostile.tls_name: "fe80::1%eth0" is an IP address`), na(noWire)}),
		func() hostileInput {
			r := nameRow("a 1 MB string value", big(oneMB), false, nil, [entries]outcome{
				usage("more than the 253 allowed"), refused(api.CodeTooLarge, "the request is larger than 65536 bytes"), wsClosed(websocket.CloseMessageTooBig),
				bad("the arguments are larger than 64 KiB"), badReload("is too large for a UCI file (over 64 KiB)"), na(noWire)})
			return r
		}(),
		nameRow("a 10 MiB request", big(tenMiB), false, nil, [entries]outcome{
			usage("more than the 253 allowed"), refused(api.CodeTooLarge, "the request is larger than 65536 bytes"), wsClosed(websocket.CloseMessageTooBig),
			bad("the arguments are larger than 64 KiB"), badReload("is too large for a UCI file (over 64 KiB)"), na(noWire)}),
		nameRow("a request one byte over the limit (a WebSocket frame over it)", big(overLine-len(rpcLookup(`{"name":""}`))), true, nil, [entries]outcome{
			usage("more than the 253 allowed"), refused(api.CodeTooLarge, "the request is larger than 65536 bytes"), wsClosed(websocket.CloseMessageTooBig),
			// Under the bridge's 64 KiB, but its own envelope takes the line over the daemon's.
			refused(api.CodeTooLarge, "the request is larger than 65536 bytes"), badReload("is too large for a UCI file (over 64 KiB)"), na(noWire)}),

		typeRow("an unknown type", "NOPE", 0, [entries]outcome{
			usage(`unknown record type "NOPE"`), bad(`unknown record type "NOPE"`), bad(`unknown record type "NOPE"`), bad(`unknown record type "NOPE"`),
			badReload(`delve.main.type: unknown record type "NOPE"`), na(oneType)}),
		typeRow("a type number out of range", "TYPE65536", 0, [entries]outcome{
			usage("is out of range (1-65535)"), bad("is out of range (1-65535)"), bad("is out of range (1-65535)"), bad("is out of range (1-65535)"),
			badReload("is out of range (1-65535)"), na(oneType)}),
		typeRow("a negative type number", "TYPE-1", 0, [entries]outcome{
			usage(`unknown record type "TYPE-1"`), bad(`unknown record type "TYPE-1"`), bad(`unknown record type "TYPE-1"`), bad(`unknown record type "TYPE-1"`),
			badReload(`unknown record type "TYPE-1"`), na(oneType)}),
		typeRow("type number 0", "TYPE0", 0, [entries]outcome{
			usage("is out of range"), bad("is out of range"), bad("is out of range"), bad("is out of range"), badReload("is out of range"), na("see below")}),
		typeRow("the reserved type 65535", "TYPE65535", 0, [entries]outcome{
			usage(`"TYPE65535" is reserved`), bad("is reserved"), bad("is reserved"), bad("is reserved"), badReload("is reserved"), na("see below")}),
		typeRow("AXFR (zone transfer)", "AXFR", dns.TypeAXFR, [entries]outcome{
			usage(`record type "AXFR" asks for a zone transfer`), bad("asks for a zone transfer"), bad("asks for a zone transfer"), bad("asks for a zone transfer"),
			badReload("asks for a zone transfer"), rcode(dns.RcodeRefused)}),
		typeRow("IXFR (zone transfer)", "ixfr", dns.TypeIXFR, [entries]outcome{
			usage(`record type "ixfr" asks for a zone transfer`), bad("asks for a zone transfer"), bad("asks for a zone transfer"), bad("asks for a zone transfer"),
			badReload("asks for a zone transfer"), rcode(dns.RcodeRefused)}),
		typeRow("OPT as a lookup type", "OPT", dns.TypeOPT, [entries]outcome{
			usage("is the EDNS(0) pseudo-record"), bad("is the EDNS(0) pseudo-record"), bad("is the EDNS(0) pseudo-record"), bad("is the EDNS(0) pseudo-record"),
			badReload("is the EDNS(0) pseudo-record"), rcode(dns.RcodeRefused)}),
		typeRow("TSIG as a lookup type", "TSIG", dns.TypeTSIG, [entries]outcome{
			usage("transaction-security meta-type"), bad("transaction-security meta-type"), bad("transaction-security meta-type"), bad("transaction-security meta-type"),
			badReload("transaction-security meta-type"), rcode(dns.RcodeRefused)}),
		typeRow("TKEY as a lookup type", "TYPE249", dns.TypeTKEY, [entries]outcome{
			usage("transaction-security meta-type"), bad("transaction-security meta-type"), bad("transaction-security meta-type"), bad("transaction-security meta-type"),
			badReload("transaction-security meta-type"), rcode(dns.RcodeRefused)}),
		typeRow("MAILB as a lookup type", "MAILB", dns.TypeMAILB, [entries]outcome{
			usage("obsolete mailbox meta-query"), bad("obsolete mailbox meta-query"), bad("obsolete mailbox meta-query"), bad("obsolete mailbox meta-query"),
			badReload("obsolete mailbox meta-query"), rcode(dns.RcodeRefused)}),
		typeRow("ANY (allowed: a plain question, RFC 8482)", "ANY", dns.TypeANY, [entries]outcome{
			accepted(), accepted(), accepted(), accepted(), accepted(), rcode(dns.RcodeSuccess)}),
		func() hostileInput {
			r := typeRow("a huge number of types", strings.Join(manyTypes, " "), 0, [entries]outcome{
				usage("more than 16 record types in one lookup"), bad(`unknown record type "TYPE1000 TYPE1001`), bad(`unknown record type "TYPE1000 TYPE1001`),
				bad(`unknown record type "TYPE1000 TYPE1001`), badReload("lists 1000 record types, more than the 16 one lookup may ask for"), na(oneType)})
			r.cli = append([]string{"a.delve.test"}, manyTypes...)
			return r
		}(),

		rawRow("the name is a number", rpcLookup(`{"name":42}`), []byte(`{"name":42}`), [entries]outcome{
			na(noJSON), bad(`params member "name" must be a string, not a number`), bad(`params member "name" must be a string, not a number`),
			bad(`the argument "name" must be a string, not a number`), na(noJSON), na(noJSON)}),
		rawRow("the name is an array", rpcLookup(`{"name":["a.delve.test"]}`), []byte(`{"name":["a.delve.test"]}`), [entries]outcome{
			na(noJSON), bad(`params member "name" must be a string, not an array`), bad(`params member "name" must be a string, not an array`),
			bad(`the argument "name" must be a string, not an array`), na(noJSON), na(noJSON)}),
		rawRow("the type is a number", rpcLookup(`{"name":"a.delve.test","type":28}`), []byte(`{"name":"a.delve.test","type":28}`), [entries]outcome{
			na(noJSON), bad(`params member "type" must be a string, not a number`), bad(`params member "type" must be a string, not a number`),
			bad(`the argument "type" must be a string, not a number`), na(noJSON), na(noJSON)}),
		rawRow("params is an array", rpcLookup(`["a.delve.test"]`), []byte(`["a.delve.test"]`), [entries]outcome{
			na(noJSON), bad("params must be an object with named members, not an array"), bad("params must be an object with named members, not an array"),
			bad("the arguments must be a JSON object, not an array"), na(noJSON), na(noJSON)}),
		rawRow("params is a string", rpcLookup(`"a.delve.test"`), []byte(`"a.delve.test"`), [entries]outcome{
			na(noJSON), bad("params must be an object or an array, not a string"), bad("params must be an object or an array, not a string"),
			bad("the arguments must be a JSON object, not a string"), na(noJSON), na(noJSON)}),
		rawRow("the name is null", rpcLookup(`{"name":null}`), []byte(`{"name":null}`), [entries]outcome{
			na(noJSON), bad(`the parameter "name" is required`), bad(`the parameter "name" is required`), bad(`the argument "name" is required`), na(noJSON), na(noJSON)}),
		rawRow("a lone surrogate escape", rpcLookup(`{"name":"\ud800.delve.test"}`), []byte(`{"name":"\ud800.delve.test"}`), [entries]outcome{
			na(noJSON), bad("non-ASCII characters"), bad("non-ASCII characters"), bad("non-ASCII characters"), na(noJSON), na(noJSON)}),
		{name: "a 10,000-element batch", rpc: []byte(batch.String()), rpcd: []byte(batch.String()),
			uci: whole(strings.Repeat("c x\n", 10000)), dns: qd10k, want: [entries]outcome{
				na(noJSON), refused(api.CodeTooLarge, "the batch has more than 100 members"), refused(api.CodeTooLarge, "the batch has more than 100 members"),
				bad("the arguments must be a JSON object, not an array"), badReload("has 10000 sections, more than the 256 delve reads"),
				dropped()}}, // 10,000 questions: 50 KB, over the listener's 4 KiB UDP buffer
		rawRow("JSON nested 10,000 deep", rpcLookup(`{"name":`+deep+`}`), []byte(`{"name":`+deep+`}`), [entries]outcome{
			na(noJSON), refused(api.CodeInvalidRequest, "nests arrays and objects deeper than 32 levels"), refused(api.CodeInvalidRequest, "nests arrays and objects deeper than 32 levels"),
			bad(`the argument "name" must be a string, not an array`), na(noJSON), na(noJSON)}),
		{name: "an unknown method", rpc: []byte(`{"jsonrpc":"2.0","id":1,"method":"nosuch"}`), rpcd: []byte(`{}`), rpcdM: "nosuch", dns: update,
			want: [entries]outcome{na("every word is a name"), refused(api.CodeMethodNotFound, `there is no method "nosuch"`),
				refused(api.CodeMethodNotFound, `there is no method "nosuch"`), refused(api.CodeMethodNotFound, "nosuch"), na(noJSON), rcode(dns.RcodeNotImplemented)}},
		rawRow("a reserved rpc. method", []byte(`{"jsonrpc":"2.0","id":1,"method":"rpc.discover"}`), nil, [entries]outcome{
			na(noJSON), refused(api.CodeMethodNotFound, `there is no method "rpc.discover"`), refused(api.CodeMethodNotFound, `there is no method "rpc.discover"`), na(envelope), na(noJSON), na(noJSON)}),
		{name: "truncated JSON (a truncated file, a truncated packet)", rpc: []byte(`{"jsonrpc":"2.0","id":1,"method":"lookup","params":{"name":"a.del`),
			rpcd: []byte(`{"name":"a.del`), uci: whole("config delve 'main'\n\toption timeout '30"), dns: goodPacket[:len(goodPacket)-3],
			want: [entries]outcome{na(noJSON), refused(api.CodeParse, "the request is not valid JSON"), refused(api.CodeParse, "the request is not valid JSON"),
				bad("the arguments are not valid JSON: they end too early"), badReload("quote opened on this line is never closed"), dropped()}},
		{name: "duplicate keys (a duplicate option, two OPT records)", rpc: rpcLookup(`{"name":"a.delve.test","name":"evil.example"}`),
			rpcd: []byte(`{"name":"a.delve.test","name":"evil.example"}`), uci: func(good string) string { return good + "\toption port '853'\n" }, dns: twoOPT,
			want: [entries]outcome{na(noJSON), bad(`params member "name" appears twice`), bad(`params member "name" appears twice`),
				bad(`the argument "name" appears twice`), accepted(), rcode(dns.RcodeFormatError)}},
		func() hostileInput {
			// As many members as a request line holds: unknown ones are ignored, and finding
			// duplicates among them must not cost the square of their number.
			var b strings.Builder
			for i := 0; b.Len() < jsonrpcMaxMessage-200; i++ {
				b.WriteString(`"m` + strconv.Itoa(i) + `":0,`)
			}
			return rawRow("an object with 7,000 members", []byte(`{`+b.String()+`"jsonrpc":"2.0","id":1,"method":"status"}`),
				[]byte(`{`+b.String()+`"name":"a.delve.test"}`), [entries]outcome{
					na(noJSON), accepted(), accepted(), accepted(), na(noJSON), na(noJSON)})
		}(),
		rawRow("duplicate envelope keys", []byte(`{"jsonrpc":"2.0","id":1,"method":"status","method":"reload"}`), nil, [entries]outcome{
			na(noJSON), refused(api.CodeInvalidRequest, `member "method" appears twice`), refused(api.CodeInvalidRequest, `member "method" appears twice`), na(envelope), na(noJSON), na(noJSON)}),
		{name: "binary garbage", rpc: garbage, rpcd: garbage, uci: whole(string(garbage)), dns: garbage, want: [entries]outcome{
			na(noArgv), refused(api.CodeParse, "not valid UTF-8"), refused(api.CodeParse, "not valid UTF-8"), bad("not valid UTF-8"),
			badReload("is not a UCI text file (it holds binary data)"), dropped()}},
		rawRow("not JSON at all", []byte("GET / HTTP/1.1"), []byte("GET / HTTP/1.1"), [entries]outcome{
			na(noJSON), refused(api.CodeParse, "the request is not valid JSON: invalid character 'G'"), refused(api.CodeParse, "the request is not valid JSON"),
			bad("the arguments are not valid JSON"), na(noJSON), na(noJSON)}),
		rawRow("a byte-order mark before the JSON", []byte("\xef\xbb\xbf{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\"}"), []byte("\xef\xbb\xbf{}"), [entries]outcome{
			na(noJSON), refused(api.CodeParse, "not valid JSON"), refused(api.CodeParse, "not valid JSON"), bad("not valid JSON"), na(noJSON), na(noJSON)}),
		rawRow("two objects in one message", []byte(`{"jsonrpc":"2.0","id":1,"method":"status"}{"jsonrpc":"2.0","id":2,"method":"flush"}`),
			[]byte(`{"name":"a.delve.test"}{"name":"evil.example"}`), [entries]outcome{
				na(noJSON), refused(api.CodeParse, "not valid JSON"), refused(api.CodeParse, "not valid JSON"), bad("more follows it"), na(noJSON), na(noJSON)}),
		rawRow("an empty batch", []byte(`[]`), nil, [entries]outcome{
			na(noJSON), refused(api.CodeInvalidRequest, "an empty batch is not a request"), refused(api.CodeInvalidRequest, "an empty batch is not a request"), na(envelope), na(noJSON), na(noJSON)}),
		rawRow("JSON-RPC 1.0", []byte(`{"jsonrpc":"1.0","id":1,"method":"status"}`), nil, [entries]outcome{
			na(noJSON), refused(api.CodeInvalidRequest, `"jsonrpc":"2.0"`), refused(api.CodeInvalidRequest, `"jsonrpc":"2.0"`), na(envelope), na(noJSON), na(noJSON)}),
		rawRow("the method is a number", []byte(`{"jsonrpc":"2.0","id":1,"method":42}`), nil, [entries]outcome{
			na(noJSON), refused(api.CodeInvalidRequest, "the method must be a string, not a number"), refused(api.CodeInvalidRequest, "the method must be a string"), na(envelope), na(noJSON), na(noJSON)}),
		rawRow("the id is an object", []byte(`{"jsonrpc":"2.0","id":{"a":1},"method":"status"}`), nil, [entries]outcome{
			na(noJSON), refused(api.CodeInvalidRequest, "the request id must be a string, a number or null, not an object"),
			refused(api.CodeInvalidRequest, "the request id must be a string, a number or null"), na(envelope), na(noJSON), na(noJSON)}),
		rawRow("a negative id (answered, echoed)", []byte(`{"jsonrpc":"2.0","id":-1,"method":"status"}`), nil, [entries]outcome{
			na(noJSON), accepted(), accepted(), na(envelope), na(noJSON), na(noJSON)}),
		rawRow("a fractional id (answered, echoed)", []byte(`{"jsonrpc":"2.0","id":1.5,"method":"status"}`), nil, [entries]outcome{
			na(noJSON), accepted(), accepted(), na(envelope), na(noJSON), na(noJSON)}),
		rawRow("an id of 1e400 (answered, echoed)", []byte(`{"jsonrpc":"2.0","id":1e400,"method":"status"}`), nil, [entries]outcome{
			na(noJSON), accepted(), accepted(), na(envelope), na(noJSON), na(noJSON)}),
		{name: "an unknown upstream", cli: []string{"@nope", "a.delve.test"}, argv: true,
			rpc: rpcLookup(`{"name":"a.delve.test","upstream":"nope"}`), rpcd: []byte(`{"name":"a.delve.test","upstream":"nope"}`),
			uci: func(good string) string {
				return good + "\nconfig upstream 'nope'\n\toption address 'nope'\n\toption tls_name 'x.test'\n"
			},
			want: [entries]outcome{usage(`server address "nope" is not an IP address`), bad(`no such upstream named "nope"`), bad(`no such upstream named "nope"`),
				bad(`no such upstream named "nope"`), badReload(`delve.nope.address: "nope" is not an IP address`), na(noName)}},
		{name: "type 0 over DNS (forwarded)", dns: dnsPacket(0, "a", "delve", "test"), want: [entries]outcome{
			na("see above"), na("see above"), na("see above"), na("see above"), na("see above"), outcome{rcode: -1}}},
		{name: "type 65535 over DNS (forwarded)", dns: dnsPacket(65535, "a", "delve", "test"), want: [entries]outcome{
			na("see above"), na("see above"), na("see above"), na("see above"), na("see above"), outcome{rcode: -1}}},
	}
	return rows
}

// jsonrpcMaxMessage is the daemon's line and frame limit (jsonrpc.DefaultMaxMessage).
const jsonrpcMaxMessage = 64 << 10

// TestHostileInput tries each row of hostileInputs at every entry point it reaches, against a
// running daemon (the real binary) with the socket, a WebSocket and the DNS listener on, and an
// unbound upstream. Each must get a clear answer; after each row a bystander on the socket, one
// on the WebSocket and one on DNS still get served; the daemon's memory, goroutines and file
// descriptors are where they were once the table is done.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	ub := testenv.UnboundT(t, testenv.UnboundOptions{})
	wsPort, err := testenv.FreePort("tcp")
	if err != nil {
		t.Fatal(err)
	}
	dnsPort, err := testenv.FreePort("tcp+udp")
	if err != nil {
		t.Fatal(err)
	}
	c := newConf(t)
	c.addUnbound("u0", ub)
	wsAddr := "127.0.0.1:" + strconv.Itoa(wsPort)
	dnsAddr := "127.0.0.1:" + strconv.Itoa(dnsPort)
	c.main = []string{"option websocket '" + wsAddr + "'"}
	c.listen = dnsAddr
	p := serve(t, c, serveOptions{})
	good := c.text(t)
	bin := delveBinary(t, "")
	// The counts are taken on a connection of their own, with the bystanders' closed: a
	// connection keeps a few idle workers for its next requests.
	count := func() daemonStatus {
		sc := p.client(t)
		defer sc.Close()
		return status(t, sc)
	}
	// Warm up first: the upstream connection is open from then on (idle timeout 20 s).
	warm := p.client(t)
	if _, _, err := lookup(warm, testenv.WildName("warm"), "A"); err != nil {
		t.Fatal(err)
	}
	warm.Close()
	before := count()
	cl := p.client(t)
	bystanderWS := wsDial(t, wsAddr, nil)
	serving := func(t *testing.T, after string) {
		t.Helper()
		if l, _, err := lookup(cl, "a.delve.test", "A"); err != nil || len(l.Addresses) != 1 {
			t.Fatalf("after %s the socket bystander got %+v %v", after, l, err)
		}
		if m := wsCall(t, bystanderWS, `{"jsonrpc":"2.0","id":2,"method":"lookup","params":{"name":"a.delve.test"}}`); m.Error != nil {
			t.Fatalf("after %s the WebSocket bystander got %+v", after, m.Error)
		}
		if r, err := dnsExchange(dnsAddr, dnsPacket(dns.TypeA, "a", "delve", "test")); err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			t.Fatalf("after %s the DNS bystander got %v %v", after, r, err)
		}
	}
	serving(t, "start")

	rows := hostileInputs()
	var report []string
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			line := []string{row.name}
			for e := range entries {
				w := row.want[e]
				var got string
				var err error
				switch {
				case w.na != "":
					got = "n/a: " + w.na
				case e == viaCLI:
					got, err = tryCLI(bin, c.path(), row, w)
				case e == viaSocket:
					got, err = trySocket(c.socket, row.rpc, w)
				case e == viaWS:
					got, err = tryWS(wsAddr, row.rpc, w)
				case e == viaRPCD:
					got, err = tryRPCD(bin, c.socket, row, w)
				case e == viaUCI:
					got, err = tryUCI(cl, c.path(), good, row.uci(good), w)
				case e == viaDNS:
					got, err = tryDNS(dnsAddr, row.dns, w)
				}
				if err != nil {
					t.Errorf("%s: %v", entryNames[e], err)
				}
				line = append(line, entryNames[e]+": "+got)
			}
			report = append(report, strings.Join(line, "\n    "))
			serving(t, row.name)
		})
	}

	// Memory stays bounded; goroutines and descriptors come back.
	cl.Close()
	bystanderWS.Close()
	var after daemonStatus
	settled, ok := eventually(30*time.Second, func() bool {
		after = count()
		return after.Process.Goroutines <= before.Process.Goroutines && after.Process.OpenFDs <= before.Process.OpenFDs
	})
	if !ok {
		t.Errorf("goroutines %d → %d, fds %d → %d after the table", before.Process.Goroutines, after.Process.Goroutines, before.Process.OpenFDs, after.Process.OpenFDs)
	}
	if grew := after.Process.RSSKiB - before.Process.RSSKiB; grew > 64<<10 {
		t.Errorf("RSS grew by %d KiB over the table (%d → %d)", grew, before.Process.RSSKiB, after.Process.RSSKiB)
	}
	if p.exited() {
		t.Fatal("the daemon died")
	}
	t.Logf("%d inputs; daemon RSS %d → %d KiB (peak %d), heap %d → %d KiB, goroutines %d → %d, fds %d → %d (settled in %v)\n%s",
		len(rows), before.Process.RSSKiB, after.Process.RSSKiB, after.Process.PeakRSSKiB, before.Process.HeapKiB, after.Process.HeapKiB,
		before.Process.Goroutines, after.Process.Goroutines, before.Process.OpenFDs, after.Process.OpenFDs, settled.Round(time.Millisecond),
		strings.Join(report, "\n"))
}

// rpcReply is a JSON-RPC response as the transports send it.
type rpcReply struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    struct {
			Code string `json:"code"`
		} `json:"data"`
	} `json:"error"`
}

// judge checks a JSON-RPC response against w and describes it.
func judge(raw []byte, sent []byte, w outcome) (string, error) {
	var r rpcReply
	if err := json.Unmarshal(raw, &r); err != nil {
		return "", fmt.Errorf("the response is not JSON-RPC: %.200q", raw)
	}
	if w.ok {
		if r.Error != nil {
			return "", fmt.Errorf("refused: %s", r.Error.Message)
		}
		// The id comes back as it was sent.
		if id := idOf(sent); id != nil && !bytes.Equal(id, r.ID) {
			return "", fmt.Errorf("id %s came back as %s", id, r.ID)
		}
		return "answered, id " + string(r.ID), nil
	}
	if r.Error == nil {
		return "", fmt.Errorf("accepted: %.200s", raw)
	}
	got := fmt.Sprintf("%s (%d) %q", r.Error.Data.Code, r.Error.Code, short(r.Error.Message))
	if api.Code(r.Error.Data.Code) != w.code || r.Error.Code != w.code.RPC() || !strings.Contains(r.Error.Message, w.msg) {
		return got, fmt.Errorf("got %s, want %s %q", got, w.code, w.msg)
	}
	return got, nil
}

// idOf is the raw id of a request object.
func idOf(req []byte) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(req, &m) != nil {
		return nil
	}
	return m["id"]
}

func short(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

func trySocket(socket string, msg []byte, w outcome) (string, error) {
	conn, err := net.DialTimeout("unix", socket, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	go func() { _, _ = conn.Write(append(append([]byte{}, msg...), '\n')) }()
	line, err := bufio.NewReaderSize(conn, 1<<20).ReadBytes('\n')
	if err != nil {
		return "", fmt.Errorf("no response: %v", err)
	}
	return judge(line, msg, w)
}

func tryWS(addr string, msg []byte, w outcome) (string, error) {
	conn, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/", nil)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	_ = conn.SetWriteDeadline(time.Now().Add(20 * time.Second))
	werr := conn.WriteMessage(websocket.TextMessage, msg)
	_, reply, err := conn.ReadMessage()
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		got := fmt.Sprintf("closed %d", ce.Code)
		if w.close == 0 || ce.Code != w.close {
			return got, fmt.Errorf("%s, want %+v", got, w)
		}
		return got, nil
	}
	if err != nil {
		return "", fmt.Errorf("reading: %v (writing: %v)", err, werr)
	}
	if w.close != 0 {
		return "", fmt.Errorf("answered %.200s, want the connection closed with %d", reply, w.close)
	}
	return judge(reply, msg, w)
}

func tryRPCD(bin, socket string, row hostileInput, w outcome) (string, error) {
	method := row.rpcdM
	if method == "" {
		method = "lookup"
	}
	cmd := exec.Command(bin, "rpcd", "call", method)
	cmd.Env = append(os.Environ(), "DELVE_SOCKET="+socket)
	cmd.Stdin = bytes.NewReader(row.rpcd)
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("delve rpcd call %s: %v", method, err)
	}
	var obj map[string]any
	if err := json.Unmarshal(out, &obj); err != nil {
		return "", fmt.Errorf("stdout is not one JSON object: %.200q", out)
	}
	e, isErr := obj["error"].(string)
	if w.ok {
		if isErr {
			return "", fmt.Errorf("refused: %s", e)
		}
		return "answered", nil
	}
	got := fmt.Sprintf("%v %q", obj["code"], short(e))
	if !isErr || obj["code"] != string(w.code) || !strings.Contains(e, w.msg) {
		return got, fmt.Errorf("got %s, want %s %q", got, w.code, w.msg)
	}
	return got, nil
}

func tryCLI(bin, config string, row hostileInput, w outcome) (string, error) {
	args := append([]string{"--config", config, "--timeout", "3s"}, row.cli...)
	var stdout, stderr bytes.Buffer
	code := 0
	how := "binary"
	if row.argv {
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			return "", err
		}
	} else {
		how = "in process"
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		code = cli.Run(ctx, args, &stdout, &stderr)
	}
	msg := strings.TrimSpace(stderr.String())
	got := fmt.Sprintf("exit %d %q (%s)", code, short(msg), how)
	if w.ok {
		if code != cli.ExitOK && code != cli.ExitNoData {
			return got, fmt.Errorf("refused: %s", got)
		}
		return got, nil
	}
	if code != w.exit || !strings.Contains(msg, w.msg) || strings.Count(msg, "\n") != 0 || !utf8.ValidString(msg) || strings.ContainsAny(msg, "\x00\x1b") {
		return got, fmt.Errorf("got %s, want exit %d and one printable line with %q", got, w.exit, w.msg)
	}
	return got, nil
}

// tryUCI writes text as the configuration and reloads it by the method; then puts the good file
// back and reloads that.
func tryUCI(cl interface {
	Call(context.Context, string, any, any) error
}, path, good, text string, w outcome) (string, error) {
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := cl.Call(ctx, "reload", nil, nil)
	defer func() {
		_ = os.WriteFile(path, []byte(good), 0o644)
		_ = cl.Call(ctx, "reload", nil, nil)
	}()
	if w.ok {
		if err != nil {
			return "", fmt.Errorf("refused: %v", err)
		}
		return "reloaded", nil
	}
	got := fmt.Sprintf("%s %q", codeOf(err), short(fmt.Sprint(err)))
	if codeOf(err) != w.code || !strings.Contains(err.Error(), w.msg) {
		return got, fmt.Errorf("got %s, want %s %q", got, w.code, w.msg)
	}
	return got, nil
}

func dnsExchange(addr string, pkt []byte) (*dns.Msg, error) {
	raw, err := rawExchange(addr, pkt)
	if err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	return m, m.Unpack(raw)
}

func tryDNS(addr string, pkt []byte, w outcome) (string, error) {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	wait := 5 * time.Second
	if w.drop {
		wait = 700 * time.Millisecond
	}
	_ = conn.SetDeadline(time.Now().Add(wait))
	if _, err := conn.Write(pkt); err != nil {
		return "", err
	}
	buf := make([]byte, 65535)
	n, err := conn.Read(buf)
	if w.drop {
		if err == nil {
			return "", fmt.Errorf("answered %d bytes, want the packet dropped", n)
		}
		return "dropped (no reply)", nil
	}
	if err != nil {
		return "", fmt.Errorf("no reply: %v", err)
	}
	m := new(dns.Msg)
	if err := m.Unpack(buf[:n]); err != nil {
		return "", fmt.Errorf("a reply that does not parse: %v", err)
	}
	got := dns.RcodeToString[m.Rcode]
	var ede []string
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_EDE); ok {
				ede = append(ede, e.ExtraText)
			}
		}
	}
	sort.Strings(ede)
	if len(ede) > 0 {
		got += fmt.Sprintf(" %q", ede)
	}
	if w.rcode >= 0 && m.Rcode != w.rcode {
		return got, fmt.Errorf("rcode %s, want %s", got, dns.RcodeToString[w.rcode])
	}
	return got, nil
}
