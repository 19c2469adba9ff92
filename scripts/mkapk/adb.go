package main

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// The ADB value encoding (apk-tools doc/apk-v3.5.scd, src/adb.h): a little-endian u32 whose
// top 4 bits are the type and the low 28 bits the value, or, for the indirect types, the offset
// of the value in the ADB block.
const (
	typeInt    = 0x10000000 // value in the tag
	typeInt32  = 0x20000000
	typeInt64  = 0x30000000
	typeBlob8  = 0x80000000 // u8 length, then the bytes
	typeBlob16 = 0x90000000
	typeBlob32 = 0xa0000000
	typeObject = 0xe0000000 // u32 slot count (itself included), then the slots
	valueMask  = 0x0fffffff
)

// adb builds an ADB block the way apk-tools' adb_w_* functions do (src/adb.c), so that the
// same input gives the same bytes as apk mkpkg: the 8-byte header, then every value where it
// is first written, aligned to its size; a value written before with the same bytes (and a
// suitable alignment) is not written again but shared (adb_w_data's cache).
type adb struct {
	b     []byte
	cache map[string]uint32 // bytes -> offset of their latest copy
	err   error
}

func newADB() *adb {
	// struct adb_hdr: compat version 0, version 0, reserved, root value (set last).
	return &adb{b: make([]byte, 8), cache: map[string]uint32{}}
}

// raw appends data at the next offset aligned to align.
func (a *adb) raw(data []byte, align int) uint32 {
	for len(a.b)%align != 0 {
		a.b = append(a.b, 0)
	}
	off := len(a.b)
	if off+len(data) > valueMask {
		a.err = fmt.Errorf("ADB block over %d bytes", valueMask)
	}
	a.b = append(a.b, data...)
	return uint32(off)
}

// data is raw with apk's sharing of identical values.
func (a *adb) data(data []byte, align int) uint32 {
	if off, ok := a.cache[string(data)]; ok && off%uint32(align) == 0 {
		return off
	}
	off := a.raw(data, align)
	a.cache[string(data)] = off
	return off
}

// blob writes a byte string; an empty one is null, as in adb_w_blob.
func (a *adb) blob(s []byte) uint32 {
	return a.blobVal(s, true)
}

func (a *adb) blobVal(s []byte, share bool) uint32 {
	var hdr []byte
	var typ uint32
	switch n := len(s); {
	case n == 0:
		return 0
	case n <= 0xff:
		hdr, typ = []byte{byte(n)}, typeBlob8
	case n <= 0xffff:
		hdr, typ = binary.LittleEndian.AppendUint16(nil, uint16(n)), typeBlob16
	default:
		hdr, typ = binary.LittleEndian.AppendUint32(nil, uint32(n)), typeBlob32
	}
	v := append(hdr, s...)
	if !share {
		return typ | a.raw(v, len(hdr))
	}
	return typ | a.data(v, len(hdr))
}

func (a *adb) str(s string) uint32 { return a.blob([]byte(s)) }

// integer is adb_w_int: in the tag below 2^28, else a 32- or 64-bit value aligned to 4.
func (a *adb) integer(n uint64) uint32 {
	switch {
	case n < 0x10000000:
		return typeInt | uint32(n)
	case n < 1<<32:
		return typeInt32 | a.data(binary.LittleEndian.AppendUint32(nil, uint32(n)), 4)
	default:
		return typeInt64 | a.data(binary.LittleEndian.AppendUint64(nil, n), 4)
	}
}

// object writes slots 1..n (slot 0 is the count), dropping trailing nulls; an object with
// nothing set is null. apk mkpkg writes its arrays (paths, files, depends) the same way and
// with the object type too: adb_wo_obj and adb_w_fromstring call adb_w_obj for them.
func (a *adb) object(slots []uint32) uint32 {
	n := len(slots)
	for n > 1 && slots[n-1] == 0 {
		n--
	}
	if n <= 1 {
		return 0
	}
	b := binary.LittleEndian.AppendUint32(nil, uint32(n))
	for _, v := range slots[1:n] {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	return typeObject | a.data(b, 4)
}

// array is object for a list of values.
func (a *adb) array(items []uint32) uint32 {
	return a.object(append([]uint32{0}, items...))
}

// setRoot sets the header's root value.
func (a *adb) setRoot(v uint32) { binary.LittleEndian.PutUint32(a.b[4:], v) }

// sortByName sorts the values of objects whose slot 1 is a name the way apk's pre_commit
// adb_wa_sort does for paths and files (names compared bytewise, a prefix first; the names are
// unique, so no other field decides).
func sortByName(items []uint32, names map[uint32]string) {
	slices.SortStableFunc(items, func(x, y uint32) int {
		nx, ny := names[x], names[y]
		switch {
		case nx < ny:
			return -1
		case nx > ny:
			return 1
		}
		return 0
	})
}
