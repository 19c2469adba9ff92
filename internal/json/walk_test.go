package json

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMembers(t *testing.T) {
	ms, err := Members([]byte(` { "a" : "x\"}" , "b\u0063":[1,{"d":"]"}] ,"e":-1.5e3,"f":null,"g":true} `))
	if err != nil {
		t.Fatal(err)
	}
	want := []Member{{"a", []byte(`"x\"}"`)}, {"bc", []byte(`[1,{"d":"]"}]`)}, {"e", []byte(`-1.5e3`)}, {"f", []byte(`null`)}, {"g", []byte(`true`)}}
	if !reflect.DeepEqual(ms, want) {
		t.Fatalf("got %q", ms)
	}
	if ms, err := Members([]byte(`{}`)); err != nil || len(ms) != 0 {
		t.Fatalf("empty object: %v %v", ms, err)
	}
}

// TestManyMembers: an object with as many members as a 64 KiB request line can hold is split
// in time linear in its size (comparing each key with all before it took about a second for its
// 7,000 members), and a duplicate is still found wherever it is.
func TestManyMembers(t *testing.T) {
	var b strings.Builder
	b.WriteString("{")
	n := 0
	for ; b.Len() < 64<<10-100; n++ {
		b.WriteString(`"` + strconv.Itoa(n) + `":0,`)
	}
	b.WriteString(`"jsonrpc":"2.0","id":1,"method":"status"}`)
	data := []byte(b.String())
	start := time.Now()
	ms, err := Members(data)
	if d := time.Since(start); err != nil || len(ms) != n+3 || d > 250*time.Millisecond {
		t.Fatalf("%d members of %d in %v: %v", len(ms), n+3, d, err)
	}
	for _, dup := range []string{`"0"`, `"17"`, strconv.Quote(strconv.Itoa(n - 1)), `"\u0069d"`} {
		bad := append([]byte(b.String()[:b.Len()-1]), []byte(","+dup+":1}")...)
		var de *DuplicateKeyError
		if _, err := Members(bad); err == nil || !strings.Contains(err.Error(), "appears twice") {
			t.Fatalf("duplicate %s: %v", dup, err)
		} else if !asDup(err, &de) || de.Key != Unquote([]byte(dup)) {
			t.Fatalf("duplicate %s: %#v", dup, err)
		}
	}
}

func asDup(err error, de **DuplicateKeyError) bool {
	d, ok := err.(*DuplicateKeyError)
	*de = d
	return ok
}

func TestElements(t *testing.T) {
	es := Elements([]byte(`[ 1 , "a,]" ,{"b":[2,3]}, [] ]`), 10)
	want := [][]byte{[]byte(`1`), []byte(`"a,]"`), []byte(`{"b":[2,3]}`), []byte(`[]`)}
	if !reflect.DeepEqual(es, want) {
		t.Fatalf("got %q", es)
	}
	if n := len(Elements([]byte(`[1,2,3,4,5,6]`), 2)); n != 3 {
		t.Fatalf("stopped after %d elements, want 3", n)
	}
}
