// Package json is how delve reads and writes JSON: encoding/json for writing, and a decoder of
// its own for reading, with encoding/json's results and errors for everything delve decodes.
//
// The reason is flash. log/slog's default handler keeps encoding/json's encoder and scanner in
// every binary that imports slog, so Marshal and Valid cost delve nothing more; its decoder,
// which only delve would use, is some 50 KB of the armv7 binary. Unmarshal here is a small
// reflect walk over input that encoding/json's scanner has accepted.
//
// What Unmarshal leaves out, because delve has no use for it: struct keys matched without regard
// to case (a key must be a field's exact name, which is what delve's API wants anyway), the
// ",string" option, Unmarshaler and encoding.TextUnmarshaler other than RawMessage's, Number,
// base64 into []byte, and non-string map keys. The tests hold it to encoding/json on the values
// delve decodes, and fuzz both with the same bytes.
package json

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"strings"
)

type (
	RawMessage         = stdjson.RawMessage
	SyntaxError        = stdjson.SyntaxError
	UnmarshalTypeError = stdjson.UnmarshalTypeError
)

// Marshal is encoding/json's Marshal.
func Marshal(v any) ([]byte, error) { return stdjson.Marshal(v) }

// MarshalIndent is encoding/json's MarshalIndent.
func MarshalIndent(v any, prefix, indent string) ([]byte, error) {
	return stdjson.MarshalIndent(v, prefix, indent)
}

// Valid reports whether data is a valid JSON encoding.
func Valid(data []byte) bool { return stdjson.Valid(data) }

// checkValid returns encoding/json's syntax error for data, or nil. Compact's scanner says what
// is wrong but not where (it does not count), so the offset is found as the shortest prefix of
// data that has the same error: Offset is then what encoding/json's Unmarshal says, the number
// of bytes read up to and including the one that is wrong.
func checkValid(data []byte) error {
	if stdjson.Valid(data) {
		return nil
	}
	err := compactError(data)
	var se *SyntaxError
	if !errors.As(err, &se) {
		return err
	}
	if se.Error() == "unexpected end of JSON input" {
		se.Offset = int64(len(data))
		return se
	}
	lo, hi := 1, len(data) // data[:hi] has the error
	for lo < hi {
		mid := lo + (hi-lo)/2
		if e := compactError(data[:mid]); e != nil && e.Error() == se.Error() {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	se.Offset = int64(hi)
	if strings.HasPrefix(se.Error(), "invalid character ' '") && data[hi-1] != ' ' {
		// data[:hi] is cut inside a number, a literal or an escape, and the ' ' is the one
		// the scanner adds at the end of input to finish a token: the error is at the next
		// space (where the token is cut for real), or at the end.
		se.Offset = int64(len(data))
		if p := bytes.IndexByte(data[hi:], ' '); p >= 0 {
			if e := compactError(data[:hi+p+1]); e != nil && e.Error() == se.Error() {
				se.Offset = int64(hi + p + 1)
			}
		}
	}
	return se
}

func compactError(data []byte) error {
	var discard bytes.Buffer
	return stdjson.Compact(&discard, data)
}
