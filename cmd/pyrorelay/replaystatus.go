package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// retryWatch is the replay sender's log handler: it passes warnings and
// errors on to next, and keeps the reason of the last failed attempt,
// which the sender logs at debug level with each retry. Replay to a
// destination that is down would otherwise show nothing at all while it
// retries; with it, the progress shows the error, and a new reason is
// reported once on w.
type retryWatch struct {
	next slog.Handler
	st   *retryState
}

type retryState struct {
	w      io.Writer
	mu     sync.Mutex
	reason string
	at     time.Time
}

func newRetryWatch(w io.Writer, next slog.Handler) *retryWatch {
	return &retryWatch{next: next, st: &retryState{w: w}}
}

func (h *retryWatch) Enabled(context.Context, slog.Level) bool { return true }

func (h *retryWatch) Handle(ctx context.Context, r slog.Record) error {
	var reason string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "reason" {
			reason = a.Value.String()
			return false
		}
		return true
	})
	if reason != "" {
		h.st.mu.Lock()
		changed := reason != h.st.reason
		h.st.reason, h.st.at = reason, r.Time
		h.st.mu.Unlock()
		if changed && r.Level < slog.LevelWarn {
			fmt.Fprintf(h.st.w, "%s retrying: %s\n", r.Time.Format(time.RFC3339), reason)
		}
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *retryWatch) WithAttrs(as []slog.Attr) slog.Handler {
	return &retryWatch{next: h.next.WithAttrs(as), st: h.st}
}

func (h *retryWatch) WithGroup(name string) slog.Handler {
	return &retryWatch{next: h.next.WithGroup(name), st: h.st}
}

// last describes the last failed attempt, "" when none failed.
func (h *retryWatch) last() string {
	h.st.mu.Lock()
	defer h.st.mu.Unlock()
	if h.st.reason == "" {
		return ""
	}
	return fmt.Sprintf("last error %s ago: %s", time.Since(h.st.at).Round(time.Second), h.st.reason)
}
