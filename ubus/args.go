package ubus

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/json"
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
		// JSON decoding would quietly turn the bad bytes into U+FFFD.
		return nil, badRequest("the arguments are not valid UTF-8")
	}
	var params map[string]string
	end := 0
	switch data[0] {
	case '{':
		var err error
		if params, end, err = members(m, data); err != nil {
			return nil, err
		}
	case 'n':
		var err error
		if end, err = json.ValueEnd(data); err != nil {
			return nil, notJSON(err)
		}
	default:
		if !startsValue(data[0]) {
			_, err := json.ValueEnd(data)
			return nil, notJSON(err)
		}
		return nil, badRequest("the arguments must be a JSON object, not " + json.Kind(data))
	}
	if rest := bytes.TrimSpace(data[end:]); len(rest) > 0 {
		if !startsValue(rest[0]) {
			_, err := json.ValueEnd(rest)
			return nil, notJSON(err)
		}
		return nil, badRequest("the arguments must be one JSON object, but more follows it")
	}
	return required(m, params)
}

// startsValue reports whether a JSON value can start with c.
func startsValue(c byte) bool {
	return bytes.IndexByte([]byte(`{["-0123456789tfn`), c) >= 0
}

// members reads the object at the start of data and returns the string members m takes, and
// where the object ends. Each member's value is checked on its own, as a streaming decoder
// would: nesting is counted from it.
func members(m api.Method, data []byte) (params map[string]string, end int, err error) {
	takes := map[string]bool{}
	for _, p := range m.Params {
		takes[p.Name] = true
	}
	seen := map[string]bool{}
	i := 1 // past '{'
	next := func(want string) (byte, error) {
		i = skipSpace(data, i)
		if i == len(data) {
			return 0, notJSON(io.ErrUnexpectedEOF)
		}
		if !strings.ContainsRune(want, rune(data[i])) {
			// The object is not valid JSON here: the error is the scanner's for the whole.
			_, err := json.ValueEnd(data)
			return 0, notJSON(err)
		}
		return data[i], nil
	}
	for want := `"}`; ; want = `"` {
		c, err := next(want)
		if err != nil {
			return nil, 0, err
		}
		if c == '}' {
			return params, i + 1, nil
		}
		kend, err := json.ValueEnd(data[i:])
		if err != nil {
			return nil, 0, notJSON(err)
		}
		key := json.Unquote(data[i : i+kend])
		i += kend
		if _, err := next(":"); err != nil {
			return nil, 0, err
		}
		i++
		vstart := skipSpace(data, i)
		vend, err := json.ValueEnd(data[vstart:])
		if err != nil {
			return nil, 0, notJSON(err)
		}
		val := data[vstart : vstart+vend]
		i = vstart + vend
		if seen[key] {
			return nil, 0, badRequest("the argument " + strconv.Quote(key) + " appears twice")
		}
		seen[key] = true
		if takes[key] {
			switch val[0] {
			case 'n': // null: absent, as the daemon takes it
			case '"':
				if params == nil {
					params = map[string]string{}
				}
				params[key] = json.Unquote(val)
			default:
				return nil, 0, badRequest("the argument " + strconv.Quote(key) + " must be a string, not " + json.Kind(val))
			}
		}
		if c, err = next(",}"); err != nil {
			return nil, 0, err
		}
		if c == '}' {
			return params, i + 1, nil
		}
		i++
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
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
	if err == nil {
		return badRequest("the arguments are not valid JSON")
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return badRequest("the arguments are not valid JSON: they end too early")
	}
	return badRequest("the arguments are not valid JSON: " + err.Error())
}
