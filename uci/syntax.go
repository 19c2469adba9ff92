package uci

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// This file reads a UCI file the way libuci (openwrt/uci, file.c) does, statement by statement
// with line numbers. go-uci stays the parser the configuration is taken from; this reading is
// what lets Load name the line of a syntax error, list unknown options and section types (go-uci
// has no API to enumerate them), and notice where go-uci would read the file differently from
// the uci tool and the init script.

// rawFile is a UCI file as libuci would hold it after loading.
type rawFile struct {
	sections []*rawSection
}

// rawSection is one section; repeated `config` lines with the same name are merged into it.
type rawSection struct {
	typ  string
	name string // empty for an anonymous section
	ref  string // the name `uci show` prints: the name, or "@type[i]" when anonymous
	line int
	opts []*rawOption
}

// rawOption is one option or list, with the values libuci keeps for it.
type rawOption struct {
	name   string
	list   bool
	values []string // one value for an option; list items in order, empty ones included
	line   int      // where it was last set
}

func (s *rawSection) option(name string) *rawOption {
	for _, o := range s.opts {
		if o.name == name {
			return o
		}
	}
	return nil
}

// syntaxError is a line libuci refuses (or, in a few marked cases, reads in a way delve refuses
// to guess about).
type syntaxError struct {
	line int
	msg  string
}

func (e *syntaxError) Error() string { return "line " + strconv.Itoa(e.line) + ": " + e.msg }

// uciReader holds the state of one reading. Like libuci it works on a line buffer: a quoted
// string or a backslash at the end of a line pulls the next line into the same buffer, and
// `#` or a `;` that ends a bare word cut the rest of the buffer off.
type uciReader struct {
	data   []byte
	next   int    // offset in data of the next line to read
	lineNo int    // number of the last line read
	buf    []byte // the current (possibly joined) line, with its newline
	pos    int    // read position in buf
	file   *rawFile
	sec    *rawSection
}

// parseUCI reads data with libuci's rules. data must not hold NUL bytes.
func parseUCI(data []byte) (f *rawFile, err error) {
	r := &uciReader{data: data, file: &rawFile{}}
	defer func() {
		if v := recover(); v != nil {
			se, ok := v.(*syntaxError)
			if !ok {
				panic(v)
			}
			f, err = nil, se
		}
	}()
	for r.getln(0) {
		r.pos = 0
		r.statements()
	}
	count := map[string]int{}
	for _, s := range r.file.sections {
		if s.name != "" {
			s.ref = s.name
		} else {
			s.ref = "@" + s.typ + "[" + strconv.Itoa(count[s.typ]) + "]"
		}
		count[s.typ]++
	}
	return r.file, nil
}

func (r *uciReader) fail(line int, format string, args ...any) {
	panic(&syntaxError{line: line, msg: fmt.Sprintf(format, args...)})
}

// getln replaces the buffer from offset on with the next line of the input. It reports false
// at the end of the input, leaving the buffer cut at offset.
func (r *uciReader) getln(offset int) bool {
	r.buf = r.buf[:offset]
	if r.next >= len(r.data) {
		return false
	}
	end := len(r.data)
	if i := bytes.IndexByte(r.data[r.next:], '\n'); i >= 0 {
		end = r.next + i + 1
	}
	r.buf = append(r.buf, r.data[r.next:end]...)
	r.next = end
	r.lineNo++
	return true
}

func (r *uciReader) cur() byte {
	if r.pos < len(r.buf) {
		return r.buf[r.pos]
	}
	return 0
}

// isSpace is C's isspace in the C locale.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func (r *uciReader) skipSpace() {
	for r.pos < len(r.buf) && isSpace(r.buf[r.pos]) {
		r.pos++
	}
}

// statements reads the statements of one line: several when they are separated by `;`.
func (r *uciReader) statements() {
	r.skipSpace()
	for {
		// libuci splits the keyword off with strtok(" \t"): it ends at a space or a tab only,
		// so a keyword followed by a newline or a `;` is not a keyword.
		for r.pos < len(r.buf) && (r.buf[r.pos] == ' ' || r.buf[r.pos] == '\t') {
			r.pos++
		}
		if r.pos >= len(r.buf) {
			return
		}
		start := r.pos
		for r.pos < len(r.buf) && r.buf[r.pos] != ' ' && r.buf[r.pos] != '\t' {
			r.pos++
		}
		word := string(r.buf[start:r.pos])
		if word[0] == '#' {
			return
		}
		line := r.lineNo
		var kw string
		switch word {
		case "p", "package":
			kw = "package"
		case "c", "config":
			kw = "config"
		case "o", "option":
			kw = "option"
		case "l", "list":
			kw = "list"
		default:
			switch k := strings.TrimRight(word, " \t\n\v\f\r;"); k {
			case "":
				// Only a `;` leaves whitespace other than blanks to be read as a keyword.
				r.fail(line, `nothing after ";" (uci refuses a ";" at the end of a line)`)
			case "p", "package", "c", "config", "o", "option", "l", "list":
				r.fail(line, "%s without arguments", k)
			}
			r.fail(line, "invalid command %s (a line starts with config, option, list or package)", quoteShort(word))
		}
		if r.pos >= len(r.buf) {
			r.fail(line, "%s without a name", kw)
		}
		r.pos++ // the space or tab after the keyword
		switch kw {
		case "package":
			// Loading one file, libuci reads a package statement and ignores it.
			r.nextArg(line, "package name", argPackage)
			r.assertEOL(line)
		case "config":
			typ := r.nextArg(line, "section type", argType)
			name := r.nextArg(line, "", argName)
			r.assertEOL(line)
			r.openSection(line, typ, name)
		case "option", "list":
			if r.sec == nil {
				r.fail(line, "%s before the first config line", kw)
			}
			name := r.nextArg(line, "option name", argName)
			value := r.nextArg(line, "", argValue)
			if secretOptions[name] {
				r.assertEOLSecret(line, name)
			} else {
				r.assertEOL(line)
			}
			r.set(line, name, value, kw == "list")
		}
	}
}

type argKind int

const (
	argValue argKind = iota
	argName
	argType
	argPackage
)

// nextArg reads one argument. required names what is missing when it is empty.
func (r *uciReader) nextArg(line int, required string, kind argKind) string {
	r.skipSpace()
	var v string
	if r.cur() == ';' {
		r.pos++
	} else {
		v = r.word(line)
	}
	if v == "" {
		if required != "" {
			r.fail(line, "missing %s", required)
		}
		return ""
	}
	switch kind {
	case argName:
		if !validName(v) {
			r.fail(line, "invalid name %s (section and option names are letters, digits and _)", quoteShort(v))
		}
	case argType:
		if !validType(v) {
			r.fail(line, "invalid section type %s (printable characters, no spaces)", quoteShort(v))
		}
	case argPackage:
		if !validPackage(v) {
			r.fail(line, "invalid package name %s", quoteShort(v))
		}
	}
	return v
}

// word reads one argument: bare, single-quoted and double-quoted pieces joined until a space.
// In bare and double-quoted text a backslash takes the next character literally, and a
// backslash at the end of a line joins the next line; single-quoted text is literal.
func (r *uciReader) word(line int) string {
	var out []byte
	start := r.pos
	semicolon := false
	for {
		c := r.cur()
		stop := false
		switch c {
		case '\'':
			out = r.quoted(out, '\'')
		case '"':
			out = r.quoted(out, '"')
		case '#':
			r.buf = r.buf[:r.pos] // a comment ends the line
			stop = true
		case 0:
			stop = true
		case ';':
			semicolon = true
			stop = true
		case '\\':
			if r.backslash() {
				out = append(out, r.cur())
				r.pos++
			}
		default:
			out = append(out, c)
			r.pos++
		}
		if stop {
			break
		}
		if c := r.cur(); c == 0 || isSpace(c) {
			break
		}
	}
	if semicolon {
		// libuci ends the string in place. When nothing was unquoted or unescaped, the end
		// lands on the `;` itself, and libuci then drops the rest of the line without a word.
		if r.pos-start == len(out) {
			rest := bytes.TrimLeft(r.buf[r.pos+1:], " \t\n\v\f\r")
			r.buf = r.buf[:r.pos]
			if len(rest) > 0 && rest[0] != '#' {
				r.fail(line, "uci ignores the text after %s: put a space before the ;", quoteShort(string(out)+";"))
			}
		}
	} else if r.cur() != 0 {
		r.pos++ // the space that ended the word
	}
	return string(out)
}

// quoted reads a quoted piece starting at its opening quote. A quoted piece may span lines.
func (r *uciReader) quoted(out []byte, q byte) []byte {
	line := r.lineNo
	r.pos++
	for {
		c := r.cur()
		switch {
		case c == q:
			r.pos++
			return out
		case c == 0:
			if !r.getln(r.pos) {
				r.fail(line, "the %c quote opened on this line is never closed", q)
			}
		case c == '\\' && q == '"':
			if r.backslash() {
				out = append(out, r.cur())
				r.pos++
			}
		default:
			out = append(out, c)
			r.pos++
		}
	}
}

// backslash steps over a backslash. At the end of a line it joins the next line and reports
// false; otherwise it reports true, leaving the escaped character to be taken literally.
func (r *uciReader) backslash() bool {
	r.pos++
	c := r.cur()
	if c == 0 || c == '\n' || (c == '\r' && r.pos+2 == len(r.buf) && r.buf[r.pos+1] == '\n') {
		r.getln(r.pos)
		return false
	}
	return true
}

func (r *uciReader) assertEOL(line int) {
	r.skipSpace()
	if extra := r.nextArg(line, "", argValue); extra != "" {
		r.fail(line, "too many arguments (%s is one too many; quote values that hold spaces)", quoteShort(extra))
	}
}

// assertEOLSecret is assertEOL for the value of a secret option: the extra word is part of the
// secret more often than not, and the message goes to the log.
func (r *uciReader) assertEOLSecret(line int, name string) {
	r.skipSpace()
	if extra := r.nextArg(line, "", argValue); extra != "" {
		r.fail(line, "too many arguments for %s (not shown: it is a secret; quote values that hold spaces)", name)
	}
}

func (r *uciReader) openSection(line int, typ, name string) {
	if name != "" {
		for _, s := range r.file.sections {
			if s.name == name {
				if s.typ != typ {
					r.fail(line, "section %s of type %s redefined with type %s", quoteShort(name), quoteShort(s.typ), quoteShort(typ))
				}
				r.sec = s // a second config line with the same name adds to the section
				return
			}
		}
	}
	r.sec = &rawSection{typ: typ, name: name, line: line}
	r.file.sections = append(r.file.sections, r.sec)
}

// set applies one option or list statement as libuci does.
func (r *uciReader) set(line int, name, value string, list bool) {
	o := r.sec.option(name)
	if !list {
		if value == "" {
			return // libuci ignores `option name ''` while loading a file
		}
		if o == nil {
			o = &rawOption{name: name}
			r.sec.opts = append(r.sec.opts, o)
		}
		o.list, o.values, o.line = false, []string{value}, line
		return
	}
	if o == nil {
		o = &rawOption{name: name}
		r.sec.opts = append(r.sec.opts, o)
	}
	// A list statement after an option turns it into a list that starts with its value.
	o.list, o.values, o.line = true, append(o.values, value), line
}

// validName: section and option names, [A-Za-z0-9_]+.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// validType: section types, printable ASCII without spaces.
func validType(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}

// validPackage: package names, [A-Za-z0-9_-]+.
func validPackage(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '-' && !validName(s[i:i+1]) {
			return false
		}
	}
	return s != ""
}

// quoteShort quotes s for a message, cut to a readable length.
func quoteShort(s string) string {
	const max = 40
	if len(s) > max {
		return strconv.Quote(s[:max]) + "…"
	}
	return strconv.Quote(s)
}
