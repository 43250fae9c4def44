package relay

import (
	"sync"
	"time"
)

// limiter decides how many requests a forwarder has in flight to its
// destination: the configured concurrency while the queue keeps up, more,
// up to the configured maximum, while a backlog drains and the destination
// answers well, and fewer when it shows it is overloaded.
//
// A fixed number of requests in flight caps delivery at that number per
// round trip, whatever the destination could take; but most of the time a
// queue is near empty and a few are plenty, and an overloaded destination
// must not be pushed harder. So the limit grows by one after a full round of
// successes (one success per request allowed) while the queue has a
// backlog, and is cut by half, at most once a round, on signs of overload:
// throttling (429, resource_exhausted), answers much slower than the
// destination's norm, or a failure share well above its norm. A steady share
// of random failures is noise, not overload: more or fewer requests do not
// change it, so it does not cut the limit. This is additive increase,
// multiplicative decrease, as TCP does, and as Vector's adaptive concurrency
// does with the same signals.
type limiter struct {
	mu       sync.Mutex
	lo, hi   int // the configured concurrency and maximum
	limit    int
	wins     int // successes since the limit last changed
	sinceCut int // attempts finished since the limit was last cut
	// fast and slow are moving averages of successful answers' latency,
	// in seconds: the recent one and the destination's norm.
	fast, slow float64
	samples    int
	onChange   func(limit int)
}

// Latency that counts as overload: over slowFactor times the norm plus
// slowMargin (the margin keeps a fast destination's jitter from counting).
const (
	slowFactor = 2
	slowMargin = 20 * time.Millisecond
)

func newLimiter(lo, hi int, onChange func(int)) *limiter {
	l := &limiter{lo: lo, hi: max(hi, lo), limit: lo, onChange: onChange}
	l.report()
	return l
}

// current is the number of requests allowed in flight now.
func (l *limiter) current() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit
}

// succeeded records a delivery that took latency; backlog says whether the
// queue holds more than the forwarder has in hand.
func (l *limiter) succeeded(backlog bool, latency time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sinceCut++
	sec := latency.Seconds()
	if l.samples == 0 {
		l.fast, l.slow = sec, sec
	}
	l.samples++
	l.fast += (sec - l.fast) / 4
	l.slow += (sec - l.slow) / 64
	if l.samples >= minSamples && l.fast > slowFactor*l.slow+slowMargin.Seconds() {
		l.cutLocked()
		return
	}
	if !backlog || l.limit >= l.hi {
		return
	}
	if l.wins++; l.wins >= l.limit {
		l.setLocked(l.limit + 1)
	}
}

// failed records a failed attempt; overloaded says whether it was a sign of
// overload (throttling, or a failure share well above the norm).
func (l *limiter) failed(overloaded bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sinceCut++
	if overloaded {
		l.cutLocked()
	}
}

// cutLocked halves the limit, once per round of requests in flight: the
// answers to requests sent before a cut say nothing about the cut limit.
func (l *limiter) cutLocked() {
	if l.sinceCut < l.limit {
		return
	}
	l.sinceCut = 0
	l.setLocked(l.limit / 2)
}

// caughtUp records that the forwarder found the queue with no backlog.
func (l *limiter) caughtUp() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setLocked(l.limit - 1)
}

// reset goes back to the configured concurrency, for a destination that
// comes back up after being down.
func (l *limiter) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setLocked(l.lo)
}

func (l *limiter) setLocked(n int) {
	n = min(max(n, l.lo), l.hi)
	l.wins = 0
	if n == l.limit {
		return
	}
	l.limit = n
	l.report()
}

func (l *limiter) report() {
	if l.onChange != nil {
		l.onChange(l.limit)
	}
}
