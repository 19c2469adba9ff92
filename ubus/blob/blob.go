// Package blob is libubox's blob and blobmsg encoding, the body of every ubus message.
//
// A blob attribute is a 4-byte big-endian header word followed by its data and zero padding to a
// multiple of 4 bytes. The word holds the extended bit (bit 31), a 7-bit id (bits 24-30) and the
// length of header and data without the padding (bits 0-23). ubusd's own message attributes
// (UBUS_ATTR_OBJID, ...) are plain attributes; blobmsg fields are extended ones whose data starts
// with a big-endian 16-bit name length and the NUL-terminated name, padded to 4 bytes, and whose
// id is the blobmsg type (libubox blob.h, blobmsg.h).
//
// Decoding never panics on hostile input and allocates no more than a constant times the size of
// its input: every length is checked against the bytes that are there before it is used.
package blob

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Header word fields (blob.h).
const (
	idMask   = 0x7f000000
	idShift  = 24
	lenMask  = 0x00ffffff
	extended = 0x80000000
	// HeaderLen is the size of an attribute's header word.
	HeaderLen = 4
	// Align is the alignment of attributes.
	Align = 4
	// MaxLen is the largest length a header word can hold, header included.
	MaxLen = lenMask
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed blob")

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
}

// Pad is n rounded up to the alignment.
func Pad(n int) int { return (n + Align - 1) &^ (Align - 1) }

// Attr is one decoded attribute.
type Attr struct {
	ID       uint8
	Extended bool
	// Data is the attribute's data without header and padding; it aliases the decoded bytes.
	Data []byte
}

// Next decodes the attribute at the start of b and returns it and the bytes after it and its
// padding. The padding may be missing after the last attribute of b (libubox reads it so).
func Next(b []byte) (Attr, []byte, error) {
	if len(b) < HeaderLen {
		return Attr{}, nil, malformed("%d bytes left, too few for an attribute header", len(b))
	}
	w := binary.BigEndian.Uint32(b)
	n := int(w & lenMask)
	if n < HeaderLen {
		return Attr{}, nil, malformed("an attribute's length %d is less than its header", n)
	}
	if n > len(b) {
		return Attr{}, nil, malformed("an attribute of %d bytes where %d are left", n, len(b))
	}
	a := Attr{ID: uint8((w & idMask) >> idShift), Extended: w&extended != 0, Data: b[HeaderLen:n:n]}
	rest := b[min(Pad(n), len(b)):]
	return a, rest, nil
}

// Attrs decodes a sequence of attributes (a container's data).
func Attrs(b []byte) ([]Attr, error) {
	var out []Attr
	for len(b) > 0 {
		a, rest, err := Next(b)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
		b = rest
	}
	return out, nil
}

// Buf builds attributes; the zero value is an empty buffer. Nested attributes are opened with
// Open, which returns a mark for Close.
type Buf struct {
	b []byte
}

// Bytes returns what was built.
func (w *Buf) Bytes() []byte { return w.b }

// Len is the number of bytes built.
func (w *Buf) Len() int { return len(w.b) }

// Reset empties the buffer, keeping its memory.
func (w *Buf) Reset() { w.b = w.b[:0] }

// SetBytes makes the buffer build on after b (b is used, not copied).
func (w *Buf) SetBytes(b []byte) { w.b = b }

func word(id uint8, ext bool, n int) uint32 {
	v := uint32(id)<<idShift&idMask | uint32(n)&lenMask
	if ext {
		v |= extended
	}
	return v
}

func (w *Buf) pad() {
	for len(w.b)%Align != 0 {
		w.b = append(w.b, 0)
	}
}

// Put appends a plain attribute with the given data.
func (w *Buf) Put(id uint8, data []byte) {
	w.b = binary.BigEndian.AppendUint32(w.b, word(id, false, HeaderLen+len(data)))
	w.b = append(w.b, data...)
	w.pad()
}

// PutU8 appends a plain 1-byte attribute (blob_put_int8).
func (w *Buf) PutU8(id uint8, v uint8) { w.Put(id, []byte{v}) }

// PutU32 appends a plain big-endian 4-byte attribute (blob_put_int32).
func (w *Buf) PutU32(id uint8, v uint32) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	w.Put(id, b[:])
}

// PutString appends a plain NUL-terminated string attribute (blob_put_string).
func (w *Buf) PutString(id uint8, s string) {
	w.b = binary.BigEndian.AppendUint32(w.b, word(id, false, HeaderLen+len(s)+1))
	w.b = append(w.b, s...)
	w.b = append(w.b, 0)
	w.pad()
}

// Mark is an open nested attribute.
type Mark struct{ off int }

// Open starts a plain nested attribute (blob_nest_start); the attributes added until Close are
// its data.
func (w *Buf) Open(id uint8) Mark {
	m := Mark{len(w.b)}
	w.b = binary.BigEndian.AppendUint32(w.b, word(id, false, HeaderLen))
	return m
}

// Close ends the nested attribute m, setting its length.
func (w *Buf) Close(m Mark) {
	w.setLen(m.off)
}

func (w *Buf) setLen(off int) {
	h := binary.BigEndian.Uint32(w.b[off:])
	binary.BigEndian.PutUint32(w.b[off:], h&^lenMask|uint32(len(w.b)-off)&lenMask)
}

// U32 reads the data of a 4-byte attribute.
func U32(a Attr) (uint32, error) {
	if len(a.Data) != 4 {
		return 0, malformed("attribute %d has %d bytes, not the 4 of an int32", a.ID, len(a.Data))
	}
	return binary.BigEndian.Uint32(a.Data), nil
}

// U8 reads the data of a 1-byte attribute.
func U8(a Attr) (uint8, error) {
	if len(a.Data) != 1 {
		return 0, malformed("attribute %d has %d bytes, not the 1 of an int8", a.ID, len(a.Data))
	}
	return a.Data[0], nil
}

// String reads the data of a NUL-terminated string attribute, without the NUL.
func String(a Attr) (string, error) {
	if len(a.Data) == 0 || a.Data[len(a.Data)-1] != 0 {
		return "", malformed("attribute %d is not a NUL-terminated string", a.ID)
	}
	// C reads it up to its first NUL.
	return string(a.Data[:bytes.IndexByte(a.Data, 0)]), nil
}

// float bits helpers for blobmsg doubles.
func f64bits(f float64) uint64 { return math.Float64bits(f) }
func f64from(u uint64) float64 { return math.Float64frombits(u) }
