package httpserver

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Budget bounds the request bytes held in memory at once by every server
// that shares it: bodies read so far, and what decoding them takes. A
// request takes room as its bytes arrive, never for what it only declares,
// and gives it all back when it has been answered.
//
// When there is no room, a request waits up to the budget's wait for
// some, then is refused with ErrBusy (503 with Retry-After). The last
// eighth of the budget is kept for the first smallRequestBytes of each
// request, so that large requests stalled mid-body cannot starve small
// ones.
type Budget struct {
	limit   int64
	reserve int64
	wait    time.Duration

	mu   sync.Mutex
	held int64
	wake chan struct{} // closed and replaced whenever room is given back

	refused prometheus.Counter
}

// ErrBusy is returned when a request found no room in the budget in time.
var ErrBusy = errors.New("the relay is holding as many request bytes as its --max-request-memory allows: retry later")

// ErrOverBudget is returned when a request needs more than the budget
// ever gives one request: waiting cannot help.
var ErrOverBudget = errors.New("the request needs more memory than --max-request-memory gives one request")

// Defaults of a Budget.
const (
	DefaultMaxRequestMemory = 256 << 20
	DefaultBudgetWait       = 5 * time.Second
	// smallRequestBytes is how much of each request may use the part of
	// the budget kept for small requests.
	smallRequestBytes = 1 << 20
)

// NewBudget returns a budget of limit bytes (DefaultMaxRequestMemory when
// not positive); a request waits at most wait for room (DefaultBudgetWait
// when not positive).
func NewBudget(limit int64, wait time.Duration) *Budget {
	if limit <= 0 {
		limit = DefaultMaxRequestMemory
	}
	if wait <= 0 {
		wait = DefaultBudgetWait
	}
	return &Budget{limit: limit, reserve: limit / 8, wait: wait, wake: make(chan struct{}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pyrorelay_request_memory_refused_total",
			Help: "Requests answered 503 because no room came free in --max-request-memory in time.",
		})}
}

// Register registers the budget's metrics with reg: the bytes held, the
// limit, and the requests refused for want of room.
func (b *Budget) Register(reg prometheus.Registerer) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pyrorelay_request_memory_bytes",
			Help: "Request bytes held in memory now (bodies and their decoding), against pyrorelay_request_memory_limit_bytes.",
		}, func() float64 { return float64(b.Held()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pyrorelay_request_memory_limit_bytes",
			Help: "Most request bytes held in memory at once (--max-request-memory).",
		}, func() float64 { return float64(b.limit) }),
		b.refused,
	)
}

// Held is the number of bytes held now.
func (b *Budget) Held() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held
}

// Limit is the budget's size in bytes.
func (b *Budget) Limit() int64 { return b.limit }

// perRequest is the most one request can ever hold.
func (b *Budget) perRequest() int64 { return max(b.limit-b.reserve, min(b.limit, smallRequestBytes)) }

// hold is one request's share of a budget. It is used by one goroutine.
type hold struct {
	b *Budget
	n int64
	// deadline ends the request's waiting for room, over all its grow
	// calls: set by the first wait.
	deadline time.Time
}

func (b *Budget) newHold() *hold { return &hold{b: b} }

// grow takes n more bytes for the request, waiting for room until ctx
// ends or the request has waited the budget's wait in all.
func (h *hold) grow(ctx context.Context, n int64) error {
	if n <= 0 {
		return nil
	}
	b := h.b
	if h.n+n > b.limit-b.reserve && h.n+n > smallRequestBytes {
		return ErrOverBudget
	}
	var timer *time.Timer
	for {
		b.mu.Lock()
		ceiling := b.limit
		if h.n+n > smallRequestBytes {
			ceiling -= b.reserve
		}
		if b.held+n <= ceiling {
			b.held += n
			b.mu.Unlock()
			h.n += n
			if timer != nil {
				timer.Stop()
			}
			return nil
		}
		wake := b.wake
		b.mu.Unlock()
		if timer == nil {
			if h.deadline.IsZero() {
				h.deadline = time.Now().Add(b.wait)
			}
			timer = time.NewTimer(time.Until(h.deadline))
			defer timer.Stop()
		}
		select {
		case <-wake:
		case <-timer.C:
			b.refused.Inc()
			return ErrBusy
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// shrink gives n bytes back.
func (h *hold) shrink(n int64) {
	n = min(n, h.n)
	if n <= 0 {
		return
	}
	h.n -= n
	b := h.b
	b.mu.Lock()
	b.held -= n
	close(b.wake)
	b.wake = make(chan struct{})
	b.mu.Unlock()
}

// release gives everything back; the request is done with its bytes.
func (h *hold) release() { h.shrink(h.n) }
