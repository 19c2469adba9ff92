package json

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
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

// manyMembers is an object with as many members as a 64 KiB request line can hold, n of them
// numbered and then the three of a status call.
func manyMembers() (b *strings.Builder, n int) {
	b = &strings.Builder{}
	b.WriteString("{")
	for ; b.Len() < 64<<10-100; n++ {
		b.WriteString(`"` + strconv.Itoa(n) + `":0,`)
	}
	b.WriteString(`"jsonrpc":"2.0","id":1,"method":"status"}`)
	return b, n
}

// TestManyMembers: an object with as many members as a 64 KiB request line can hold is split,
// and a duplicate is still found wherever it is. Its time, linear in its size, is
// BenchmarkManyMembers' (comparing each key with all before it took about a second for its
// 7,000 members).
func TestManyMembers(t *testing.T) {
	b, n := manyMembers()
	data := []byte(b.String())
	ms, err := Members(data)
	if err != nil || len(ms) != n+3 {
		t.Fatalf("%d members of %d: %v", len(ms), n+3, err)
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

// BenchmarkManyMembers: splitting the largest object a request line can hold (linear: about
// 7,000 members; comparing each key with all before it took about a second).
func BenchmarkManyMembers(b *testing.B) {
	sb, _ := manyMembers()
	data := []byte(sb.String())
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Members(data); err != nil {
			b.Fatal(err)
		}
	}
}
