package luciapp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// InLuCI is the application's place in the openwrt/luci tree, which the .pot's references name.
const InLuCI = "applications/luci-app-delve"

// PotPath is the translation template, relative to the application's directory.
const PotPath = "po/templates/delve.pot"

// Ref is one use of a string.
type Ref struct {
	File string // relative to the application's directory
	Line int
}

// Call is one _() call found in a view.
type Call struct {
	Ref
	Msg     string
	Literal bool // the first argument is a string literal (else Msg is empty)
}

// Generate returns the .pot for the application in dir.
func Generate(dir string) ([]byte, error) {
	msgs := map[string][]Ref{}
	calls, err := Calls(dir)
	if err != nil {
		return nil, err
	}
	for _, c := range calls {
		if !c.Literal {
			return nil, fmt.Errorf("%s:%d: _() of something other than a string literal cannot be translated", c.File, c.Line)
		}
		msgs[c.Msg] = append(msgs[c.Msg], c.Ref)
	}
	titles, err := menuTitles(dir)
	if err != nil {
		return nil, err
	}
	for _, t := range titles {
		msgs[t.Msg] = append(msgs[t.Msg], t.Ref)
	}

	keys := make([]string, 0, len(msgs))
	for k := range msgs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteString("msgid \"\"\nmsgstr \"Content-Type: text/plain; charset=UTF-8\"\n")
	for _, k := range keys {
		b.WriteByte('\n')
		refs := msgs[k]
		sort.Slice(refs, func(i, j int) bool {
			if refs[i].File != refs[j].File {
				return refs[i].File < refs[j].File
			}
			return refs[i].Line < refs[j].Line
		})
		for _, r := range refs {
			fmt.Fprintf(&b, "#: %s/%s:%d\n", InLuCI, r.File, r.Line)
		}
		fmt.Fprintf(&b, "msgid %s\nmsgstr \"\"\n", poQuote(k))
	}
	return b.Bytes(), nil
}

// poQuote writes s as a PO string: backslash, double quote and control characters escaped.
func poQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Calls returns every _() call of the JavaScript files under dir/htdocs, by file and line.
func Calls(dir string) ([]Call, error) {
	scripts, err := Scripts(dir)
	if err != nil {
		return nil, err
	}
	var out []Call
	for file, toks := range scripts {
		for i := 0; i+1 < len(toks); i++ {
			t := toks[i]
			if t.Kind != Ident || t.Text != "_" || toks[i+1].Text != "(" {
				continue
			}
			if i > 0 && toks[i-1].Text == "." { // a method named _, not the global
				continue
			}
			c := Call{Ref: Ref{File: file, Line: t.Line}}
			if i+2 < len(toks) && toks[i+2].Kind == String {
				c.Msg, c.Literal = toks[i+2].Value, true
				// A literal followed by + would be a concatenation that i18n-scan does not read.
				if i+3 < len(toks) && toks[i+3].Text == "+" {
					c.Literal = false
				}
			}
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].File != out[j].File {
			return out[i].File < out[j].File
		}
		return out[i].Line < out[j].Line
	})
	return out, nil
}

// menuTitles returns the titles of the menu.d files, which LuCI translates too.
func menuTitles(dir string) ([]Call, error) {
	var out []Call
	files, err := filepath.Glob(filepath.Join(dir, "root/usr/share/luci/menu.d/*.json"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var menu map[string]struct {
			Title string `json:"title"`
		}
		if err := json.Unmarshal(raw, &menu); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		rel, _ := filepath.Rel(dir, f)
		for _, n := range menu {
			if n.Title == "" {
				continue
			}
			at := bytes.Index(raw, []byte(`"title": `+strconv.Quote(n.Title)))
			if at < 0 {
				return nil, fmt.Errorf("%s: write the title %q as \"title\": %q", f, n.Title, n.Title)
			}
			line := 1 + bytes.Count(raw[:at], []byte("\n"))
			out = append(out, Call{Ref: Ref{File: filepath.ToSlash(rel), Line: line}, Msg: n.Title, Literal: true})
		}
	}
	return out, nil
}
