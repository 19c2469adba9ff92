package blob

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"github.com/delvedns/delve/internal/json"
)

// The conversions here are the ones rpcd makes around an exec plugin, so that an object served
// natively answers byte for byte what the bridge answers: the call's blobmsg arguments become
// JSON as libubox's blobmsg_format_json writes it, and the plugin's JSON reply becomes blobmsg
// as blobmsg_add_json_element makes it (libubox blobmsg_json.c).

// AppendJSON appends the JSON object (named) or array of the blobmsg fields in b. An int8 is
// written as a boolean, a double with six decimals, an unspec field as null, as
// blobmsg_format_json does.
func AppendJSON(dst, b []byte, named bool) ([]byte, error) {
	fs, err := Decode(b, named)
	if err != nil {
		return dst, err
	}
	return appendList(dst, fs, named), nil
}

func appendList(dst []byte, fs []Field, named bool) []byte {
	open, close := byte('['), byte(']')
	if named {
		open, close = '{', '}'
	}
	dst = append(dst, open)
	for i, f := range fs {
		if i > 0 {
			dst = append(dst, ',')
		}
		if named {
			dst = appendQuoted(dst, f.Name)
			dst = append(dst, ':')
		}
		dst = appendValue(dst, f)
	}
	return append(dst, close)
}

func appendValue(dst []byte, f Field) []byte {
	switch f.Type {
	case TypeUnspec:
		return append(dst, "null"...)
	case TypeBool:
		return strconv.AppendBool(dst, f.Int != 0)
	case TypeInt16, TypeInt32, TypeInt64:
		return strconv.AppendInt(dst, f.Int, 10)
	case TypeDouble:
		return strconv.AppendFloat(dst, f.Float, 'f', 6, 64)
	case TypeString:
		return appendQuoted(dst, f.Str)
	case TypeArray:
		return appendList(dst, f.List, false)
	}
	return appendList(dst, f.List, true)
}

// ErrNotObject is returned by AddJSON for JSON that is not an object.
var ErrNotObject = errors.New("the JSON is not an object")

// AddJSON appends the members of the JSON object data as blobmsg fields, as
// blobmsg_add_json_from_string does: objects become tables, arrays arrays, strings strings
// (cut at a NUL), booleans int8, null an empty unspec field, and numbers an int32 when they
// are integers in its range, an int64 when outside it (saturated at its limits, as json-c
// does), and a double when written with a fraction or exponent.
func AddJSON(w *Buf, data []byte) error {
	data = bytes.TrimSpace(data)
	if !json.Valid(data) {
		return errors.New("adding JSON to a blob: not valid JSON")
	}
	if len(data) == 0 || data[0] != '{' {
		return ErrNotObject
	}
	return addMembers(w, data, 0)
}

func addMembers(w *Buf, obj []byte, depth int) error {
	ms, err := json.Members(obj)
	if err != nil {
		return fmt.Errorf("adding JSON to a blob: %w", err)
	}
	for _, m := range ms {
		if err := addValue(w, m.Key, m.Value, depth); err != nil {
			return err
		}
	}
	return nil
}

func addValue(w *Buf, name string, v []byte, depth int) error {
	if depth >= MaxDepth {
		return fmt.Errorf("adding JSON to a blob: nested deeper than %d", MaxDepth)
	}
	switch v[0] {
	case '{':
		m := w.OpenTable(name)
		if err := addMembers(w, v, depth+1); err != nil {
			return err
		}
		w.CloseField(m)
	case '[':
		m := w.OpenArray(name)
		for _, e := range json.Elements(v, len(v)) {
			if err := addValue(w, "", e, depth+1); err != nil {
				return err
			}
		}
		w.CloseField(m)
	case '"':
		w.AddString(name, json.Unquote(v))
	case 't', 'f':
		w.AddBool(name, v[0] == 't')
	case 'n':
		w.AddUnspec(name, nil)
	default:
		if bytes.ContainsAny(v, ".eE") {
			f, _ := strconv.ParseFloat(string(v), 64) // valid JSON; ±Inf when out of range
			w.AddDouble(name, f)
			return nil
		}
		i, _ := strconv.ParseInt(string(v), 10, 64) // out of range: saturated, as json-c does
		if int64(int32(i)) == i {
			w.AddInt(name, TypeInt32, i)
		} else {
			w.AddInt(name, TypeInt64, i)
		}
	}
	return nil
}
