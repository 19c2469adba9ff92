package ubus

import (
	"context"
	"errors"
	"io/fs"
	"syscall"
	"time"

	"github.com/delvedns/delve/internal/api"
	"github.com/delvedns/delve/internal/json"
)

// This file is the one place where the failures of a call become error objects.

// startHint ends the messages that say the daemon is not running.
const startHint = "start it with /etc/init.d/delve start"

// errorObject is what a failed call prints. rpcd turns it into an ordinary (status 0) ubus reply,
// since an exec plugin cannot choose a ubus status.
type errorObject struct {
	Error string   `json:"error"`
	Code  api.Code `json:"code"`
}

// errorReply is the line printed for err: an *api.Error keeps its code and message (the daemon's
// own errors arrive that way), anything else is a bug reported as internal.
func errorReply(err error) []byte {
	obj := errorObject{Code: api.CodeInternal, Error: err.Error()}
	var ae *api.Error
	if errors.As(err, &ae) {
		obj = errorObject{Code: ae.Code, Error: ae.Message}
	}
	b, _ := json.Marshal(obj) // two strings always encode
	return append(b, '\n')
}

// errDeadline is the error of a call whose context ended: msg says what was late, unless a
// signal ended it.
func errDeadline(ctx context.Context, msg string) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return api.NewError(api.CodeTimeout, "the call was interrupted (a signal) before it was done")
	}
	return api.NewError(api.CodeTimeout, msg)
}

func errStdinTimeout(ctx context.Context, deadline time.Duration) error {
	return errDeadline(ctx, "the arguments on stdin did not end within "+deadline.String())
}

// errDial describes a failure to connect to the daemon's socket.
func errDial(ctx context.Context, socket string, deadline time.Duration, err error) error {
	switch {
	case ctx.Err() != nil:
		return errDeadline(ctx, "connecting to the delve daemon on "+socket+" took longer than "+deadline.String())
	case errors.Is(err, fs.ErrNotExist):
		return api.NewError(api.CodeDaemonDown, "the delve daemon is not running (there is no socket "+socket+"): "+startHint)
	case errors.Is(err, syscall.ECONNREFUSED):
		return api.NewError(api.CodeDaemonDown, "the delve daemon is not running (nothing accepts connections on "+socket+"): "+startHint)
	case errors.Is(err, fs.ErrPermission):
		return api.NewError(api.CodeDaemonDown, "the delve daemon's socket "+socket+" cannot be opened: permission denied (it is for root, as rpcd runs)")
	}
	return api.NewError(api.CodeDaemonDown, "cannot connect to the delve daemon on "+socket+" ("+cause(err)+"); if it is not running, "+startHint)
}

// errCall describes a failure of a call on an open connection.
func errCall(ctx context.Context, socket string, deadline time.Duration, err error) error {
	var ae *api.Error
	switch {
	case errors.As(err, &ae):
		return ae // the daemon's own error: bad_request, timeout, no_upstream, config_error, ...
	case ctx.Err() != nil:
		return errDeadline(ctx, "the delve daemon did not answer within "+deadline.String())
	}
	// The connection broke: the daemon stopped (or crashed) during the call.
	return api.NewError(api.CodeDaemonDown, "the delve daemon on "+socket+" did not answer ("+err.Error()+"); it may have stopped: see logread -e delve, and "+startHint+" if it is not running")
}

// cause is the innermost text of a dial error: "connect: no such file or directory" rather than
// "dial unix /var/run/...: connect: ...", since the messages name the socket themselves.
func cause(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		if _, ok := u.(syscall.Errno); ok {
			return err.Error()
		}
		err = u
	}
}
