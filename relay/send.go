package relay

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/pyrorelay/pyrorelay/store"
)

// Fate is how sending one entry ended.
type Fate int

const (
	// FateDelivered: the destination took the entry.
	FateDelivered Fate = iota + 1
	// FatePermanent: the destination refused it for good (a 4xx, or a
	// Push that does not decode).
	FatePermanent
	// FatePoison: it failed MaxAttempts times while the destination took
	// other entries, or with errors that point at the entry.
	FatePoison
	// FateAbandoned: the context ended before any of the above.
	FateAbandoned
	// FateExpired: the entry was older than its queue's max_age before
	// an attempt, so it was not sent (again); the queue's expiry moves it
	// to dead-letter.
	FateExpired
)

func (f Fate) String() string {
	switch f {
	case FateDelivered:
		return "delivered"
	case FatePermanent:
		return "permanent"
	case FatePoison:
		return "poison"
	case FateAbandoned:
		return "abandoned"
	case FateExpired:
		return "expired"
	default:
		return fmt.Sprintf("fate(%d)", int(f))
	}
}

// send sends e with the destination's retry policy until it is delivered,
// refused for good, found to be poison, or ctx ends. It is the policy every
// path shares: the forwarder's queue drain and the replay command.
// It reports the last outcome and how many attempts it took. If expired is
// not nil, it is asked before each attempt, and send stops when it says so.
func (f *Forwarder) send(ctx context.Context, e *store.Entry, expired func(*store.Entry) bool) (Outcome, int, Fate) {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(f.dest.MinBackoff),
		backoff.WithMaxInterval(f.dest.MaxBackoff),
		backoff.WithMaxElapsedTime(0), // the queue, not the backoff, decides when to stop
	)
	strikes := 0
	var o Outcome
	for attempt := 1; ; attempt++ {
		// Checked before every attempt, the first too: an entry handed
		// over just as it ages out is not sent either.
		if expired != nil && expired(e) {
			return o, attempt - 1, FateExpired
		}
		seen := f.delivered.Load()
		o = f.attempt(ctx, e)
		f.metrics.attempts.WithLabelValues(f.dest.Name, o.Verdict.String()).Inc()
		switch o.Verdict {
		case Delivered:
			f.delivered.Add(1)
			f.metrics.delivered.WithLabelValues(f.dest.Name).Add(float64(len(e.Body)))
			return o, attempt, FateDelivered
		case Permanent:
			f.noteFailure(o)
			return o, attempt, FatePermanent
		}
		f.noteFailure(o)
		f.lim.failed()
		if o.Strike || (!o.Throttled && f.delivered.Load() != seen) {
			strikes++
		}
		if strikes >= f.dest.MaxAttempts {
			o.Reason = fmt.Sprintf("poison: failed %d times while the destination took other entries; last: %s", attempt, o.Reason)
			return o, attempt, FatePoison
		}
		wait := b.NextBackOff()
		if o.RetryAfter > wait {
			wait = min(o.RetryAfter, f.dest.MaxBackoff)
		}
		f.log.Debug("retrying entry", "entry", e.ID, "attempt", attempt, "status", o.Status, "reason", o.Reason, "wait", wait)
		if !sleep(ctx, wait) {
			return o, attempt, FateAbandoned
		}
	}
}

// Failure is the last failed attempt to a destination.
type Failure struct {
	At     time.Time
	Status int // HTTP status, 0 for a transport error
	Reason string
}

func (f *Forwarder) noteFailure(o Outcome) {
	f.lastFailure.Store(&Failure{At: time.Now(), Status: o.Status, Reason: o.Reason})
}

// LastFailure reports the last failed attempt of this forwarder, or nil if
// none failed. `pyrorelay drain` shows it when a queue does not empty.
func (f *Forwarder) LastFailure() *Failure { return f.lastFailure.Load() }

// Sender sends single entries to a destination exactly as a Forwarder
// would (same client, auth, classification, backoff and poison cap), but
// outside any queue: what to do with the result is the caller's business.
// The replay command uses it to send stored or exported entries anywhere.
// It is safe for concurrent use.
type Sender struct {
	f *Forwarder
}

// NewSender returns a sender for dest; logger may be nil.
func NewSender(dest Destination, logger *slog.Logger) (*Sender, error) {
	f, err := NewForwarder(dest, nil, nil, logger)
	if err != nil {
		return nil, err
	}
	return &Sender{f: f}, nil
}

// SendResult is how sending one entry ended.
type SendResult struct {
	Fate     Fate
	Attempts int
	// Outcome is the last attempt's classified result.
	Outcome Outcome
}

// Send sends e, retrying as the destination's policy says, until it is
// delivered, refused for good, found to be poison, or ctx ends.
func (s *Sender) Send(ctx context.Context, e *store.Entry) SendResult {
	// No max_age here: replay sends old entries on purpose.
	o, n, fate := s.f.send(ctx, e, nil)
	return SendResult{Fate: fate, Attempts: n, Outcome: o}
}
