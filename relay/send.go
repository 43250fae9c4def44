package relay

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pyrorelay/pyrorelay/store"
)

// Fate is how sending one entry ended.
type Fate int

const (
	// FateDelivered: the destination took the entry.
	FateDelivered Fate = iota + 1
	// FatePermanent: the destination refused it for good (a 4xx, a Push
	// that does not decode), or refused the sender (wrong credentials or
	// URL), which retrying cannot change either.
	FatePermanent
	// FatePoison: it failed MaxAttempts times with errors that point at
	// the entry (a generic server error).
	FatePoison
	// FateAbandoned: the context ended before any of the above.
	FateAbandoned
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
	default:
		return fmt.Sprintf("fate(%d)", int(f))
	}
}

// Sender sends single entries to a destination with the same client, auth,
// classification, backoff and poison cap as a Forwarder, but outside any
// queue: it retries each entry in place, and what to do with the result is
// the caller's business. The replay command uses it to send stored or
// exported entries anywhere. It is safe for concurrent use.
type Sender struct {
	c *client
}

// NewSender returns a sender for dest; logger may be nil.
func NewSender(dest Destination, logger *slog.Logger) (*Sender, error) {
	c, err := newClient(dest, nil, logger)
	if err != nil {
		return nil, err
	}
	return &Sender{c: c}, nil
}

// SendResult is how sending one entry ended.
type SendResult struct {
	Fate     Fate
	Attempts int
	// Outcome is the last attempt's classified result.
	Outcome Outcome
}

// Send sends e, retrying as the destination's policy says, until it is
// delivered, refused for good, found to be poison, or ctx ends. Entries of
// any age are sent: max_age is a queue's rule, and replaying old profiles is
// what replay is for.
func (s *Sender) Send(ctx context.Context, e *store.Entry) SendResult {
	policy := retryPolicy{min: s.c.dest.MinBackoff, max: s.c.dest.MaxBackoff}
	b := policy.newBackoff()
	strikes := 0
	for attempt := 1; ; attempt++ {
		o := s.c.attempt(ctx, e)
		switch {
		case o.Verdict == Delivered:
			return SendResult{FateDelivered, attempt, o}
		case o.Verdict == Permanent, o.DestinationFault:
			return SendResult{FatePermanent, attempt, o}
		case o.Strike:
			if strikes++; strikes >= s.c.dest.MaxAttempts {
				o.Reason = fmt.Sprintf("poison: failed %d times; last: %s", attempt, o.Reason)
				return SendResult{FatePoison, attempt, o}
			}
		}
		wait := policy.next(b)
		if o.RetryAfter > 0 {
			wait = policy.retryAfter(o.RetryAfter)
		}
		s.c.log.Debug("retrying entry", "entry", e.ID, "attempt", attempt, "status", o.Status, "reason", o.Reason, "wait", wait)
		if !sleep(ctx, wait) {
			return SendResult{FateAbandoned, attempt, o}
		}
	}
}
