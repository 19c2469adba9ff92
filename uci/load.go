package uci

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	gouci "github.com/digineo/go-uci/v2"
)

// Error is one problem with a configuration file. Load returns a single *Error, or several
// joined with errors.Join (one per line of the message); each names its place.
type Error struct {
	File  string // the file's path
	Line  int    // the line the problem is on; 0 when not known or not one line
	Place string // "delve.cloudflare.port", "delve.cloudflare" or "delve"; empty for the file as a whole
	Msg   string
	Err   error // the cause, such as fs.ErrNotExist; nil if none
}

func (e *Error) Error() string {
	switch {
	case e.Place != "":
		return e.Place + ": " + e.Msg
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	default:
		return e.File + ": " + e.Msg
	}
}

func (e *Error) Unwrap() error { return e.Err }

// Limits on what Load reads. delve's file is a few hundred bytes; a daemon pointed at something
// else should say so rather than fill the router's memory, and go-uci's handling of sections grows
// with the cube of their number when named and anonymous ones are mixed.
const (
	maxFileSize = 64 << 10
	maxSections = 256
)

// Load reads and validates a UCI file, normally DefaultPath. The config name used in messages
// is the file's base name ("delve"). On success the returned Config is complete: every option
// the file leaves out has its value from Default, and Warnings lists what was ignored. On
// failure it returns nil and an error whose lines each name a place (see Error); a missing file
// is reported with an error that matches fs.ErrNotExist.
func Load(path string) (*Config, error) {
	name := filepath.Base(path)
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	raw, err := parseUCI(data)
	if err != nil {
		se := err.(*syntaxError)
		return nil, &Error{File: path, Line: se.line, Msg: se.msg}
	}
	switch {
	case len(raw.sections) == 0:
		return nil, &Error{File: path, Msg: "holds no config section (only comments or blank lines)"}
	case len(raw.sections) > maxSections:
		return nil, &Error{File: path, Msg: fmt.Sprintf("has %d sections, more than the %d delve reads", len(raw.sections), maxSections)}
	}
	tree, _, cleanup, err := loadTree(path, name, raw)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	c, err := build(name, tree, raw)
	if err != nil {
		return nil, err
	}
	c.File = path
	c.LoadedAt = time.Now()
	return c, nil
}

// readFile reads path with an error for each way it can fail that names the file.
func readFile(path string) ([]byte, error) {
	fail := func(msg string, err error) ([]byte, error) {
		return nil, &Error{File: path, Msg: msg, Err: err}
	}
	// Stat before opening: opening a FIFO would wait for a writer.
	st, err := os.Stat(path)
	if err == nil {
		switch {
		case st.IsDir():
			return fail("is a directory, not a UCI file", nil)
		case !st.Mode().IsRegular():
			return fail("is not a regular file", nil)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fail("no such file", err)
		case errors.Is(err, fs.ErrPermission):
			return fail("cannot be read (permission denied)", err)
		}
		return fail("cannot be opened: "+causeOf(err), err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return fail("cannot be read (permission denied)", err)
		}
		return fail("cannot be read: "+causeOf(err), err)
	}
	switch {
	case len(data) > maxFileSize:
		return fail(fmt.Sprintf("is too large for a UCI file (over %d KiB)", maxFileSize>>10), nil)
	case len(data) == 0:
		return fail("is empty", nil)
	case bytes.IndexByte(data, 0) >= 0:
		return fail("is not a UCI text file (it holds binary data)", nil)
	}
	return data, nil
}

// causeOf is the reason inside a *fs.PathError, without the path the caller names already.
func causeOf(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// knownTypes are the section types whose content reaches the Config.
var knownTypes = []string{"delve", "upstream"}

// loadTree loads the file with go-uci, rooted at its own directory, and checks that go-uci read
// every section and option delve uses the way libuci does (raw). Where go-uci cannot (it
// refuses empty values such as `option websocket ”` and `'\”`, the one-letter keywords and
// `;`, and keeps backslashes that uci removes), it loads a copy normalized to the subset
// go-uci reads correctly, built from raw, and checks that again. The returned cleanup removes
// the copy; copied reports whether the copy was needed.
func loadTree(path, name string, raw *rawFile) (tree gouci.Tree, copied bool, cleanup func(), err error) {
	tree = gouci.NewTree(filepath.Dir(path))
	err = tree.LoadConfig(name, true)
	if err == nil && compareTree(tree, name, raw) == "" {
		return tree, false, func() {}, nil
	}

	text, err := normalized(name, raw)
	if err != nil {
		return nil, true, nil, err
	}
	dir, err := os.MkdirTemp("", "delve-uci-")
	if err != nil {
		return nil, true, nil, &Error{File: path, Msg: "cannot write the normalized copy go-uci needs: " + causeOf(err), Err: err}
	}
	cleanup = func() { os.RemoveAll(dir) }
	if err := os.WriteFile(filepath.Join(dir, name), text, 0o600); err != nil {
		cleanup()
		return nil, true, nil, &Error{File: path, Msg: "cannot write the normalized copy go-uci needs: " + causeOf(err), Err: err}
	}
	tree = gouci.NewTree(dir)
	if err := tree.LoadConfig(name, true); err != nil {
		cleanup()
		return nil, true, nil, &Error{File: path, Msg: "go-uci cannot read the normalized copy of this file (a bug in delve): " + err.Error(), Err: err}
	}
	if diff := compareTree(tree, name, raw); diff != "" {
		cleanup()
		return nil, true, nil, &Error{File: path, Msg: "go-uci reads the normalized copy of this file differently (a bug in delve): " + diff}
	}
	return tree, true, cleanup, nil
}

// compareTree describes the first difference between what go-uci loaded and raw, in the
// sections and options that reach the Config; it returns "" when there is none. Values are
// compared as delve uses them: empty list items dropped, repeated ones once (go-uci merges
// repeated list items).
func compareTree(tree gouci.Tree, name string, raw *rawFile) string {
	for _, typ := range knownTypes {
		got, err := tree.GetSections(name, typ)
		if err != nil {
			return err.Error()
		}
		var want []*rawSection
		for _, s := range raw.sections {
			if s.typ == typ {
				want = append(want, s)
			}
		}
		if len(got) != len(want) {
			return fmt.Sprintf("%d sections of type %s, want %d", len(got), typ, len(want))
		}
		for i, s := range want {
			if got[i] != s.ref {
				return fmt.Sprintf("section %q, want %q", got[i], s.ref)
			}
			for _, opt := range knownOptions[typ] {
				vals, _ := tree.Get(name, s.ref, opt)
				var rawVals []string
				if o := s.option(opt); o != nil {
					rawVals = o.values
				}
				if g, w := cleanValues(vals), cleanValues(rawVals); !slices.Equal(g, w) {
					if secretOptions[opt] {
						return fmt.Sprintf("%s.%s differs (not shown: it is a secret)", s.ref, opt)
					}
					return fmt.Sprintf("%s.%s is %q, want %q", s.ref, opt, g, w)
				}
			}
		}
	}
	return ""
}

// cleanValues drops empty items and repeats, keeping the order.
func cleanValues(vals []string) []string {
	var out []string
	for _, v := range vals {
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// normalized writes the sections and options delve uses in the form go-uci reads as libuci
// does: uci's writer format, every value as a list item, empty ones left out (an empty
// `option` is no option to libuci either, and delve ignores empty list items). Options and
// sections delve does not use are left out too; they only cause warnings, which come from raw.
func normalized(name string, raw *rawFile) ([]byte, error) {
	var b strings.Builder
	for _, s := range raw.sections {
		if !slices.Contains(knownTypes, s.typ) {
			continue
		}
		b.WriteString("\nconfig " + s.typ)
		if s.name != "" {
			b.WriteString(" '" + s.name + "'")
		}
		b.WriteString("\n")
		for _, opt := range knownOptions[s.typ] {
			o := s.option(opt)
			if o == nil {
				continue
			}
			for _, v := range cleanValues(o.values) {
				q, ok := goUCIQuote(v)
				if !ok {
					why := "it holds both ' and \" quote characters, or ends in a backslash"
					if strings.Contains(v, "\n") {
						why = "it spans lines"
					}
					return nil, &Error{Place: name + "." + s.ref + "." + opt, Line: o.line,
						Msg: fmt.Sprintf("the value on line %d cannot be passed to go-uci, the UCI library delve uses (%s)", o.line, why)}
				}
				b.WriteString("\tlist " + opt + " " + q + "\n")
			}
		}
	}
	return []byte(b.String()), nil
}

// goUCIQuote quotes v so that go-uci reads it back unchanged. go-uci keeps the characters
// between the quotes as they are, but a backslash makes it step over the next character, and a
// line break ends the value; so v must not hold a newline, and must hold the quote character
// only where go-uci steps over it, and not end in a backslash it would pair with the closing
// quote.
func goUCIQuote(v string) (string, bool) {
	if v == "" || strings.Contains(v, "\n") {
		return "", false
	}
	for _, q := range []byte{'\'', '"'} {
		s := v + string(q)
		i, ok := 0, false
		for i < len(s) {
			c := s[i]
			i++
			if c == '\\' {
				i++
				continue
			}
			if c == q {
				ok = i == len(s)
				break
			}
		}
		if ok {
			return string(q) + v + string(q), true
		}
	}
	return "", false
}
