package relay

import (
	"time"

	"github.com/cenkalti/backoff/v4"
)

// retryPolicy is a destination's exponential backoff with jitter, shared by
// every wait the relay takes: between attempts of one entry, between probes
// of a down destination, and while a throttled destination pauses.
type retryPolicy struct {
	min, max time.Duration
}

// newBackoff returns a fresh schedule that starts at the policy's minimum.
func (p retryPolicy) newBackoff() *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.min),
		backoff.WithMaxInterval(p.max),
		backoff.WithMaxElapsedTime(0), // the queue, not the backoff, decides when to stop
	)
}

// next is b's next wait, never above the policy's maximum: the library
// applies its jitter after the cap, so a 5 min maximum could otherwise wait
// up to 7.5 min.
func (p retryPolicy) next(b *backoff.ExponentialBackOff) time.Duration {
	return min(b.NextBackOff(), p.max)
}

// retryAfter is the wait a Retry-After answer asks for, capped by the
// policy's maximum: a server asking for an hour must not stall a
// destination for an hour.
func (p retryPolicy) retryAfter(d time.Duration) time.Duration {
	return min(d, p.max)
}
