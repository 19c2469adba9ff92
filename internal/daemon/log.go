package daemon

import (
	"context"
	"io"
	"log/slog"
)

// logHandler writes debug and info records to one writer and warnings and errors to another.
// Under procd (stdout 1, stderr 1) the first become daemon.info lines in logd and the second
// daemon.err, so that `logread -e delve` on a healthy router shows no err line.
type logHandler struct {
	_         [0]func() // never compared: no equality function in the binary
	level     slog.Leveler
	info, err slog.Handler
}

func newLogHandler(stdout, stderr io.Writer, level slog.Leveler) *logHandler {
	o := &slog.HandlerOptions{
		Level: level,
		// procd and logd add timestamps: the log lines carry none of their own.
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}
	return &logHandler{level: level, info: slog.NewTextHandler(stdout, o), err: slog.NewTextHandler(stderr, o)}
}

func (h *logHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		return h.err.Handle(ctx, r)
	}
	return h.info.Handle(ctx, r)
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &logHandler{level: h.level, info: h.info.WithAttrs(as), err: h.err.WithAttrs(as)}
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	return &logHandler{level: h.level, info: h.info.WithGroup(name), err: h.err.WithGroup(name)}
}
