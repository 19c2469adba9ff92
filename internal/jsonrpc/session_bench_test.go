package jsonrpc

import (
	"context"
	"testing"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/json"
	"github.com/miekg/dns"
)

// benchParams are the lookup method's params.
type benchParams struct {
	Name     *string `json:"name"`
	Type     *string `json:"type"`
	Upstream *string `json:"upstream"`
}

// benchLookups hands a session of o one lookup request at a time, as a connection whose client
// asks one question at a time, and waits for each response.
func benchLookups(b *testing.B, o SessionOptions) {
	done := make(chan []byte, 1)
	o.From, o.Send = "socket", func(b []byte) bool { done <- b; return true }
	s := NewSession(context.Background(), o)
	defer s.Wait()
	req := []byte(`{"jsonrpc":"2.0","id":1,"method":"lookup","params":{"name":"h7.bench.delve.test.","type":"A"}}`)
	b.ReportAllocs()
	for b.Loop() {
		s.Handle(req)
		<-done
	}
}

// BenchmarkSessionLookup is the daemon's path for one lookup request without the socket: check
// the message, decode the params, run the handler, encode the result, as on a connection whose
// client asks one question at a time.
func BenchmarkSessionLookup(b *testing.B) {
	handler := func(_ context.Context, _ string, raw json.RawMessage, _ string) (any, error) {
		var p benchParams
		if err := DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		return &api.Lookup{Name: *p.Name, Types: []string{*p.Type}, Rcode: "NOERROR",
			Answers:   []api.Answer{{Name: *p.Name, Type: "A", TTL: 300, Data: "198.18.0.7"}},
			Addresses: []string{"198.18.0.7"}, Upstream: "bench", Cached: true}, nil
	}
	benchLookups(b, SessionOptions{Handler: handler})
}

// BenchmarkSessionLookupResult is BenchmarkSessionLookup with the daemon's result for a cached A
// record: "object" builds the lookup object and encodes it by reflection, as the daemon did;
// "appender" has the session append the result's JSON itself; "immediate" also answers the call
// in the goroutine that handed it to the session (SessionOptions.Immediate), as the daemon does
// with a cached lookup.
func BenchmarkSessionLookupResult(b *testing.B) {
	rr, err := dns.NewRR("h7.bench.delve.test. 300 IN A 198.18.0.7")
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"object", "appender", "immediate"} {
		b.Run(mode, func(b *testing.B) {
			handler := func(_ context.Context, _ string, raw json.RawMessage, _ string) (any, error) {
				var p benchParams
				if err := DecodeParams(raw, &p); err != nil {
					return nil, err
				}
				r := &api.LookupResult{Name: *p.Name, Types: []uint16{dns.TypeA}, Rcode: dns.RcodeSuccess,
					Answers: []dns.RR{rr}, Upstream: "bench", Cached: true, Max: 256}
				if mode == "object" {
					return r.Lookup(), nil
				}
				return r, nil
			}
			o := SessionOptions{Handler: handler}
			if mode == "immediate" {
				o.Immediate = handler
			}
			benchLookups(b, o)
		})
	}
}
