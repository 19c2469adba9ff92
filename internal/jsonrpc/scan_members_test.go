package jsonrpc

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestManyMembers: an object with as many members as a request line can hold is split in time
// linear in its size (comparing each key with all before it took about a second for the 7,000
// members of 64 KiB), and a duplicate is still found wherever it is.
func TestManyMembers(t *testing.T) {
	var b strings.Builder
	b.WriteString("{")
	n := 0
	for ; b.Len() < DefaultMaxMessage-100; n++ {
		b.WriteString(`"` + strconv.Itoa(n) + `":0,`)
	}
	b.WriteString(`"jsonrpc":"2.0","id":1,"method":"status"}`)
	data := []byte(b.String())
	start := time.Now()
	ms, err := objectMembers(data)
	if d := time.Since(start); err != nil || len(ms) != n+3 || d > 250*time.Millisecond {
		t.Fatalf("%d members of %d in %v: %v", len(ms), n+3, d, err)
	}
	for _, dup := range []string{`"0"`, `"17"`, strconv.Quote(strconv.Itoa(n - 1)), `"\u0069d"`} {
		bad := append([]byte(b.String()[:b.Len()-1]), []byte(","+dup+":1}")...)
		if _, err := objectMembers(bad); err == nil || !strings.Contains(err.Error(), "appears twice") {
			t.Fatalf("duplicate %s: %v", dup, err)
		}
	}
}
