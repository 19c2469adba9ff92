package luciapp

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Kind is the kind of a token.
type Kind int

// Token kinds.
const (
	Ident    Kind = iota // names and keywords
	Number               // numeric literals
	String               // '...' and "..." (Value holds the decoded string)
	Template             // `...`, substitutions included
	Regexp               // /.../flags
	Punct                // everything else, one operator or bracket
)

// Token is one JavaScript token.
type Token struct {
	Kind  Kind
	Text  string // as written
	Value string // decoded, for String
	Line  int
}

// errUnterminated is returned for a string, template, comment or regular expression that does
// not end.
var errUnterminated = errors.New("unterminated literal or comment")

// A / starts a regular expression literal after a punctuator other than a closing bracket, and
// after the keywordsBeforeExpr; after a name, a number, a literal or ) or ] it divides.
var keywordsBeforeExpr = map[string]bool{"return": true, "typeof": true, "case": true, "do": true,
	"else": true, "in": true, "instanceof": true, "new": true, "delete": true, "void": true, "throw": true}

// Tokenize splits JavaScript source into tokens, dropping comments and white space.
func Tokenize(src string) ([]Token, error) {
	var toks []Token
	line := 1
	i := 0
	regexpOK := func() bool {
		if len(toks) == 0 {
			return true
		}
		last := toks[len(toks)-1]
		switch last.Kind {
		case Punct:
			return last.Text != ")" && last.Text != "]"
		case Ident:
			return keywordsBeforeExpr[last.Text]
		}
		return false
	}
	for i < len(src) {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("line %d: %w", line, errUnterminated)
			}
			line += strings.Count(src[i:i+2+end+2], "\n")
			i += 2 + end + 2
		case c == '\'' || c == '"':
			start, startLine := i, line
			i++
			var val strings.Builder
			for {
				if i >= len(src) || src[i] == '\n' {
					return nil, fmt.Errorf("line %d: %w", startLine, errUnterminated)
				}
				if src[i] == c {
					i++
					break
				}
				if src[i] == '\\' {
					r, n, err := unescape(src[i:])
					if err != nil {
						return nil, fmt.Errorf("line %d: %w", line, err)
					}
					if n == 2 && src[i+1] == '\n' {
						line++
					}
					val.WriteString(r)
					i += n
					continue
				}
				val.WriteByte(src[i])
				i++
			}
			toks = append(toks, Token{Kind: String, Text: src[start:i], Value: val.String(), Line: startLine})
		case c == '`':
			start, startLine := i, line
			i++
			depth := 0
			for {
				if i >= len(src) {
					return nil, fmt.Errorf("line %d: %w", startLine, errUnterminated)
				}
				switch {
				case src[i] == '\\':
					i++
				case src[i] == '\n':
					line++
				case src[i] == '`' && depth == 0:
					i++
					goto doneTemplate
				case strings.HasPrefix(src[i:], "${"):
					depth++
					i++
				case src[i] == '}' && depth > 0:
					depth--
				}
				i++
			}
		doneTemplate:
			toks = append(toks, Token{Kind: Template, Text: src[start:i], Line: startLine})
		case c == '/' && regexpOK():
			start := i
			i++
			inClass := false
			for {
				if i >= len(src) || src[i] == '\n' {
					return nil, fmt.Errorf("line %d: %w", line, errUnterminated)
				}
				if src[i] == '\\' {
					i += 2
					continue
				}
				if src[i] == '[' {
					inClass = true
				} else if src[i] == ']' {
					inClass = false
				} else if src[i] == '/' && !inClass {
					i++
					break
				}
				i++
			}
			for i < len(src) && isIdent(rune(src[i])) {
				i++
			}
			toks = append(toks, Token{Kind: Regexp, Text: src[start:i], Line: line})
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(src) && src[i+1] >= '0' && src[i+1] <= '9':
			start := i
			for i < len(src) && (isIdent(rune(src[i])) || src[i] == '.') {
				i++
			}
			toks = append(toks, Token{Kind: Number, Text: src[start:i], Line: line})
		default:
			r, n := utf8.DecodeRuneInString(src[i:])
			if isIdent(r) {
				start := i
				for i < len(src) {
					r, n := utf8.DecodeRuneInString(src[i:])
					if !isIdent(r) {
						break
					}
					i += n
				}
				toks = append(toks, Token{Kind: Ident, Text: src[start:i], Line: line})
				continue
			}
			// Longest punctuator first; the tokenizer needs no more than to tell them apart.
			p := string(r)
			for _, op := range []string{">>>=", "...", "===", "!==", "**=", "<<=", ">>=", ">>>", "=>", "==", "!=", "<=", ">=", "&&", "||", "??", "?.", "++", "--", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<", ">>", "**"} {
				if strings.HasPrefix(src[i:], op) {
					p = op
					break
				}
			}
			if n > 1 {
				p = src[i : i+n]
			}
			toks = append(toks, Token{Kind: Punct, Text: p, Line: line})
			i += len(p)
		}
	}
	return toks, nil
}

func isIdent(r rune) bool {
	return r == '_' || r == '$' || unicode.IsLetter(r) || unicode.IsDigit(r)
}

// unescape decodes the escape sequence at the start of s (which begins with a backslash) and
// says how many bytes it took.
func unescape(s string) (string, int, error) {
	if len(s) < 2 {
		return "", 0, errUnterminated
	}
	switch s[1] {
	case 'n':
		return "\n", 2, nil
	case 't':
		return "\t", 2, nil
	case 'r':
		return "\r", 2, nil
	case 'b':
		return "\b", 2, nil
	case 'f':
		return "\f", 2, nil
	case 'v':
		return "\v", 2, nil
	case '0':
		return "\x00", 2, nil
	case '\n':
		return "", 2, nil
	case 'x':
		if len(s) >= 4 {
			if v, err := strconv.ParseUint(s[2:4], 16, 8); err == nil {
				return string(rune(v)), 4, nil
			}
		}
	case 'u':
		if len(s) >= 6 {
			if v, err := strconv.ParseUint(s[2:6], 16, 16); err == nil {
				return string(rune(v)), 6, nil
			}
		}
	default:
		r, n := utf8.DecodeRuneInString(s[1:])
		return string(r), 1 + n, nil
	}
	return "", 0, fmt.Errorf("bad escape sequence %.6q", s)
}
