package json

import "strconv"

// The functions here walk JSON that Valid has accepted, so they only need to find boundaries.
// Unmarshal cannot report duplicate keys or hand out the raw bytes of a member, which is why
// delve reads a JSON-RPC envelope with them.

// Member is one member of a JSON object, its value as raw bytes.
type Member struct {
	Key   string
	Value []byte
}

// A DuplicateKeyError names a key that appears twice in one object.
type DuplicateKeyError struct{ Key string }

func (e *DuplicateKeyError) Error() string {
	return "member " + strconv.Quote(e.Key) + " appears twice"
}

// Members splits a valid JSON object into its members, refusing duplicate keys with a
// *DuplicateKeyError. Keys are compared after unescaping, so "\u0069d" and "id" are the same
// key. Past a few members the keys seen go into a map: comparing each with all before it costs
// the square of their number, and a 64 KiB request holds some 7,000 members.
func Members(data []byte) ([]Member, error) {
	var ms []Member
	var seen map[string]struct{}
	var err error
	d := decoder{data: data}
	d.members(func(key string) bool {
		switch {
		case seen != nil:
		case len(ms) < 16:
			for _, m := range ms {
				if m.Key == key {
					err = &DuplicateKeyError{Key: key}
					return false
				}
			}
		default:
			seen = make(map[string]struct{}, 2*len(ms))
			for _, m := range ms {
				seen[m.Key] = struct{}{}
			}
		}
		if seen != nil {
			if _, dup := seen[key]; dup {
				err = &DuplicateKeyError{Key: key}
				return false
			}
			seen[key] = struct{}{}
		}
		start := skipSpace(data, d.i)
		d.i = skipValue(data, start)
		ms = append(ms, Member{Key: key, Value: data[start:d.i]})
		return true
	})
	if err != nil {
		return nil, err
	}
	return ms, nil
}

// Elements splits a valid JSON array into its elements. It stops counting at max+1 elements, so
// a huge array costs no more than a slightly-too-large one.
func Elements(data []byte, max int) [][]byte {
	var es [][]byte
	d := decoder{data: data}
	d.elements(func() bool {
		start := skipSpace(data, d.i)
		d.i = skipValue(data, start)
		es = append(es, data[start:d.i])
		return len(es) <= max
	})
	return es
}

// Unquote returns the text of a valid JSON string literal.
func Unquote(lit []byte) string { return unquote(lit) }

// Kind names the JSON type of a raw value, for error messages ("an object", "null").
func Kind(v []byte) string {
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}
