package blob

import (
	"bytes"
	"encoding/binary"
)

// Type is a blobmsg type: the id of an extended attribute (blobmsg.h).
type Type uint8

// blobmsg types.
const (
	TypeUnspec Type = iota
	TypeArray
	TypeTable
	TypeString
	TypeInt64
	TypeInt32
	TypeInt16
	TypeInt8
	TypeDouble
	// TypeBool is TypeInt8, as in libubox: a bool is a 1-byte integer.
	TypeBool = TypeInt8
)

// MaxDepth bounds the nesting of tables and arrays that Decode and AppendJSON accept (json-c's
// parser, which makes the blobmsg `ubus call` sends, stops at 32 too).
const MaxDepth = 32

var typeNames = [...]string{"unspec", "array", "table", "string", "int64", "int32", "int16", "int8", "double"}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "type" + string(rune('0'+t/100%10)) + string(rune('0'+t/10%10)) + string(rune('0'+t%10))
}

// Field is one decoded blobmsg field. Which value is set depends on Type: Int for the integer
// types (TypeBool included), Float for TypeDouble, Str for TypeString (without the NUL) and
// TypeUnspec (its raw data), List for TypeTable and TypeArray (array elements have no name).
type Field struct {
	Name  string
	Type  Type
	Int   int64
	Float float64
	Str   string
	List  []Field
}

// hdrLen is blobmsg_hdrlen: the name length word, the name and its NUL, padded.
func hdrLen(namelen int) int { return Pad(2 + namelen + 1) }

// field splits an extended attribute into its name and payload, checking them as
// blobmsg_check_attr_len does.
func field(a Attr, named bool) (name string, payload []byte, err error) {
	if !a.Extended {
		return "", nil, malformed("attribute %d is not a blobmsg field (no extended bit)", a.ID)
	}
	if len(a.Data) < 2 {
		return "", nil, malformed("a blobmsg field of %d bytes has no room for its name length", len(a.Data))
	}
	n := int(binary.BigEndian.Uint16(a.Data))
	h := hdrLen(n)
	if len(a.Data) < h {
		return "", nil, malformed("a blobmsg field's name of %d bytes runs past its %d bytes", n, len(a.Data))
	}
	if a.Data[2+n] != 0 {
		return "", nil, malformed("a blobmsg field's name is not NUL-terminated")
	}
	if named && n == 0 {
		return "", nil, malformed("a table member has no name")
	}
	return string(a.Data[2 : 2+n]), a.Data[h:], nil
}

// Decode decodes the blobmsg fields of a table (named) or an array (not named): the data of a
// UBUS_ATTR_DATA attribute is a table.
func Decode(b []byte, named bool) ([]Field, error) {
	return decodeList(b, named, 0)
}

func decodeList(b []byte, named bool, depth int) ([]Field, error) {
	if depth > MaxDepth {
		return nil, malformed("tables and arrays nested deeper than %d", MaxDepth)
	}
	var out []Field
	for len(b) > 0 {
		a, rest, err := Next(b)
		if err != nil {
			return nil, err
		}
		f, err := decodeField(a, named, depth)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
		b = rest
	}
	return out, nil
}

func decodeField(a Attr, named bool, depth int) (Field, error) {
	name, p, err := field(a, named)
	if err != nil {
		return Field{}, err
	}
	f := Field{Name: name, Type: Type(a.ID)}
	sized := func(n int) error {
		if len(p) != n {
			return malformed("the %s field %q has %d bytes, not %d", f.Type, name, len(p), n)
		}
		return nil
	}
	switch f.Type {
	case TypeUnspec:
		f.Str = string(p)
	case TypeArray, TypeTable:
		f.List, err = decodeList(p, f.Type == TypeTable, depth+1)
	case TypeString:
		if len(p) == 0 || p[len(p)-1] != 0 {
			return Field{}, malformed("the string field %q is not NUL-terminated", name)
		}
		// C reads the string up to its first NUL.
		f.Str = string(p[:bytes.IndexByte(p, 0)])
	case TypeInt64:
		if err = sized(8); err == nil {
			f.Int = int64(binary.BigEndian.Uint64(p))
		}
	case TypeInt32:
		if err = sized(4); err == nil {
			f.Int = int64(int32(binary.BigEndian.Uint32(p)))
		}
	case TypeInt16:
		if err = sized(2); err == nil {
			f.Int = int64(int16(binary.BigEndian.Uint16(p)))
		}
	case TypeInt8:
		if err = sized(1); err == nil {
			f.Int = int64(int8(p[0]))
		}
	case TypeDouble:
		if err = sized(8); err == nil {
			f.Float = f64from(binary.BigEndian.Uint64(p))
		}
	default:
		return Field{}, malformed("the field %q has the unknown blobmsg type %d", name, a.ID)
	}
	if err != nil {
		return Field{}, err
	}
	return f, nil
}

// blobmsg encoding.

// start appends an extended attribute's header word and name; the caller appends the payload
// and calls end.
func (w *Buf) start(t Type, name string) int {
	off := len(w.b)
	w.b = binary.BigEndian.AppendUint32(w.b, word(uint8(t), true, 0))
	w.b = binary.BigEndian.AppendUint16(w.b, uint16(len(name)))
	w.b = append(w.b, name...)
	w.b = append(w.b, 0)
	w.pad()
	return off
}

// end sets the length of the attribute at off to what follows it (without padding), then pads.
func (w *Buf) end(off int) {
	w.setLen(off)
	w.pad()
}

// AddString appends a string field (blobmsg_add_string): the bytes up to a NUL, as C sees them.
func (w *Buf) AddString(name, s string) {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			s = s[:i]
			break
		}
	}
	off := w.start(TypeString, name)
	w.b = append(w.b, s...)
	w.b = append(w.b, 0)
	w.end(off)
}

// AddInt appends an integer field of type t (TypeInt8/Bool, TypeInt16, TypeInt32, TypeInt64),
// v cut to its size.
func (w *Buf) AddInt(name string, t Type, v int64) {
	off := w.start(t, name)
	switch t {
	case TypeInt8:
		w.b = append(w.b, uint8(v))
	case TypeInt16:
		w.b = binary.BigEndian.AppendUint16(w.b, uint16(v))
	case TypeInt32:
		w.b = binary.BigEndian.AppendUint32(w.b, uint32(v))
	default:
		w.b = binary.BigEndian.AppendUint64(w.b, uint64(v))
	}
	w.end(off)
}

// AddBool appends a bool field (blobmsg_add_u8 of 0 or 1).
func (w *Buf) AddBool(name string, v bool) {
	var i int64
	if v {
		i = 1
	}
	w.AddInt(name, TypeBool, i)
}

// AddDouble appends a double field.
func (w *Buf) AddDouble(name string, v float64) {
	off := w.start(TypeDouble, name)
	w.b = binary.BigEndian.AppendUint64(w.b, f64bits(v))
	w.end(off)
}

// AddUnspec appends an unspec field with raw data (a JSON null is one with none).
func (w *Buf) AddUnspec(name string, data []byte) {
	off := w.start(TypeUnspec, name)
	w.b = append(w.b, data...)
	w.end(off)
}

// OpenTable starts a table field; the fields added until CloseField are its members.
func (w *Buf) OpenTable(name string) Mark { return Mark{w.start(TypeTable, name)} }

// OpenArray starts an array field; its elements are added with an empty name.
func (w *Buf) OpenArray(name string) Mark { return Mark{w.start(TypeArray, name)} }

// CloseField ends a table or array.
func (w *Buf) CloseField(m Mark) { w.end(m.off) }

// Encode appends fields, the inverse of Decode.
func (w *Buf) Encode(fields []Field) {
	for _, f := range fields {
		switch f.Type {
		case TypeTable, TypeArray:
			m := Mark{w.start(f.Type, f.Name)}
			w.Encode(f.List)
			w.CloseField(m)
		case TypeString:
			w.AddString(f.Name, f.Str)
		case TypeDouble:
			w.AddDouble(f.Name, f.Float)
		case TypeUnspec:
			w.AddUnspec(f.Name, []byte(f.Str))
		default:
			w.AddInt(f.Name, f.Type, f.Int)
		}
	}
}

// appendQuoted appends s as a JSON string. Bytes that are not UTF-8 are kept as they are, as
// libubox's blobmsg_format_json keeps them, for the reader to refuse.
func appendQuoted(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
