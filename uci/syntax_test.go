package uci

import (
	"fmt"
	"strings"
	"testing"
)

// dump prints a parsed file compactly: one line per section, `ref(type) opt=[v ...] ...`.
func dump(f *rawFile) string {
	var b strings.Builder
	for _, s := range f.sections {
		fmt.Fprintf(&b, "%s(%s)", s.ref, s.typ)
		for _, o := range s.opts {
			kind := "="
			if o.list {
				kind = "+="
			}
			fmt.Fprintf(&b, " %s%s%q", o.name, kind, o.values)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestParseUCI checks the reading of UCI syntax against libuci's rules (openwrt/uci file.c and
// list.c): what each construct yields, and what libuci refuses.
func TestParseUCI(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // dump, when the file is accepted
		err      string // the error, when not
	}{
		{name: "writer format",
			in:   "\nconfig delve 'main'\n\toption enabled '1'\n\tlist type 'A'\n\tlist type 'AAAA'\n\nconfig upstream\n\toption address '1.1.1.1'\n\n",
			want: "main(delve) enabled=[\"1\"] type+=[\"A\" \"AAAA\"]\n@upstream[0](upstream) address=[\"1.1.1.1\"]\n"},
		{name: "double quotes, bare words, spaces",
			in:   "config   x   m\n    option a \"v w\"   \n  option b bare\n",
			want: "m(x) a=[\"v w\"] b=[\"bare\"]\n"},
		{name: "embedded quote as the uci writer escapes it",
			in:   "config x m\n\toption a 'it'\\''s'\n",
			want: "m(x) a=[\"it's\"]\n"},
		{name: "backslash escapes in double quotes",
			in:   "config x m\n\toption a \"q\\\"r\\\\s\\n\"\n",
			want: "m(x) a=[\"q\\\"r\\\\sn\"]\n"},
		{name: "backslash in single quotes is literal",
			in:   "config x m\n\toption a 'c:\\dir\\'\n",
			want: "m(x) a=[\"c:\\\\dir\\\\\"]\n"},
		{name: "backslash escapes in bare words",
			in:   "config x m\n\toption a two\\ words\\#x\n",
			want: "m(x) a=[\"two words#x\"]\n"},
		{name: "adjacent pieces join",
			in:   "config x m\n\toption a 'p'\"q\"r\n",
			want: "m(x) a=[\"pqr\"]\n"},
		{name: "backslash at end of line joins the next",
			in:   "config x m\n\toption a long\\\nvalue\n",
			want: "m(x) a=[\"longvalue\"]\n"},
		{name: "quoted value spanning lines",
			in:   "config x m\n\toption a 'one\ntwo'\n",
			want: "m(x) a=[\"one\\ntwo\"]\n"},
		{name: "one-letter keywords",
			in:   "c x m\n\to a 'v'\n\tl b 'w'\np ignored\n",
			want: "m(x) a=[\"v\"] b+=[\"w\"]\n"},
		{name: "package statement ignored",
			in:   "package delve\n\nconfig x m\n\toption a 'v'\n",
			want: "m(x) a=[\"v\"]\n"},
		{name: "semicolons separate statements",
			in:   "config x m ;option a 'v'; option b \"w\"\n",
			want: "m(x) a=[\"v\"] b=[\"w\"]\n"},
		{name: "semicolon right after a bare word ends the line",
			in:   "config x m\n\toption a v; # comment\n",
			want: "m(x) a=[\"v\"]\n"},
		{name: "comments",
			in:   "# head\nconfig x m # c\n\toption a 'v' # c\n\toption b v#c\n\t# option c 'x'\n",
			want: "m(x) a=[\"v\"] b=[\"v\"]\n"},
		{name: "hash inside quotes is text",
			in:   "config x m\n\toption a '#v'\n\toption b \"#w\"\n",
			want: "m(x) a=[\"#v\"] b=[\"#w\"]\n"},
		{name: "CRLF line ends",
			in:   "config x 'm'\r\n\toption a 'v'\r\n\toption b w\r\n\r\n",
			want: "m(x) a=[\"v\"] b=[\"w\"]\n"},
		{name: "no newline at end of file",
			in:   "config x m\n\toption a v",
			want: "m(x) a=[\"v\"]\n"},
		{name: "empty option is no option",
			in:   "config x m\n\toption a ''\n\toption b \"\"\n\toption c\n",
			want: "m(x)\n"},
		{name: "empty option leaves a set one alone",
			in:   "config x m\n\toption a 'v'\n\toption a ''\n",
			want: "m(x) a=[\"v\"]\n"},
		{name: "empty list item kept",
			in:   "config x m\n\tlist pin ''\n",
			want: "m(x) pin+=[\"\"]\n"},
		{name: "option repeated: last wins",
			in:   "config x m\n\toption a 'v'\n\toption a 'w'\n",
			want: "m(x) a=[\"w\"]\n"},
		{name: "list after option extends it",
			in:   "config x m\n\toption a 'v'\n\tlist a 'w'\n",
			want: "m(x) a+=[\"v\" \"w\"]\n"},
		{name: "option after list replaces it",
			in:   "config x m\n\tlist a 'v'\n\toption a 'w'\n",
			want: "m(x) a=[\"w\"]\n"},
		{name: "repeated list items kept",
			in:   "config x m\n\tlist a 'v'\n\tlist a 'v'\n",
			want: "m(x) a+=[\"v\" \"v\"]\n"},
		{name: "anonymous sections counted per type with named ones",
			in:   "config upstream 'u'\nconfig other\nconfig upstream\nconfig upstream ''\n",
			want: "u(upstream)\n@other[0](other)\n@upstream[1](upstream)\n@upstream[2](upstream)\n"},
		{name: "same name merges",
			in:   "config x m\n\toption a 'v'\nconfig y n\nconfig x m\n\toption b 'w'\n",
			want: "m(x) a=[\"v\"] b=[\"w\"]\nn(y)\n"},
		{name: "section types allow punctuation",
			in:   "config some-type.v2\n",
			want: "@some-type.v2[0](some-type.v2)\n"},
		{name: "only comments and blanks",
			in:   "# nothing\n\n   \n\t# here\n",
			want: ""},

		{name: "unknown command", in: "config x m\n\toptions a 'v'\n",
			err: `line 2: invalid command "options" (a line starts with config, option, list or package)`},
		{name: "keyword without arguments", in: "config\n",
			err: "line 1: config without arguments"},
		{name: "keyword at end of file", in: "config x m\noption",
			err: "line 2: option without a name"},
		{name: "config without type", in: "config \n",
			err: "line 1: missing section type"},
		{name: "option without name", in: "config x m\n\toption ''\n",
			err: "line 2: missing option name"},
		{name: "option before section", in: "# c\noption a 'v'\n",
			err: "line 2: option before the first config line"},
		{name: "invalid option name", in: "config x m\n\toption a-b 'v'\n",
			err: `line 2: invalid name "a-b" (section and option names are letters, digits and _)`},
		{name: "invalid section name", in: "config x 'm.n'\n",
			err: `line 1: invalid name "m.n" (section and option names are letters, digits and _)`},
		{name: "too many arguments", in: "config x m\n\toption a b c\n",
			err: `line 2: too many arguments ("c" is one too many; quote values that hold spaces)`},
		{name: "too many arguments for a secret", in: "config x m\n\toption websocket_token my secret\n",
			err: `line 2: too many arguments for websocket_token (not shown: it is a secret; quote values that hold spaces)`},
		{name: "a secret and a semicolon", in: "config x m\n\toption websocket_token 'a b' ; option c d\n",
			want: "m(x) websocket_token=[\"a b\"] c=[\"d\"]\n"},
		{name: "two statements without semicolon", in: "config x m\n\toption a 'v' option b 'w'\n",
			err: `line 2: too many arguments ("option" is one too many; quote values that hold spaces)`},
		{name: "unterminated quote", in: "config x m\n\toption a 'v\n\toption b w\n",
			err: "line 2: the ' quote opened on this line is never closed"},
		{name: "unterminated double quote", in: "config x m\n\toption a \"v\n",
			err: `line 2: the " quote opened on this line is never closed`},
		{name: "semicolon at end of line", in: "config x m\n\toption a 'v';\n",
			err: `line 2: nothing after ";" (uci refuses a ";" at the end of a line)`},
		{name: "text libuci drops after a bare word and semicolon", in: "config x m\n\toption a v;option b w\n",
			err: `line 2: uci ignores the text after "v;": put a space before the ;`},
		{name: "section redefined with another type", in: "config x m\nconfig y m\n",
			err: `line 2: section "m" of type "x" redefined with type "y"`},
		{name: "garbage", in: "\x89PNG\r\n\x1a\n",
			err: `line 1: invalid command "\x89PNG\r\n" (a line starts with config, option, list or package)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseUCI([]byte(tt.in))
			if tt.err != "" {
				if err == nil {
					t.Fatalf("parsed as\n%s\nwant error %q", dump(f), tt.err)
				}
				if err.Error() != tt.err {
					t.Fatalf("error %q\nwant      %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got := dump(f); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// TestGoUCIQuote checks the quoting of values for go-uci, whose quoted strings keep a backslash
// and the character after it as they are.
func TestGoUCIQuote(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"plain", "'plain'", true},
		{"it's", `"it's"`, true},
		{`say "hi"`, `'say "hi"'`, true},
		{`back\slash`, `'back\slash'`, true},
		{`two\\`, `'two\\'`, true},
		{`trailing\`, "", false},
		{`both ' and "`, "", false},
		{"line\nbreak", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := goUCIQuote(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("goUCIQuote(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}
