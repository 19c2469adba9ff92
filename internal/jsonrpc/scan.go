package jsonrpc

import (
	"encoding/json"
	"strconv"
)

// The functions here walk JSON that json.Valid has already accepted, so they only need to find
// boundaries; they never decode values. encoding/json cannot report duplicate keys or hand out the
// raw bytes of an id, which is why delve reads the envelope itself.

// tooDeep reports whether data nests arrays and objects deeper than max.
func tooDeep(data []byte, max int) bool {
	depth := 0
	inString, escaped := false, false
	for _, c := range data {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
			if depth > max {
				return true
			}
		case ']', '}':
			depth--
		}
	}
	return false
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(data []byte, i int) int {
	for i < len(data) && isSpace(data[i]) {
		i++
	}
	return i
}

// skipValue returns the index just past the value that starts at data[i].
func skipValue(data []byte, i int) int {
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

// member is one member of a JSON object, its value as raw bytes.
type member struct {
	key string
	val []byte
}

// dupKeyError names a key that appears twice in one object.
type dupKeyError struct{ key string }

func (e *dupKeyError) Error() string { return "member " + strconv.Quote(e.key) + " appears twice" }

// objectMembers splits a valid JSON object into its members, refusing duplicate keys. Keys are
// compared after unescaping, so "\u0069d" and "id" are the same key. Past a few members the keys
// seen go into a map: comparing each with all before it costs the square of their number, and a
// 64 KiB request holds some 7,000 members.
func objectMembers(data []byte) ([]member, error) {
	var ms []member
	var seen map[string]struct{}
	i := skipSpace(data, 0) + 1 // past '{'
	for {
		i = skipSpace(data, i)
		if i >= len(data) || data[i] == '}' {
			return ms, nil
		}
		if data[i] == ',' {
			i = skipSpace(data, i+1)
		}
		end := skipString(data, i)
		key := unquote(data[i:end])
		i = skipSpace(data, end) + 1 // past ':'
		i = skipSpace(data, i)
		vend := skipValue(data, i)
		switch {
		case seen != nil:
			if _, dup := seen[key]; dup {
				return nil, &dupKeyError{key: key}
			}
			seen[key] = struct{}{}
		case len(ms) < 16:
			for _, m := range ms {
				if m.key == key {
					return nil, &dupKeyError{key: key}
				}
			}
		default:
			seen = make(map[string]struct{}, 2*len(ms))
			for _, m := range ms {
				seen[m.key] = struct{}{}
			}
			if _, dup := seen[key]; dup {
				return nil, &dupKeyError{key: key}
			}
			seen[key] = struct{}{}
		}
		ms = append(ms, member{key: key, val: data[i:vend]})
		i = vend
	}
}

// arrayElements splits a valid JSON array into its elements. It stops counting at max+1 elements,
// so a huge batch costs no more than a slightly-too-large one.
func arrayElements(data []byte, max int) [][]byte {
	var es [][]byte
	i := skipSpace(data, 0) + 1 // past '['
	for len(es) <= max {
		i = skipSpace(data, i)
		if i >= len(data) || data[i] == ']' {
			break
		}
		if data[i] == ',' {
			i = skipSpace(data, i+1)
		}
		end := skipValue(data, i)
		es = append(es, data[i:end])
		i = end
	}
	return es
}

// unquote returns the text of a valid JSON string literal.
func unquote(lit []byte) string {
	plain := true
	for _, c := range lit[1 : len(lit)-1] {
		if c == '\\' {
			plain = false
			break
		}
	}
	if plain {
		return string(lit[1 : len(lit)-1])
	}
	var s string
	_ = json.Unmarshal(lit, &s) // valid by construction
	return s
}

// kind names the JSON type of a raw value for error messages.
func kind(v []byte) string {
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
