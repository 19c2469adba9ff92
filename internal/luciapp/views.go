package luciapp

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Declaration is one rpc.declare({object: ..., method: ..., params: [...]}) of a view.
type Declaration struct {
	Ref
	Object, Method string
	Params         []string
}

// Option is a UCI option a view writes: a form option (form.Value, form.Flag, ... in a section
// of a form.Map) or a uci.set call.
type Option struct {
	Ref
	Config  string // the UCI config: form.Map's or uci.set's first argument
	Type    string // the section type: "delve", "upstream"
	Name    string
	Widget  string // form.Flag, form.Value, ...; "uci.set" for a direct write
	Section string // the section name for a form.NamedSection, else ""
}

// Scripts returns the JavaScript files under dir/htdocs, relative to dir, with their tokens.
func Scripts(dir string) (map[string][]Token, error) {
	out := map[string][]Token{}
	err := filepath.WalkDir(filepath.Join(dir, "htdocs"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".js") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		toks, err := Tokenize(string(src))
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		out[filepath.ToSlash(rel)] = toks
		return nil
	})
	return out, err
}

// match reports whether toks at i spell texts ("" matches any one token).
func match(toks []Token, i int, texts ...string) bool {
	if i+len(texts) > len(toks) {
		return false
	}
	for j, t := range texts {
		if t != "" && toks[i+j].Text != t {
			return false
		}
	}
	return true
}

// Declarations returns the rpc.declare calls of one file's tokens.
func Declarations(file string, toks []Token) ([]Declaration, error) {
	var out []Declaration
	for i := range toks {
		if !match(toks, i, "rpc", ".", "declare", "(", "{") || (i > 0 && toks[i-1].Text == ".") {
			continue
		}
		d := Declaration{Ref: Ref{File: file, Line: toks[i].Line}}
		depth := 0
		for j := i + 4; j < len(toks); j++ {
			switch toks[j].Text {
			case "{", "[", "(":
				depth++
				continue
			case "}", "]", ")":
				depth--
			}
			if depth == 0 {
				break
			}
			if depth != 1 || !match(toks, j+1, ":") || (toks[j].Kind != Ident && toks[j].Kind != String) {
				continue
			}
			key := toks[j].Text
			if toks[j].Kind == String {
				key = toks[j].Value
			}
			val := toks[j+2]
			switch key {
			case "object", "method":
				if val.Kind != String {
					return nil, fmt.Errorf("%s:%d: rpc.declare's %s is not a string literal", file, val.Line, key)
				}
				if key == "object" {
					d.Object = val.Value
				} else {
					d.Method = val.Value
				}
			case "params":
				if val.Text != "[" {
					return nil, fmt.Errorf("%s:%d: rpc.declare's params is not an array literal", file, val.Line)
				}
				for k := j + 3; k < len(toks) && toks[k].Text != "]"; k++ {
					if toks[k].Kind == String {
						d.Params = append(d.Params, toks[k].Value)
					}
				}
			}
		}
		if d.Object == "" || d.Method == "" {
			return nil, fmt.Errorf("%s:%d: rpc.declare without an object and a method", file, d.Line)
		}
		out = append(out, d)
	}
	return out, nil
}

// strAt returns the string literal at i, or "" and false.
func strAt(toks []Token, i int) (string, bool) {
	if i < len(toks) && toks[i].Kind == String {
		return toks[i].Value, true
	}
	return "", false
}

// Options returns the UCI options one file's form writes, and its direct uci.set calls. Sections
// are followed in order: an option belongs to the last m.section(...) before it.
func Options(file string, toks []Token) ([]Option, error) {
	var out []Option
	config, typ, section, added := "", "", "", ""
	for i := range toks {
		switch {
		case match(toks, i, "uci", ".", "add", "(", "", ",", "", ","):
			added, _ = strAt(toks, i+6)
		case match(toks, i, "form", ".", "Map", "("):
			c, ok := strAt(toks, i+4)
			if !ok {
				return nil, fmt.Errorf("%s:%d: form.Map of something other than a string literal", file, toks[i].Line)
			}
			config = c
		case match(toks, i, ".", "section", "(", "form", ".", "", ","):
			kind := toks[i+5].Text
			a, ok1 := strAt(toks, i+7)
			switch kind {
			case "NamedSection":
				b, ok2 := strAt(toks, i+9)
				if !ok1 || !ok2 {
					return nil, fmt.Errorf("%s:%d: form.NamedSection without a literal name and type", file, toks[i].Line)
				}
				section, typ = a, b
			default:
				if !ok1 {
					return nil, fmt.Errorf("%s:%d: form.%s without a literal section type", file, toks[i].Line, kind)
				}
				section, typ = "", a
			}
		case match(toks, i, ".", "taboption", "(", "", ",", "form", ".", "", ","):
			name, ok := strAt(toks, i+9)
			if !ok {
				return nil, fmt.Errorf("%s:%d: taboption without a literal option name", file, toks[i].Line)
			}
			out = append(out, Option{Ref{file, toks[i].Line}, config, typ, name, "form." + toks[i+7].Text, section})
		case match(toks, i, ".", "option", "(", "form", ".", "", ","):
			name, ok := strAt(toks, i+7)
			if !ok {
				return nil, fmt.Errorf("%s:%d: option without a literal option name", file, toks[i].Line)
			}
			out = append(out, Option{Ref{file, toks[i].Line}, config, typ, name, "form." + toks[i+5].Text, section})
		case match(toks, i, "uci", ".", "set", "(", "", ",", "", ","):
			c, ok1 := strAt(toks, i+4)
			name, ok2 := strAt(toks, i+8)
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("%s:%d: uci.set without a literal config and option", file, toks[i].Line)
			}
			// The section is the one the last uci.add made.
			out = append(out, Option{Ref{file, toks[i].Line}, c, added, name, "uci.set", ""})
		}
	}
	return out, nil
}
