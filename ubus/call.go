package ubus

import (
	"context"
	"fmt"
	"io"
	"net"
	"sort"
	"time"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/json"
	"github.com/delvedns/delve/internal/jsonrpc"
	"github.com/delvedns/delve/uci"
)

// Limits of a call.
const (
	// MaxArgs bounds the argument object read from stdin. rpcd writes it in one go and a pipe
	// holds 64 KiB; delve's arguments are a few short strings.
	MaxArgs = 64 << 10
	// MaxReply bounds what a call prints, newline included: far below ubus's 1 MiB message
	// limit, over which ubusd disconnects rpcd itself.
	MaxReply = 512 << 10
	// DefaultDeadline bounds a whole call when the configured lookup timeout is short (or the
	// configuration cannot be read).
	DefaultDeadline = 10 * time.Second
	// MaxDeadline is the longest a call may take whatever the configuration says (main.timeout
	// goes up to 60 s): rpcd kills an exec plugin after its -t timeout (30 s as OpenWrt ships
	// /etc/config/rpcd; 120 s compiled in), `ubus call` waits 30 s by default, and a plugin
	// killed before it has printed its object gives the caller "No response" instead of the
	// timeout error object.
	MaxDeadline = 25 * time.Second
	// deadlineMargin is the time left for the daemon to answer after its own lookup timeout, so
	// that the daemon's timeout error (naming the name) arrives rather than the bridge's.
	deadlineMargin = 2 * time.Second
)

// Options are the settings of a call. The zero value reads nothing and calls the default socket.
type Options struct {
	// Socket is the daemon's JSON-RPC socket; empty: main.socket of Config, else
	// uci.DefaultSocket.
	Socket string
	// Config is the UCI file to take main.socket and main.timeout from; empty: none. A file
	// that no longer loads still gives main.socket as written (uci.MainSocket): the daemon
	// runs the configuration it loaded before and answers there. A missing or unreadable one
	// leaves the defaults.
	Config string
	// Deadline bounds the whole call, reading stdin included; zero: main.timeout plus 2 s,
	// at least DefaultDeadline and at most MaxDeadline.
	Deadline time.Duration
	// MaxReply bounds the bytes printed, newline included; zero: MaxReply.
	MaxReply int
}

// Call runs `delve rpcd call METHOD`: it reads the argument object from stdin to EOF, forwards
// the call to the daemon and writes exactly one JSON object and a newline to stdout: the
// daemon's result, or an error object {"error":"<one sentence>","code":"<api code>"}. Unknown
// arguments (ubus_rpc_session, added by uhttpd) are dropped. It returns only the error of
// writing stdout. It returns within the deadline even when stdin does not end, leaving a
// goroutine blocked on stdin behind in that case (the process exits right after).
func Call(ctx context.Context, o Options, method string, stdin io.Reader, stdout io.Writer) error {
	_, err := stdout.Write(call(ctx, o, method, stdin))
	return err
}

// call returns what Call prints.
func call(ctx context.Context, o Options, method string, stdin io.Reader) []byte {
	start := time.Now()
	// Bound everything, reading the configuration included, before anything could block.
	ctx, cancel := context.WithDeadline(ctx, start.Add(MaxDeadline))
	defer cancel()

	m, ok := api.FindMethod(method)
	if !ok {
		return errorReply(api.NoSuchMethod(method))
	}
	socket, deadline := o.resolve()
	ctx, cancel = context.WithDeadline(ctx, start.Add(deadline))
	defer cancel()

	data, err := readArgs(ctx, stdin, deadline)
	if err != nil {
		return errorReply(err)
	}
	return answer(ctx, m, data, o.MaxReply, func(ctx context.Context, method string, params map[string]string) (json.RawMessage, error) {
		return forward(ctx, socket, deadline, method, params)
	})
}

// Caller runs a method with its checked arguments and returns its result object: forward over
// the daemon's socket for the bridge, the daemon's own handler for the native object.
type Caller func(ctx context.Context, method string, params map[string]string) (json.RawMessage, error)

// answer is what the bridge and the native object have in common: it checks the argument
// object data (JSON) against m, runs the call and returns the reply line, at most max bytes
// (0: MaxReply), or the error object of what failed.
func answer(ctx context.Context, m api.Method, data []byte, max int, do Caller) []byte {
	params, err := parseArgs(m, data)
	if err != nil {
		return errorReply(err)
	}
	res, err := do(ctx, m.Name, params)
	if err != nil {
		return errorReply(err)
	}
	if max <= 0 {
		max = MaxReply
	}
	out, err := fit(m.Name, res, max)
	if err != nil {
		return errorReply(err)
	}
	return out
}

// resolve returns the socket and the deadline of a call.
func (o Options) resolve() (socket string, deadline time.Duration) {
	socket, deadline = o.Socket, o.Deadline
	if (socket == "" || deadline <= 0) && o.Config != "" {
		// The error is dropped on purpose: a broken file must not stop a call to a daemon that
		// may be running with the configuration it loaded before the file broke.
		if cfg, err := uci.Load(o.Config); err == nil {
			if socket == "" {
				socket = cfg.Socket
			}
			if deadline <= 0 {
				deadline = min(max(cfg.Timeout+deadlineMargin, DefaultDeadline), MaxDeadline)
			}
		} else if socket == "" {
			// The daemon still runs the file it loaded before, on the socket that file named:
			// main.socket as written, as delve status finds it.
			if s, err := uci.MainSocket(o.Config); err == nil {
				socket = s
			}
		}
	}
	if socket == "" {
		socket = uci.DefaultSocket
	}
	if deadline <= 0 {
		deadline = DefaultDeadline
	}
	return socket, min(deadline, MaxDeadline)
}

// readArgs reads stdin to EOF, at most MaxArgs bytes. rpcd closes stdin after writing the
// arguments; should it not, the call still ends at the deadline.
func readArgs(ctx context.Context, stdin io.Reader, deadline time.Duration) ([]byte, error) {
	if stdin == nil {
		return nil, nil
	}
	type result struct {
		data []byte
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		data, err := io.ReadAll(io.LimitReader(stdin, MaxArgs+1))
		ch <- result{data, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, api.NewError(api.CodeBadRequest, "reading the arguments from stdin failed: "+r.err.Error())
		}
		if len(r.data) > MaxArgs {
			return nil, api.NewError(api.CodeBadRequest, fmt.Sprintf("the arguments are larger than %d KiB", MaxArgs>>10))
		}
		return r.data, nil
	case <-ctx.Done():
		return nil, errStdinTimeout(ctx, deadline)
	}
}

// Forward makes one call on the daemon's socket, as Call does but without stdin and the size
// bound: the socket and the deadline are o's, and every failure is an *api.Error with the
// messages Call prints (daemon_down names the socket and how to start the daemon). The
// control commands (delve status, flush, reload) use it. params nil sends none.
func Forward(ctx context.Context, o Options, method string, params map[string]string) (json.RawMessage, error) {
	socket, deadline := o.resolve()
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	return forward(ctx, socket, deadline, method, params)
}

// forward makes the call on the daemon's socket. params nil sends none.
func forward(ctx context.Context, socket string, deadline time.Duration, method string, params map[string]string) (json.RawMessage, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, errDial(ctx, socket, deadline, err)
	}
	cl := jsonrpc.NewClient(nc)
	defer cl.Close()
	var p any // a nil map would be sent as "params":null
	if params != nil {
		p = params
	}
	var res json.RawMessage
	if err := cl.Call(ctx, method, p, &res); err != nil {
		return nil, errCall(ctx, socket, deadline, err)
	}
	return res, nil
}

// fit returns the reply line for result, making sure it is at most max bytes: a lookup with too
// many answers is capped further (marked "capped", with "answers_total"); anything else that is
// too large becomes an error.
func fit(method string, result json.RawMessage, max int) ([]byte, error) {
	if len(result) == 0 || result[0] != '{' {
		return nil, api.NewError(api.CodeInternal, fmt.Sprintf("the delve daemon answered %s with %.40s, not an object", method, result))
	}
	if len(result)+1 <= max {
		return append(result, '\n'), nil
	}
	if method == api.MethodLookup {
		if out, ok := capLookup(result, max); ok {
			return out, nil
		}
	}
	return nil, api.NewError(api.CodeTooLarge, fmt.Sprintf("the %s reply is %d bytes, more than the %d a ubus reply may have here", method, len(result), max))
}

// capLookup keeps as many answers of the lookup object res as fit in max bytes (newline
// included), and only the addresses among them. Members it does not know are kept as they are.
func capLookup(res json.RawMessage, max int) ([]byte, bool) {
	var obj map[string]json.RawMessage
	var answers []api.Answer
	if json.Unmarshal(res, &obj) != nil || json.Unmarshal(obj["answers"], &answers) != nil {
		return nil, false
	}
	total := len(answers)
	var before int // the daemon's own count when it capped already
	if raw, ok := obj["answers_total"]; ok && json.Unmarshal(raw, &before) == nil && before > total {
		total = before
	}
	encode := func(n int) []byte {
		addrs := []string{}
		for _, a := range answers[:n] {
			if a.Type == "A" || a.Type == "AAAA" {
				addrs = append(addrs, a.Data)
			}
		}
		obj["answers"], _ = json.Marshal(answers[:n])
		obj["addresses"], _ = json.Marshal(addrs)
		obj["capped"] = json.RawMessage("true")
		obj["answers_total"], _ = json.Marshal(total)
		b, err := json.Marshal(obj)
		if err != nil {
			return nil
		}
		return append(b, '\n')
	}
	fits := func(n int) bool {
		b := encode(n)
		return b != nil && len(b) <= max
	}
	// The size grows with n: find the first n that no longer fits.
	n := sort.Search(len(answers)+1, func(n int) bool { return !fits(n) }) - 1
	if n < 0 {
		return nil, false
	}
	return encode(n), true
}
