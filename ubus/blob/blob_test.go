package blob

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGolden holds each encoding to the bytes libubox makes (worked out from blob.h and
// blobmsg.h, and the same as in the recorded ubusd session of ../testdata).
func TestGolden(t *testing.T) {
	tests := []struct {
		name  string
		build func(w *Buf)
		want  string
	}{
		{"plain int32", func(w *Buf) { w.PutU32(3, 0x11223344) }, "03000008 11223344"},
		{"plain int8 padded", func(w *Buf) { w.PutU8(10, 1) }, "0a000005 01000000"},
		{"plain string", func(w *Buf) { w.PutString(2, "delve") }, "0200000a 64656c76 65000000"},
		{"plain nested", func(w *Buf) { m := w.Open(7); w.PutU32(1, 0); w.Close(m) }, "0700000c 01000008 00000000"},
		// extended bit, type 3, length 16: name length 4, "name\0" padded to 8, "abc\0"
		{"string", func(w *Buf) { w.AddString("name", "abc") }, "83000010 0004 6e616d65 00 00 61626300"},
		{"string cut at NUL", func(w *Buf) { w.AddString("s", "a\x00b") }, "8300000a 0001 7300 6100 0000"},
		{"int32", func(w *Buf) { w.AddInt("n", TypeInt32, -7) }, "8500000c 0001 6e00 fffffff9"},
		{"int64", func(w *Buf) { w.AddInt("n", TypeInt64, 5000000000) }, "84000010 0001 6e00 000000012a05f200"},
		{"int16 padded", func(w *Buf) { w.AddInt("n", TypeInt16, 258) }, "8600000a 0001 6e00 0102 0000"},
		{"bool", func(w *Buf) { w.AddBool("b", true) }, "87000009 0001 6200 01 000000"},
		{"double", func(w *Buf) { w.AddDouble("f", 1.5) }, "88000010 0001 6600 3ff8000000000000"},
		{"unspec (null)", func(w *Buf) { w.AddUnspec("z", nil) }, "80000008 0001 7a00"},
		{"empty table", func(w *Buf) { m := w.OpenTable("e"); w.CloseField(m) }, "82000008 0001 6500"},
		{"array of unnamed", func(w *Buf) {
			m := w.OpenArray("a")
			w.AddInt("", TypeInt32, 1)
			w.AddString("", "x")
			w.CloseField(m)
		}, "81000020 0001 6100 8500000c 0000 0000 00000001 8300000a 0000 0000 7800 0000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w Buf
			tt.build(&w)
			if want := unhex(t, tt.want); !bytes.Equal(w.Bytes(), want) {
				t.Fatalf("got  %x\nwant %x", w.Bytes(), want)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	fields := []Field{
		{Name: "s", Type: TypeString, Str: "hello"},
		{Name: "empty", Type: TypeString},
		{Name: "i8", Type: TypeInt8, Int: -1},
		{Name: "i16", Type: TypeInt16, Int: -300},
		{Name: "i32", Type: TypeInt32, Int: math.MinInt32},
		{Name: "i64", Type: TypeInt64, Int: math.MaxInt64},
		{Name: "d", Type: TypeDouble, Float: -2.25},
		{Name: "u", Type: TypeUnspec, Str: "\x00\x01raw"},
		{Name: "t", Type: TypeTable, List: []Field{
			{Name: "a", Type: TypeArray, List: []Field{{Type: TypeString, Str: "x"}, {Type: TypeTable}, {Type: TypeArray}}},
			{Name: strings.Repeat("n", 300), Type: TypeBool, Int: 1},
		}},
	}
	var w Buf
	w.Encode(fields)
	got, err := Decode(w.Bytes(), true)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, fields) {
		t.Fatalf("got  %+v\nwant %+v", got, fields)
	}
}

func TestJSON(t *testing.T) {
	// The arguments `ubus call` makes of this JSON are in ../testdata/session.txt (connection 2),
	// and TestTranscript there holds AddJSON to them byte for byte.
	in := `{"name":"a..b","n":5,"neg":-7,"big":5000000000,"f":1.5,"b":true,"z":null,"arr":[1,"x",false],"t":{"k":"v","e":{}}}`
	var w Buf
	if err := AddJSON(&w, []byte(in)); err != nil {
		t.Fatal(err)
	}
	got, err := AppendJSON(nil, w.Bytes(), true)
	if err != nil {
		t.Fatal(err)
	}
	// As blobmsg_format_json writes it: a double with six decimals, int8 as a boolean.
	want := `{"name":"a..b","n":5,"neg":-7,"big":5000000000,"f":1.500000,"b":true,"z":null,"arr":[1,"x",false],"t":{"k":"v","e":{}}}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	for _, bad := range []string{`[1]`, `"s"`, `{`, `{"a":1,"a":2}`, strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40)} {
		w.Reset()
		if err := AddJSON(&w, []byte(bad)); err == nil {
			t.Errorf("AddJSON(%.30s) accepted", bad)
		}
	}
	w.Reset()
	if err := AddJSON(&w, []byte(`{"s":"q\"\\\n\u0001é"}`)); err != nil {
		t.Fatal(err)
	}
	if got, _ := AppendJSON(nil, w.Bytes(), true); string(got) != `{"s":"q\"\\\n\u0001é"}` {
		t.Fatalf("escapes: %s", got)
	}
}

// nested is n tables (named t) or arrays, each in the one before.
func nested(n int, tables bool) []byte {
	var w Buf
	var ms []Mark
	for range n {
		if tables {
			ms = append(ms, w.OpenTable("t"))
		} else {
			ms = append(ms, w.OpenArray(""))
		}
	}
	for i := len(ms) - 1; i >= 0; i-- {
		w.CloseField(ms[i])
	}
	return w.Bytes()
}

// TestMalformed: each bad input is refused with an error wrapping ErrMalformed, naming what is
// wrong.
func TestMalformed(t *testing.T) {
	deep := func(n int) []byte { return nested(n, true) }
	tests := []struct {
		name, in string
		raw      []byte
		want     string
	}{
		{name: "short header", in: "830000", want: "too few for an attribute header"},
		{name: "length below header", in: "83000003 0000", want: "less than its header"},
		{name: "length past the end", in: "83000020 0001 6100", want: "where 8 are left"},
		{name: "not extended", in: "03000008 00016100", want: "no extended bit"},
		{name: "no room for name length", in: "83000005 00000000", want: "no room for its name length"},
		{name: "name past the end", in: "83000008 0009 6100", want: "runs past"},
		{name: "name not terminated", in: "83000008 0001 6161", want: "not NUL-terminated"},
		{name: "member without name", in: "83000008 0000 0000", want: "has no name"},
		{name: "int32 of 2 bytes", in: "8500000a 0001 6e00 0000 0000", want: "has 2 bytes, not 4"},
		{name: "int8 of 0 bytes", in: "87000008 0001 6e00", want: "has 0 bytes, not 1"},
		{name: "double of 4 bytes", in: "8800000c 0001 6600 00000000", want: "has 4 bytes, not 8"},
		{name: "string without NUL", in: "8300000c 0001 7300 61626364", want: "not NUL-terminated"},
		{name: "empty string payload", in: "83000008 0001 7300", want: "not NUL-terminated"},
		{name: "unknown type", in: "89000008 0001 7800", want: "unknown blobmsg type 9"},
		{name: "bad member in a table", in: "82000010 0001 7400 83000008 00016161", want: "not NUL-terminated"},
		{name: "too deep", raw: deep(MaxDepth + 1), want: "nested deeper"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.raw
			if in == nil {
				in = unhex(t, tt.in)
			}
			_, err := Decode(in, true)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Decode: %v; want ErrMalformed saying %q", err, tt.want)
			}
			if _, err := AppendJSON(nil, in, true); err == nil {
				t.Fatal("AppendJSON accepted it")
			}
		})
	}
	if _, err := Decode(deep(MaxDepth), true); err != nil {
		t.Fatalf("%d levels: %v", MaxDepth, err)
	}
}

// TestDecodeAllocatesInProportion: whatever the input claims, decoding allocates a bounded
// multiple of the bytes it is given.
func TestDecodeAllocatesInProportion(t *testing.T) {
	many := bytes.Repeat(unhex(t, "87000009 0001 6200 01 000000"), 4096) // 4096 one-byte bools
	for _, in := range [][]byte{many, nested(MaxDepth, false), unhex(t, "83ffffff 0001 6100"), unhex(t, "82000010 0001 7400 82ffffff 0000 0000")} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, _ = Decode(in, true)
		_, _ = AppendJSON(nil, in, true)
		runtime.ReadMemStats(&after)
		if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(64*len(in)+16<<10); got > limit {
			t.Errorf("%d bytes of input: %d bytes allocated, more than %d", len(in), got, limit)
		}
	}
}

func FuzzDecode(f *testing.F) {
	var w Buf
	w.Encode([]Field{{Name: "s", Type: TypeString, Str: "x"}, {Name: "t", Type: TypeTable, List: []Field{{Name: "a", Type: TypeArray, List: []Field{{Type: TypeDouble, Float: 1}}}}}})
	f.Add(w.Bytes(), true)
	f.Add(unhex(f, "8300000a 0001 7300 6100 0000"), false)
	f.Add(unhex(f, "83ffffff 0001 6100"), true)
	f.Add([]byte{}, true)
	f.Fuzz(func(t *testing.T, in []byte, named bool) {
		fs, err := Decode(in, named)
		js, jerr := AppendJSON(nil, in, named)
		if (err == nil) != (jerr == nil) {
			t.Fatalf("Decode: %v, AppendJSON: %v", err, jerr)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// What decodes encodes back to something that decodes to the same.
		var w Buf
		w.Encode(fs)
		again, err := Decode(w.Bytes(), named)
		if err != nil || !reflect.DeepEqual(normal(again), normal(fs)) {
			t.Fatalf("re-encoded %x: %v\n%+v\n%+v", w.Bytes(), err, again, fs)
		}
		_ = js
	})
}

// normal makes NaN doubles comparable.
func normal(fs []Field) []Field {
	for i := range fs {
		if fs[i].Float != fs[i].Float {
			fs[i].Float = 0
		}
		fs[i].List = normal(fs[i].List)
	}
	return fs
}
