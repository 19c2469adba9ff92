// Package uci loads /etc/config/delve, as OpenWrt's uci tool writes it, into a validated Config whose
// errors name the place and the reason ("delve.cloudflare.port: "99999" is not a port (1-65535)").
//
// # How a file is read
//
// The values come from github.com/digineo/go-uci, loaded explicitly with LoadConfig (its Get hides
// load errors). Beside it, the package reads the file itself with libuci's rules (openwrt/uci
// file.c): that reading names the line of a syntax error, lists the unknown options and section
// types for the warnings (go-uci has no way to enumerate them), and is compared with what go-uci
// loaded for every section and option delve uses. When they agree, go-uci's tree of the file
// itself is used. When go-uci fails or disagrees, go-uci loads a copy normalized to uci's writer
// format in a private temporary directory, and that is compared again; values the copy cannot
// carry are refused with their place and line.
//
// # What go-uci reads differently from uci (checked against go-uci v2.0.0-20231120164223)
//
// Handled through the normalized copy, so that lines such as these load as uci reads them:
//
//	option websocket ''
//	list pin ''
//	option websocket_token 'it'\''s'
//	option websocket_token "a\"b" ; option ca_file /etc/my\ ca.pem
//	o tls_name 'dns.'"example" ; l pin x
//
// In go-uci:
//
//   - empty values (first two lines) are parse errors. libuci ignores an empty option while
//     loading and keeps an empty list item; delve ignores empty list items.
//   - the uci writer's escape for a quote inside a value (third line) is a parse error.
//   - backslash escapes in double-quoted and bare values (fourth line) keep their backslash: a
//     silently different value.
//   - adjacent pieces, one-letter keywords and semicolons between statements (fifth line) are
//     parse errors, except that after a bare word the semicolon silently joins the value; so are a
//     package line, CRLF line ends, a bare value on a last line without a newline, an option
//     without a value, and section types outside [-_A-Za-z0-9].
//
// Refused with the place and the line, since go-uci cannot hold the value at all: a quoted value
// that spans lines, and a value holding both ' and " or ending in an odd run of backslashes.
//
// Refused as libuci refuses them, where go-uci would accept: a keyword run into a word
// (`optionfoo`), a second `config` line that reuses a name with another type (go-uci merges).
//
// Stricter than libuci in one case: a `;` that directly follows a bare word makes libuci drop the rest
// of the line without a word (`option a v;option b w` sets only a); delve refuses such a line.
//
// go-uci merges repeated list items; delve would drop them anyway.
//
// Uncommitted changes (uci set without uci commit, kept under /tmp/.uci) are not read, as by every
// daemon that reads its file.
package uci
