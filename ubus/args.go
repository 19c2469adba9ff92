package ubus

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/delvedns/delve/internal/api"
)

// parseArgs checks the argument object rpcd wrote to stdin against m's parameters and returns
// the ones m takes, or nil when there are none. Empty input and null mean no arguments (rpcd
// writes {} then, a person at a shell may write nothing). Members m does not take, such as
// ubus_rpc_session, are dropped; a member m takes must be a string (or null, meaning absent),
// since every argument delve has is one (api.Param). Errors are *api.Error bad_request.
func parseArgs(m api.Method, data []byte) (map[string]string, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return required(m, nil)
	}
	if !utf8.Valid(data) {
		// encoding/json would quietly turn the bad bytes into U+FFFD.
		return nil, badRequest("the arguments are not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, notJSON(err)
	}
	var params map[string]string
	switch tok {
	case nil: // null
	case json.Delim('{'):
		params, err = members(m, dec)
		if err != nil {
			return nil, err
		}
	default:
		return nil, badRequest("the arguments must be a JSON object, not " + kindOf(tok))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, notJSON(err)
		}
		return nil, badRequest("the arguments must be one JSON object, but more follows it")
	}
	return required(m, params)
}

// members reads the members of an object whose '{' dec has just returned.
func members(m api.Method, dec *json.Decoder) (map[string]string, error) {
	takes := map[string]bool{}
	for _, p := range m.Params {
		takes[p.Name] = true
	}
	seen := map[string]bool{}
	var params map[string]string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, notJSON(err)
		}
		key := tok.(string) // object keys are always strings
		if seen[key] {
			return nil, badRequest("the argument " + strconv.Quote(key) + " appears twice")
		}
		seen[key] = true
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, notJSON(err)
		}
		if !takes[key] {
			continue
		}
		switch val[0] {
		case 'n': // null: absent, as the daemon takes it
			continue
		case '"':
		default:
			return nil, badRequest("the argument " + strconv.Quote(key) + " must be a string, not " + kindOfRaw(val))
		}
		var s string
		if err := json.Unmarshal(val, &s); err != nil {
			return nil, notJSON(err)
		}
		if params == nil {
			params = map[string]string{}
		}
		params[key] = s
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, notJSON(err)
	}
	return params, nil
}

func required(m api.Method, params map[string]string) (map[string]string, error) {
	for _, p := range m.Params {
		if _, ok := params[p.Name]; p.Required && !ok {
			return nil, badRequest("the argument " + strconv.Quote(p.Name) + " is required")
		}
	}
	return params, nil
}

func badRequest(msg string) error { return api.NewError(api.CodeBadRequest, msg) }

func notJSON(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return badRequest("the arguments are not valid JSON: they end too early")
	}
	return badRequest("the arguments are not valid JSON: " + err.Error())
}

// kindOf names the JSON type of a token that is not an object's start.
func kindOf(tok json.Token) string {
	switch tok.(type) {
	case json.Delim:
		return "an array" // '[': a '}' or ']' first is a syntax error from Token
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64, json.Number:
		return "a number"
	}
	return "something else"
}

// kindOfRaw names the JSON type of a value that is not a string or null.
func kindOfRaw(v json.RawMessage) string {
	switch v[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	}
	return "a number"
}
