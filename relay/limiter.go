package relay

import (
	"context"
	"sync"
)

// limiter decides how many requests a forwarder has in flight to its
// destination: the configured concurrency while the queue keeps up, more,
// up to the configured maximum, while a backlog drains and the destination
// keeps answering, and back down as soon as it struggles.
//
// A fixed number of requests in flight caps delivery at that number per
// round trip, whatever the destination could take: 4 requests on loopback
// delivered a 1 GiB backlog at 1.3x the rate it was built, 16 at 2.2x. But
// most of the time a queue is near empty and 4 are plenty, and a
// destination that is slow or refusing must not be pushed harder. So the
// limit grows by one after a full round of successes (one success per
// request allowed) while the queue has a backlog, halves on a failed
// attempt, and falls back by one each time the forwarder finds the queue
// caught up: additive increase, multiplicative decrease, as TCP does and
// as Prometheus's remote write and Vector's adaptive concurrency do for
// the same reason.
type limiter struct {
	mu       sync.Mutex
	lo, hi   int // the configured concurrency and maximum
	limit    int
	inFlight int
	wins     int           // successes since the limit last changed
	changed  chan struct{} // closed and replaced when a slot may be free
	onChange func(limit int)
}

func newLimiter(lo, hi int, onChange func(int)) *limiter {
	l := &limiter{lo: lo, hi: max(hi, lo), limit: lo, changed: make(chan struct{}), onChange: onChange}
	l.report()
	return l
}

// acquire waits for a free slot; it reports false if ctx ends first.
func (l *limiter) acquire(ctx context.Context) bool {
	for {
		l.mu.Lock()
		if l.inFlight < l.limit {
			l.inFlight++
			l.mu.Unlock()
			return true
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// release frees a slot taken by acquire.
func (l *limiter) release() {
	l.mu.Lock()
	l.inFlight--
	l.signalLocked()
	l.mu.Unlock()
}

// current is the number of requests allowed in flight now.
func (l *limiter) current() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit
}

// succeeded records a delivery; backlog says whether the queue holds more
// than the forwarder has in hand.
func (l *limiter) succeeded(backlog bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !backlog || l.limit >= l.hi {
		return
	}
	if l.wins++; l.wins >= l.limit {
		l.setLocked(l.limit + 1)
	}
}

// failed records an attempt that failed in a way that may mean the
// destination is overloaded (throttled, 5xx, timeout, connection error).
func (l *limiter) failed() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setLocked(l.limit / 2)
}

// caughtUp records that the forwarder found the queue with no backlog.
func (l *limiter) caughtUp() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setLocked(l.limit - 1)
}

func (l *limiter) setLocked(n int) {
	n = min(max(n, l.lo), l.hi)
	l.wins = 0
	if n == l.limit {
		return
	}
	l.limit = n
	l.signalLocked()
	l.report()
}

func (l *limiter) signalLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *limiter) report() {
	if l.onChange != nil {
		l.onChange(l.limit)
	}
}
