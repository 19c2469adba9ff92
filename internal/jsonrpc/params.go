package jsonrpc

import (
	"errors"
	"reflect"
	"strconv"
	"strings"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/json"
)

// DecodeParams decodes the params of a call into v, usually a pointer to a struct with json tags.
// Absent or null params leave v as it is (checking required members is the caller's). Unknown
// members are ignored, because uhttpd adds ubus_rpc_session. Members are matched by their exact
// name. A duplicate member, a value of the wrong JSON type or an array where named members are
// expected is an *api.Error with code bad_request (-32602) whose message names the member.
func DecodeParams(params json.RawMessage, v any) error {
	data := trimSpace(params)
	if len(data) == 0 || string(data) == "null" {
		return nil
	}
	switch {
	case data[0] == '{':
		if !json.Valid(data) {
			return api.NewError(api.CodeBadRequest, "params are not valid JSON")
		}
		if _, err := json.Members(data); err != nil {
			var dup *json.DuplicateKeyError
			errors.As(err, &dup)
			return api.NewError(api.CodeBadRequest, "params member "+strconv.Quote(dup.Key)+" appears twice")
		}
	case isStructPointer(v):
		return api.NewError(api.CodeBadRequest, "params must be an object with named members, not "+json.Kind(data))
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

func isStructPointer(v any) bool {
	t := reflect.TypeOf(v)
	return t != nil && t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct
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
