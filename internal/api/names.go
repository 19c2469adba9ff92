package api

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/miekg/dns"
)

// Name limits (RFC 1035 §2.3.4): 63 octets a label, 253 characters a name in text form.
const (
	MaxLabel = 63
	MaxName  = 253
)

// ParseName checks a name given by a user and returns it fully qualified. An IP address becomes
// its reverse name (in-addr.arpa or ip6.arpa) and reverse is set, so that callers ask PTR.
// Errors are one sentence that says what is wrong.
func ParseName(s string) (fqdn string, reverse bool, err error) {
	if s == "" {
		return "", false, errors.New("the name is empty")
	}
	if !utf8.ValidString(s) {
		return "", false, errors.New("the name is not valid UTF-8")
	}
	if ip, err := netip.ParseAddr(s); err == nil {
		r, err := dns.ReverseAddr(ip.String())
		if err != nil {
			return "", false, errors.New("cannot make a reverse name for " + quoteShortASCII(s))
		}
		return r, true, nil
	}
	if s == "." {
		return ".", false, nil
	}
	name := strings.TrimSuffix(s, ".")
	if len(name) > MaxName {
		return "", false, errors.New("the name is " + strconv.Itoa(len(name)) + " bytes long, more than the 253 allowed")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" {
			return "", false, errors.New("the name " + quoteShortASCII(s) + " has an empty label")
		}
		if len(label) > MaxLabel {
			return "", false, errors.New("the label " + strconv.Quote(label[:20]+"…") + " is " + strconv.Itoa(len(label)) + " bytes long, more than the 63 allowed")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '*', c == '/':
			case c < 0x20 || c == 0x7f:
				return "", false, errors.New("the name contains a control character (" + strconv.QuoteToASCII(string(c)) + ")")
			case c >= 0x80:
				return "", false, errors.New("the name contains non-ASCII characters: give an internationalized name in its xn-- (punycode) form")
			default:
				return "", false, errors.New("the name contains the character " + strconv.QuoteRune(rune(c)) + ", which is not allowed in a host name")
			}
		}
	}
	return name + ".", false, nil
}

// quoteShortASCII quotes s in ASCII for a message, cut after 40 bytes: a name can be 253 bytes of
// control characters, four times that quoted.
func quoteShortASCII(s string) string {
	if len(s) <= 40 {
		return strconv.QuoteToASCII(s)
	}
	return strconv.QuoteToASCII(s[:40]) + "…"
}
