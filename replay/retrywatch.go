package replay

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/pyrorelay/pyrorelay/relay"
)

// RetryWatch is the replay sender's log handler: it passes warnings and
// errors on to next, and keeps the reason of the last failed attempt,
// which the sender logs at debug level with each retry. Replay to a
// destination that is down would otherwise show nothing at all while it
// retries; with it, the progress shows the error, and a new reason is
// reported once on w.
type RetryWatch struct {
	next slog.Handler
	st   *retryState
}

type retryState struct {
	w      io.Writer
	mu     sync.Mutex
	reason string
	at     time.Time
}

// NewRetryWatch returns a RetryWatch that reports new retry reasons on w
// and passes warnings and errors on to next.
func NewRetryWatch(w io.Writer, next slog.Handler) *RetryWatch {
	return &RetryWatch{next: next, st: &retryState{w: w}}
}

// Enabled is true at every level: debug records carry the retry reasons.
func (h *RetryWatch) Enabled(context.Context, slog.Level) bool { return true }

// Handle keeps the reason of r, if it has one, and passes r on to the
// next handler if that one takes its level.
func (h *RetryWatch) Handle(ctx context.Context, r slog.Record) error {
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

// WithAttrs is the next handler's WithAttrs, watched the same way.
func (h *RetryWatch) WithAttrs(as []slog.Attr) slog.Handler {
	return &RetryWatch{next: h.next.WithAttrs(as), st: h.st}
}

// WithGroup is the next handler's WithGroup, watched the same way.
func (h *RetryWatch) WithGroup(name string) slog.Handler {
	return &RetryWatch{next: h.next.WithGroup(name), st: h.st}
}

// Last describes the last failed attempt, "" when none failed.
func (h *RetryWatch) Last() string {
	h.st.mu.Lock()
	defer h.st.mu.Unlock()
	if h.st.reason == "" {
		return ""
	}
	return fmt.Sprintf("last error %s ago: %s", time.Since(h.st.at).Round(time.Second), h.st.reason)
}

// NewSender is the sender of a replay to d: relay's Sender, logging
// through a RetryWatch that reports new retry reasons on w and writes the
// sender's warnings and errors there as text. The RetryWatch's Last is
// for the progress line.
func NewSender(d relay.Destination, w io.Writer) (*relay.Sender, *RetryWatch, error) {
	retries := NewRetryWatch(w, slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := relay.NewSender(d, slog.New(retries))
	return s, retries, err
}
