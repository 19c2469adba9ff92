package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// QueryTimeout bounds one kdig or dig run when the context has no earlier deadline.
const QueryTimeout = 10 * time.Second

// KdigQuery is one DoT query by kdig.
type KdigQuery struct {
	Server  string // address, e.g. "127.0.0.1"; "" means 127.0.0.1
	Port    int    // 0 means 853
	CAFile  string // PEM file for +tls-ca=; "" means kdig's system roots
	TLSName string // +tls-hostname=
	Pin     string // optional +tls-pin=
	Name    string
	Type    string // "" means A
	Short   bool   // +short: only the answer data, in KdigResult.Short
	Extra   []string
}

// Record is one resource record as the tool printed it: Data is the presentation form after
// the type, with the tool's spacing inside quoted strings kept.
type Record struct {
	Name  string
	TTL   uint32
	Class string
	Type  string
	Data  string
}

// String formats r like a zone file line with single spaces.
func (r Record) String() string {
	return fmt.Sprintf("%s %d %s %s %s", r.Name, r.TTL, r.Class, r.Type, r.Data)
}

// KdigResult is what kdig or dig printed, parsed. For a +short query only Short (and Output)
// are set.
type KdigResult struct {
	// Rcode is the status from the header: "NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", ...
	Rcode string
	// Flags are the header flags in lower case ("qr", "aa", "tc", "rd", "ra", ...).
	Flags      []string
	Answer     []Record
	Authority  []Record
	Additional []Record
	// Short holds the lines of +short output.
	Short []string
	// Output is the tool's whole standard output and Args its command line.
	Output string
	Args   []string
}

// HasFlag reports whether the header carried flag (lower case, e.g. "tc").
func (r *KdigResult) HasFlag(flag string) bool { return slices.Contains(r.Flags, flag) }

// Data returns the data of the answer records of type typ, in order.
func (r *KdigResult) Data(typ string) []string {
	var out []string
	for _, rr := range r.Answer {
		if rr.Type == typ {
			out = append(out, rr.Data)
		}
	}
	return out
}

// Kdig runs kdig +tls against q.Server and parses its output. An error means kdig got no
// answer (connection, TLS or timeout); an NXDOMAIN answer is not an error.
func Kdig(ctx context.Context, q KdigQuery) (*KdigResult, error) {
	args := []string{"+tls", "+timeout=3", "+retry=0"}
	if q.CAFile != "" {
		args = append(args, "+tls-ca="+q.CAFile)
	}
	if q.TLSName != "" {
		args = append(args, "+tls-hostname="+q.TLSName)
	}
	if q.Pin != "" {
		args = append(args, "+tls-pin="+q.Pin)
	}
	return runQueryTool(ctx, "kdig", "knot-dnsutils", args, q.Server, q.Port, q.Name, q.Type, q.Short, q.Extra)
}

// KdigQuery returns the kdig query for name and typ against u, with u's CA and TLS name.
func (u *Unbound) KdigQuery(name, typ string) KdigQuery {
	return KdigQuery{Server: "127.0.0.1", Port: u.Port, CAFile: u.CAFile, TLSName: u.TLSName, Name: name, Type: typ}
}

// DigQuery is one plain-DNS query by dig.
type DigQuery struct {
	Server string // "" means 127.0.0.1
	Port   int    // 0 means 53
	Name   string
	Type   string // "" means A
	// TCP queries over TCP (+tcp) instead of UDP.
	TCP bool
	// BufSize, when > 0, is the EDNS UDP buffer size (+bufsize=); NoEDNS sends no OPT record.
	BufSize int
	NoEDNS  bool
	// Ignore keeps a truncated UDP answer instead of retrying over TCP (+ignore), so the TC
	// flag shows.
	Ignore bool
	Short  bool
	Extra  []string
}

// Dig runs dig and parses its output into the same result as Kdig.
func Dig(ctx context.Context, q DigQuery) (*KdigResult, error) {
	// +nocookie: unbound 1.17 ignores cookies and a missing server cookie only adds warnings.
	args := []string{"+time=3", "+tries=1", "+nocookie", "+nosearch"}
	if q.TCP {
		args = append(args, "+tcp")
	}
	if q.BufSize > 0 {
		args = append(args, fmt.Sprintf("+bufsize=%d", q.BufSize))
	}
	if q.NoEDNS {
		args = append(args, "+noedns")
	}
	if q.Ignore {
		args = append(args, "+ignore")
	}
	return runQueryTool(ctx, "dig", "bind9-dnsutils", args, q.Server, q.Port, q.Name, q.Type, q.Short, q.Extra)
}

// runQueryTool runs kdig or dig (from Debian package pkg) with its own args and what both take
// alike: the server (default 127.0.0.1), port, name, type (default A), +short and extra args.
func runQueryTool(ctx context.Context, tool, pkg string, args []string, server string, port int, name, typ string, short bool, extra []string) (*KdigResult, error) {
	bin, err := LookTool(tool)
	if err != nil {
		return nil, fmt.Errorf("running %s: %w (install the Debian package %s)", tool, err, pkg)
	}
	if server == "" {
		server = "127.0.0.1"
	}
	if typ == "" {
		typ = "A"
	}
	if port != 0 {
		args = append(args, "-p", strconv.Itoa(port))
	}
	if short {
		args = append(args, "+short")
	}
	args = append(args, extra...)
	args = append(args, "@"+server, name, typ)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, QueryTimeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	res := &KdigResult{Output: stdout.String(), Args: append([]string{bin}, args...)}
	cmdline := strings.Join(res.Args, " ")
	if err != nil {
		return res, fmt.Errorf("%s: %w: %s%s", cmdline, err, stdout.String(), stderr.String())
	}
	if short {
		for _, line := range strings.Split(res.Output, "\n") {
			line = strings.TrimSpace(line)
			// kdig and dig print failures as comments even with +short.
			if line != "" && !strings.HasPrefix(line, ";") {
				res.Short = append(res.Short, line)
			}
		}
		return res, nil
	}
	if err := parseOutput(res); err != nil {
		return res, fmt.Errorf("%s: %w: %s%s", cmdline, err, stdout.String(), stderr.String())
	}
	return res, nil
}

// parseOutput reads the header and the sections from kdig or dig output, which share a shape:
//
//	;; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 4711      (dig: commas)
//	;; Flags: qr aa rd; QUERY: 1; ANSWER: 1; ...                    (dig: ";; flags: qr aa rd; QUERY: 1, ...")
//	;; ANSWER SECTION:
//	a.delve.test.       	300	IN	A	192.0.2.1
func parseOutput(res *KdigResult) error {
	var section *[]Record
	for _, line := range strings.Split(res.Output, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.Contains(trimmed, "->>HEADER<<-"):
			_, after, ok := strings.Cut(trimmed, "status: ")
			if !ok {
				return errors.New("no status in the header")
			}
			res.Rcode = strings.TrimRight(strings.Fields(after)[0], ",;")
		case strings.HasPrefix(strings.ToLower(trimmed), ";; flags:"):
			flags, _, _ := strings.Cut(trimmed[len(";; flags:"):], ";")
			res.Flags = strings.Fields(strings.ToLower(flags))
		case trimmed == ";; ANSWER SECTION:":
			section = &res.Answer
		case trimmed == ";; AUTHORITY SECTION:":
			section = &res.Authority
		case trimmed == ";; ADDITIONAL SECTION:":
			section = &res.Additional
		case trimmed == "" || strings.HasPrefix(trimmed, ";"):
			if trimmed == "" || strings.HasSuffix(trimmed, "SECTION:") {
				section = nil
			}
		case section != nil:
			rr, err := parseRecord(trimmed)
			if err != nil {
				return err
			}
			*section = append(*section, rr)
		}
	}
	if res.Rcode == "" {
		return errors.New("no header in the output")
	}
	return nil
}

// parseRecord splits "name ttl class type data..." keeping data as printed.
func parseRecord(line string) (Record, error) {
	var f [4]string
	rest := line
	for i := range f {
		rest = strings.TrimLeft(rest, " \t")
		end := strings.IndexAny(rest, " \t")
		if end < 0 {
			return Record{}, fmt.Errorf("short record line %q", line)
		}
		f[i], rest = rest[:end], rest[end:]
	}
	ttl, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		return Record{}, fmt.Errorf("bad TTL in record line %q", line)
	}
	return Record{Name: f[0], TTL: uint32(ttl), Class: f[2], Type: f[3], Data: strings.TrimSpace(rest)}, nil
}
