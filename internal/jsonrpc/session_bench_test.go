package jsonrpc

import (
	"context"
	"testing"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/json"
	"github.com/miekg/dns"
)

// BenchmarkSessionLookup is the daemon's path for one lookup request without the socket: check
// the message, decode the params, run the handler, encode the result, as on a connection whose
// client asks one question at a time.
func BenchmarkSessionLookup(b *testing.B) {
	type params struct {
		Name     *string `json:"name"`
		Type     *string `json:"type"`
		Upstream *string `json:"upstream"`
	}
	handler := func(_ context.Context, _ string, raw json.RawMessage, _ string) (any, error) {
		var p params
		if err := DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		return &api.Lookup{Name: *p.Name, Types: []string{*p.Type}, Rcode: "NOERROR",
			Answers:   []api.Answer{{Name: *p.Name, Type: "A", TTL: 300, Data: "198.18.0.7"}},
			Addresses: []string{"198.18.0.7"}, Upstream: "bench", Cached: true}, nil
	}
	done := make(chan []byte, 1)
	s := NewSession(context.Background(), SessionOptions{Handler: handler, From: "socket",
		Send: func(b []byte) bool { done <- b; return true }})
	defer s.Wait()
	req := []byte(`{"jsonrpc":"2.0","id":1,"method":"lookup","params":{"name":"h7.bench.delve.test.","type":"A"}}`)
	b.ReportAllocs()
	for b.Loop() {
		s.Handle(req)
		<-done
	}
}

// BenchmarkSessionLookupResult is BenchmarkSessionLookup with the daemon's result for a cached A
// record: "object" builds the lookup object and encodes it by reflection, as the daemon did;
// "appender" has the session append the result's JSON itself; "immediate" also answers the call
// in the goroutine that handed it to the session (SessionOptions.Immediate), as the daemon does
// with a cached lookup.
func BenchmarkSessionLookupResult(b *testing.B) {
	type params struct {
		Name     *string `json:"name"`
		Type     *string `json:"type"`
		Upstream *string `json:"upstream"`
	}
	rr, err := dns.NewRR("h7.bench.delve.test. 300 IN A 198.18.0.7")
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"object", "appender", "immediate"} {
		b.Run(mode, func(b *testing.B) {
			handler := func(_ context.Context, _ string, raw json.RawMessage, _ string) (any, error) {
				var p params
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
			done := make(chan []byte, 1)
			o := SessionOptions{Handler: handler, From: "socket", Send: func(b []byte) bool { done <- b; return true }}
			if mode == "immediate" {
				o.Immediate = handler
			}
			s := NewSession(context.Background(), o)
			defer s.Wait()
			req := []byte(`{"jsonrpc":"2.0","id":1,"method":"lookup","params":{"name":"h7.bench.delve.test.","type":"A"}}`)
			b.ReportAllocs()
			for b.Loop() {
				s.Handle(req)
				<-done
			}
		})
	}
}
