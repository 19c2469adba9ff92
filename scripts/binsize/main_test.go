package main

import "testing"

func TestPackage(t *testing.T) {
	for _, tt := range []struct{ sym, want string }{
		{"runtime.mallocgc", "runtime"},
		{"net/http.(*Server).Serve", "net/http"},
		{"net/http.(*Server).Serve.func1", "net/http"},
		{"net/http.init.0.func1", "net/http"},
		{"net/http..stmp_140", "net/http"},
		{"github.com/miekg/dns.(*Msg).Pack", "github.com/miekg/dns"},
		{"github.com/digineo/go-uci/v2.(*tree).LoadConfig", "github.com/digineo/go-uci/v2"},
		{"vendor/golang.org/x/net/idna.(*Profile).process", "vendor/golang.org/x/net/idna"},
		{"slices.SortFunc[go.shape.struct { Name string; net/http.x int }]", "slices"},
		{"slices.pdqsortCmpFunc[go.shape.*uint8]", "slices"},
		{"sync/atomic.(*Pointer[go.shape.struct {}]).Load", "sync/atomic"},
		{"github.com/delvedns/delve/internal/resolver.(*cache[go.shape.string]).get", "github.com/delvedns/delve/internal/resolver"},
		{"type:.eq.github.com/miekg/dns.TSIG", "github.com/miekg/dns"},
		{"type:.eq.[2]runtime.Frame", "runtime"},
		{"type:.hash.net/http.Header", "net/http"},
		{"type:*net/http.Server", "net/http"},
		{"type:map[string]net/http.Handler", "net/http"},
		{"type:map[string]int", "(builtin types)"},
		{"type:.eq.struct { a int; b string }", "(unnamed types)"},
		{"go:itab.*net/http.response,net/http.ResponseWriter", "net/http"},
		{"go:itab.*github.com/gorilla/websocket.netError,error", "github.com/gorilla/websocket"},
		{"go:string.*", "(linker: go:string)"},
		{"go:buildinfo", "(linker: go:buildinfo)"},
		{"internal/sync..dict.HashTrieMap[*internal/abi.Type,interface {}]", "internal/sync"},
	} {
		if got := Package(tt.sym); got != tt.want {
			t.Errorf("Package(%q) = %q, want %q", tt.sym, got, tt.want)
		}
	}
}
