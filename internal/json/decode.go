package json

import (
	stdjson "encoding/json"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

var rawMessageType = reflect.TypeFor[RawMessage]()

// An InvalidUnmarshalError describes an invalid argument passed to Unmarshal.
type InvalidUnmarshalError = stdjson.InvalidUnmarshalError

// Unmarshal parses the JSON-encoded data and stores the result in the value pointed to by v, as
// encoding/json does for the kinds it supports (see the package comment): a syntax error first,
// else the first type error after decoding everything else.
func Unmarshal(data []byte, v any) error {
	if err := checkValid(data); err != nil {
		return err
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return &InvalidUnmarshalError{Type: reflect.TypeOf(v)}
	}
	d := decoder{data: data}
	d.value(rv)
	return d.err
}

// ValueEnd returns the index just past the JSON value at the start of data (after any white
// space), or what is wrong with it: io.ErrUnexpectedEOF when data ends inside it, else the
// scanner's *SyntaxError. Nesting is counted from that value.
func ValueEnd(data []byte) (int, error) {
	i := skipSpace(data, 0)
	end := skipValue(data, i)
	err := checkValid(data[:end])
	switch {
	case err == nil:
		return end, nil
	case end < len(data):
		// A number or literal cut short by what follows ("tru}") is wrong at that byte.
		if e := checkValid(data[:end+1]); e != nil {
			return 0, e
		}
		return 0, err
	}
	var se *SyntaxError
	if errors.As(err, &se) && se.Offset == int64(len(data)) {
		return 0, io.ErrUnexpectedEOF
	}
	return 0, err
}

// decoder walks data, which checkValid has accepted.
type decoder struct {
	data   []byte
	i      int
	err    error
	fields []string // JSON member names from the root to the value being decoded
	strct  reflect.Type
}

func (d *decoder) typeError(what string, t reflect.Type) {
	if d.err != nil {
		return
	}
	e := &UnmarshalTypeError{Value: what, Type: t, Offset: int64(d.i)}
	if d.strct != nil || len(d.fields) > 0 {
		if d.strct != nil {
			e.Struct = d.strct.Name()
		}
		e.Field = strings.Join(d.fields, ".")
	}
	d.err = e
}

// value decodes the value at d.i into v and moves d.i past it.
func (d *decoder) value(v reflect.Value) {
	start := skipSpace(d.data, d.i)
	end := skipValue(d.data, start)
	d.i = end
	lit := d.data[start:end]

	if lit[0] == 'n' {
		// null: a RawMessage holds it; pointers, interfaces, maps and slices become nil (the
		// outermost pointer that can be set); other values stay as they are.
		for v.Kind() == reflect.Pointer && !v.CanSet() && !v.IsNil() {
			v = v.Elem()
		}
		switch {
		case v.Type() == rawMessageType:
			v.SetBytes([]byte("null"))
		case v.Kind() == reflect.Interface, v.Kind() == reflect.Pointer, v.Kind() == reflect.Map, v.Kind() == reflect.Slice:
			if v.CanSet() {
				v.SetZero()
			}
		}
		return
	}
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		v = v.Elem()
	}
	if v.Type() == rawMessageType {
		v.SetBytes(append([]byte(nil), lit...))
		return
	}
	if v.Kind() == reflect.Interface && v.NumMethod() == 0 {
		d.i = start
		if g := d.generic(); g != nil {
			v.Set(reflect.ValueOf(g))
		} else {
			v.SetZero()
		}
		return
	}
	switch lit[0] {
	case '{':
		d.i = start
		d.object(v)
	case '[':
		d.i = start
		d.array(v)
	case '"':
		s := unquote(lit)
		if v.Kind() != reflect.String {
			d.typeError("string", v.Type())
			return
		}
		v.SetString(s)
	case 't', 'f':
		if v.Kind() != reflect.Bool {
			d.typeError("bool", v.Type())
			return
		}
		v.SetBool(lit[0] == 't')
	default:
		d.number(v, string(lit))
	}
}

func (d *decoder) number(v reflect.Value, s string) {
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v.OverflowInt(n) {
			d.typeError("number "+s, v.Type())
			return
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || v.OverflowUint(n) {
			d.typeError("number "+s, v.Type())
			return
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		n, err := strconv.ParseFloat(s, v.Type().Bits())
		if err != nil || v.OverflowFloat(n) {
			d.typeError("number "+s, v.Type())
			return
		}
		v.SetFloat(n)
	default:
		d.typeError("number", v.Type())
	}
}

func (d *decoder) object(v reflect.Value) {
	var fields []field
	switch v.Kind() {
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			d.typeError("object", v.Type())
			d.i = skipValue(d.data, d.i)
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
	case reflect.Struct:
		fields = cachedFields(v.Type())
	default:
		d.typeError("object", v.Type())
		d.i = skipValue(d.data, d.i)
		return
	}
	outerStruct, depth := d.strct, len(d.fields)
	d.members(func(key string) bool {
		if v.Kind() == reflect.Map {
			elem := reflect.New(v.Type().Elem()).Elem()
			d.value(elem) // an error names the map's field, not the key (as encoding/json's)
			v.SetMapIndex(reflect.ValueOf(key).Convert(v.Type().Key()), elem)
			return true
		}
		f := findField(fields, key)
		if f == nil {
			d.i = skipValue(d.data, skipSpace(d.data, d.i))
			return true
		}
		fv := v
		for _, x := range f.index {
			if fv.Kind() == reflect.Pointer {
				if fv.IsNil() {
					fv.Set(reflect.New(fv.Type().Elem()))
				}
				fv = fv.Elem()
			}
			fv = fv.Field(x)
		}
		d.fields = append(d.fields[:depth], f.name)
		d.strct = v.Type()
		d.value(fv)
		return true
	})
	d.fields, d.strct = d.fields[:depth], outerStruct
}

func (d *decoder) array(v reflect.Value) {
	switch v.Kind() {
	case reflect.Slice, reflect.Array:
	default:
		d.typeError("array", v.Type())
		d.i = skipValue(d.data, d.i)
		return
	}
	n := 0
	d.elements(func() bool {
		switch {
		case v.Kind() == reflect.Slice:
			if n >= v.Cap() {
				v.Grow(1)
			}
			v.SetLen(n + 1)
			d.value(v.Index(n))
		case n < v.Len():
			d.value(v.Index(n))
		default:
			d.i = skipValue(d.data, skipSpace(d.data, d.i))
		}
		n++
		return true
	})
	switch {
	case v.Kind() == reflect.Array:
		for ; n < v.Len(); n++ {
			v.Index(n).SetZero()
		}
	case n == 0 && v.IsNil():
		v.Set(reflect.MakeSlice(v.Type(), 0, 0))
	default:
		v.SetLen(n)
	}
}

// members walks the object at d.i (after any space), calling each with d.i at a member's value,
// which each must move d.i past; false from each ends the walk there. After a whole walk d.i is
// past the '}'.
func (d *decoder) members(each func(key string) bool) {
	d.i = skipSpace(d.data, d.i) + 1 // past '{'
	for {
		d.i = skipSpace(d.data, d.i)
		if d.i >= len(d.data) || d.data[d.i] == '}' {
			d.i++
			return
		}
		if d.data[d.i] == ',' {
			d.i = skipSpace(d.data, d.i+1)
		}
		kend := skipString(d.data, d.i)
		key := unquote(d.data[d.i:kend])
		d.i = skipSpace(d.data, kend) + 1 // past ':'
		if !each(key) {
			return
		}
	}
}

// elements is members for an array.
func (d *decoder) elements(each func() bool) {
	d.i = skipSpace(d.data, d.i) + 1 // past '['
	for {
		d.i = skipSpace(d.data, d.i)
		if d.i >= len(d.data) || d.data[d.i] == ']' {
			d.i++
			return
		}
		if d.data[d.i] == ',' {
			d.i++
		}
		if !each() {
			return
		}
	}
}

// generic decodes the value at d.i as encoding/json does into an interface{}: map[string]any,
// []any, float64, string, bool or nil.
func (d *decoder) generic() any {
	start := skipSpace(d.data, d.i)
	switch d.data[start] {
	case '{':
		m := map[string]any{}
		d.i = start
		d.members(func(key string) bool { m[key] = d.generic(); return true })
		return m
	case '[':
		a := []any{}
		d.i = start
		d.elements(func() bool { a = append(a, d.generic()); return true })
		return a
	}
	end := skipValue(d.data, start)
	d.i = end
	lit := d.data[start:end]
	switch lit[0] {
	case '"':
		return unquote(lit)
	case 't':
		return true
	case 'f':
		return false
	case 'n':
		return nil
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		d.typeError("number "+string(lit), reflect.TypeFor[float64]())
		return nil
	}
	return f
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func skipSpace(data []byte, i int) int {
	for i < len(data) && isSpace(data[i]) {
		i++
	}
	return i
}

// skipValue returns the index just past the value that starts at data[i]. On invalid JSON it
// stops somewhere; checkValid says what is wrong.
func skipValue(data []byte, i int) int {
	if i >= len(data) {
		return i
	}
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for i < len(data) {
			switch data[i] {
			case '"':
				i = skipString(data, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default: // number, true, false, null
		for i < len(data) {
			switch c := data[i]; {
			case c == ',' || c == '}' || c == ']' || isSpace(c):
				return i
			}
			i++
		}
		return i
	}
}

// skipString returns the index just past the string that starts at data[i].
func skipString(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// unquote returns the text of a valid JSON string literal, as encoding/json decodes it: invalid
// UTF-8 and lone surrogates become U+FFFD.
func unquote(lit []byte) string {
	s := lit[1 : len(lit)-1]
	plain := true
	for _, c := range s {
		if c == '\\' || c == '"' || c < ' ' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if plain {
		return string(s)
	}
	b := make([]byte, 0, len(s)+2*utf8.UTFMax)
	for r := 0; r < len(s); {
		c := s[r]
		switch {
		case c == '\\':
			r++
			switch s[r] {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				rr := getu4(s[r-1:])
				r += 4
				if utf16.IsSurrogate(rr) {
					if r+7 <= len(s) && s[r+1] == '\\' && s[r+2] == 'u' {
						if dec := utf16.DecodeRune(rr, getu4(s[r+1:])); dec != utf8.RuneError {
							b = utf8.AppendRune(b, dec)
							r += 6 + 1
							continue
						}
					}
					rr = utf8.RuneError
				}
				b = utf8.AppendRune(b, rr)
			default: // '"', '\\', '/'
				b = append(b, s[r])
			}
			r++
		case c < utf8.RuneSelf:
			b = append(b, c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			r += size
			b = utf8.AppendRune(b, rr)
		}
	}
	return string(b)
}

// getu4 decodes the four hex digits of a \uXXXX escape at the start of s.
func getu4(s []byte) rune {
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		}
		r = r*16 + rune(c)
	}
	return r
}
