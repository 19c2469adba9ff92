package jsonrpc

import (
	"errors"
	"reflect"
	"testing"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/json"
)

type base struct {
	Upstream string `json:"upstream"`
}

type lookupParams struct {
	base
	Name    string   `json:"name"`
	Type    string   `json:"type,omitempty"`
	Port    uint16   `json:"port"`
	Count   int      `json:"count"`
	Secure  bool     `json:"secure"`
	Types   []string `json:"types"`
	Ignored string   `json:"-"`
	Plain   string
}

func TestDecodeParams(t *testing.T) {
	tests := []struct {
		name   string
		params string // "" for absent
		want   lookupParams
		err    string
	}{
		{name: "absent", params: "", want: lookupParams{Name: "keep"}},
		{name: "null", params: "null", want: lookupParams{Name: "keep"}},
		{name: "members", params: `{"name":"openwrt.org","type":"AAAA","port":853,"secure":true,"types":["A"],"upstream":"q9","Plain":"p"}`,
			want: lookupParams{base: base{Upstream: "q9"}, Name: "openwrt.org", Type: "AAAA", Port: 853, Secure: true, Types: []string{"A"}, Plain: "p"}},
		{name: "unknown members ignored", params: `{"name":"x","ubus_rpc_session":"abc","extra":{"deep":[1]}}`, want: lookupParams{Name: "x"}},
		{name: "names match exactly", params: `{"NAME":"x","Name":"y","plain":"z","Ignored":"i"}`, want: lookupParams{Name: "keep"}},
		{name: "whitespace", params: " { \"name\" : \"x\" } ", want: lookupParams{Name: "x"}},
		{name: "duplicate", params: `{"name":"a","name":"b"}`, err: `params member "name" appears twice`},
		{name: "duplicate unknown", params: `{"x":1,"x":2}`, err: `params member "x" appears twice`},
		{name: "number for string", params: `{"name":5}`, err: `params member "name" must be a string, not a number`},
		{name: "array for string", params: `{"name":["a"]}`, err: `params member "name" must be a string, not an array`},
		{name: "object for string", params: `{"name":{}}`, err: `params member "name" must be a string, not an object`},
		{name: "string for bool", params: `{"secure":"yes"}`, err: `params member "secure" must be a boolean, not a string`},
		{name: "bool for number", params: `{"count":true}`, err: `params member "count" must be an integer, not a boolean`},
		{name: "negative for unsigned", params: `{"port":-5}`, err: `params member "port" must be a non-negative integer, not -5`},
		{name: "fraction for integer", params: `{"count":1.5}`, err: `params member "count" must be an integer, not 1.5`},
		{name: "number in a list", params: `{"types":["A",28]}`, err: `params member "types" must be a string, not a number`},
		{name: "array for object", params: `["x"]`, err: `params must be an object with named members, not an array`},
		{name: "string for object", params: `"x"`, err: `params must be an object with named members, not a string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := lookupParams{Name: "keep"}
			var raw json.RawMessage
			if tt.params != "" {
				raw = json.RawMessage(tt.params)
			}
			err := DecodeParams(raw, &got)
			if tt.err != "" {
				var ae *api.Error
				if !errors.As(err, &ae) || ae.Code != api.CodeBadRequest || ae.Message != tt.err {
					t.Fatalf("got %#v, want bad_request %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	t.Run("positional into a slice", func(t *testing.T) {
		var got []string
		if err := DecodeParams(json.RawMessage(`["a","b"]`), &got); err != nil || !reflect.DeepEqual(got, []string{"a", "b"}) {
			t.Fatalf("got %v, %v", got, err)
		}
	})
	t.Run("positional of the wrong type", func(t *testing.T) {
		var got []string
		err := DecodeParams(json.RawMessage(`["a",2]`), &got)
		if err == nil || err.Error() != "params must be a string, not a number" {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("into a map", func(t *testing.T) {
		var got map[string]int
		err := DecodeParams(json.RawMessage(`{"a":1,"a":2}`), &got)
		if err == nil || err.Error() != `params member "a" appears twice` {
			t.Fatalf("got %v", err)
		}
	})
}

func TestScan(t *testing.T) {
	t.Run("tooDeep", func(t *testing.T) {
		for _, tt := range []struct {
			in   string
			want bool
		}{
			{`[[[]]]`, false},
			{`[[[[]]]]`, true},
			{`["[[[[[[", "\"[[[[["]`, false},
			{`{"a":{"b":{"c":{}}}}`, true},
			{`{"a":{"b":{"c":1}}}`, false},
		} {
			if got := tooDeep([]byte(tt.in), 3); got != tt.want {
				t.Errorf("tooDeep(%s, 3) = %v", tt.in, got)
			}
		}
	})
}

// BenchmarkDecodeParams decodes the params of a typical lookup call, as the daemon does for each.
func BenchmarkDecodeParams(b *testing.B) {
	params := json.RawMessage(`{"name":"h7.bench.delve.test.","type":"A"}`)
	b.ReportAllocs()
	for b.Loop() {
		var p struct {
			Name     *string `json:"name"`
			Type     *string `json:"type"`
			Upstream *string `json:"upstream"`
		}
		if err := DecodeParams(params, &p); err != nil {
			b.Fatal(err)
		}
	}
}
