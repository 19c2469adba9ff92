package jsonrpc

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/delvedns/delve/internal/api"
)

// DecodeParams decodes the params of a call into v, usually a pointer to a struct with json tags.
// Absent or null params leave v as it is (checking required members is the caller's). Unknown
// members are ignored, because uhttpd adds ubus_rpc_session. Members are matched by their exact
// name (encoding/json alone would also take "NAME" for "name"). A duplicate member, a value of
// the wrong JSON type or an array where named members are expected is an *api.Error with code
// bad_request (-32602) whose message names the member.
func DecodeParams(params json.RawMessage, v any) error {
	data := trimSpace(params)
	if len(data) == 0 || string(data) == "null" {
		return nil
	}
	fields := structFields(v)
	switch {
	case data[0] == '{':
		if !json.Valid(data) {
			return api.NewError(api.CodeBadRequest, "params are not valid JSON")
		}
		ms, err := objectMembers(data)
		if err != nil {
			var dup *dupKeyError
			errors.As(err, &dup)
			return api.NewError(api.CodeBadRequest, "params member "+strconv.Quote(dup.key)+" appears twice")
		}
		if fields != nil && !allKnown(ms, fields) {
			data = keepMembers(ms, fields)
		}
	case fields != nil:
		return api.NewError(api.CodeBadRequest, "params must be an object with named members, not "+kind(data))
	}
	err := json.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		got, num, _ := strings.Cut(te.Value, " ")
		switch got {
		case "bool":
			got = "a boolean"
		case "array", "object":
			got = "an " + got
		case "number":
			got = "a number"
			if num != "" {
				got = num // "-5" for a uint, "1.5" for an int, "300" for a uint8
			}
		case "string":
			got = "a string"
		}
		if te.Field == "" {
			return api.NewError(api.CodeBadRequest, "params must be "+jsonKind(te.Type)+", not "+got)
		}
		return api.NewError(api.CodeBadRequest, "params member "+strconv.Quote(te.Field)+" must be "+jsonKind(te.Type)+", not "+got)
	}
	return api.NewError(api.CodeBadRequest, "params are not valid: "+err.Error())
}

// allKnown reports whether every member's key is exactly one of fields: then encoding/json, which
// also matches keys case-insensitively, can be given the object as it is.
func allKnown(ms []member, fields map[string]bool) bool {
	for _, m := range ms {
		if !fields[m.key] {
			return false
		}
	}
	return true
}

// keepMembers rebuilds an object with only the members whose key is exactly one of fields.
func keepMembers(ms []member, fields map[string]bool) []byte {
	b := []byte{'{'}
	for _, m := range ms {
		if !fields[m.key] {
			continue
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		k, _ := json.Marshal(m.key)
		b = append(b, k...)
		b = append(b, ':')
		b = append(b, m.val...)
	}
	return append(b, '}')
}

// fieldCache maps a struct pointer type to its structFields, computed once: walking a struct
// with reflect on every call cost a fifth of the daemon's CPU time on cached lookups.
var fieldCache sync.Map // reflect.Type → map[string]bool, read-only once stored

// structFields returns the JSON member names of the struct v points to, or nil when v is not a
// pointer to a struct. The map is shared: callers must not modify it.
func structFields(v any) map[string]bool {
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil
	}
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]bool)
	}
	fields := map[string]bool{}
	addFields(t.Elem(), fields)
	f, _ := fieldCache.LoadOrStore(t, fields)
	return f.(map[string]bool)
}

func addFields(t reflect.Type, fields map[string]bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				addFields(ft, fields)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = true
	}
}

// jsonKind names the JSON type that decodes into t.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	default:
		return "a " + t.String()
	}
}
