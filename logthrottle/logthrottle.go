// Package logthrottle keeps log lines a client can trigger at will from
// flooding the log: a slog.Handler that lets the first of each kind of line
// through, drops the repeats for an interval, and counts them on the next
// line of the kind it lets through.
package logthrottle

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// maxKinds bounds the kinds of line remembered; lines of kinds past it
// share one allowance.
const maxKinds = 1024

// kindPrefix is how much of a message names its kind: log lines that embed
// what varies (an address, an error) after a fixed start are one kind.
const kindPrefix = 40

// Handler wraps another slog.Handler. Lines of one kind (level and the
// start of the message) pass at most once per interval; the line that
// passes after some were dropped carries "repeated", the number dropped
// since the last one that passed. Handlers derived with WithAttrs and
// WithGroup share the allowance.
type Handler struct {
	next  slog.Handler
	state *state
}

type state struct {
	interval time.Duration
	now      func() time.Time

	mu    sync.Mutex
	kinds map[string]*kind
}

type kind struct {
	last    time.Time
	dropped int
}

// New returns a Handler passing lines to next, each kind at most once per
// interval.
func New(next slog.Handler, interval time.Duration) *Handler {
	return &Handler{next: next, state: &state{interval: interval, now: time.Now, kinds: map[string]*kind{}}}
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	dropped, pass := h.state.admit(r)
	if !pass {
		return nil
	}
	if dropped > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("repeated", dropped))
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(attrs), state: h.state}
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), state: h.state}
}

// admit reports whether r passes, and how many of its kind were dropped
// since the last that did.
func (s *state) admit(r slog.Record) (int, bool) {
	msg := r.Message
	if len(msg) > kindPrefix {
		msg = msg[:kindPrefix]
	}
	key := r.Level.String() + " " + msg
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.kinds[key]
	if k == nil {
		if len(s.kinds) >= maxKinds {
			key = r.Level.String() + " (other)"
			k = s.kinds[key]
		}
		if k == nil {
			k = &kind{}
			s.kinds[key] = k
		}
	}
	if !k.last.IsZero() && now.Sub(k.last) < s.interval {
		k.dropped++
		return 0, false
	}
	dropped := k.dropped
	k.last, k.dropped = now, 0
	return dropped, true
}
