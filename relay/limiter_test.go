package relay

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLimiterPolicy(t *testing.T) {
	const fast, slow = time.Millisecond, 200 * time.Millisecond
	type step struct {
		do   string // "win", "win-no-backlog", "slow", "fail", "overload", "caught-up", "reset"
		n    int
		want int // limit after the steps
	}
	tests := []struct {
		name   string
		lo, hi int
		steps  []step
	}{
		{"starts at the configured concurrency", 4, 16, []step{{"win", 0, 4}}},
		{"grows by one per full round of successes while backlogged", 2, 16, []step{
			{"win", 1, 2}, {"win", 1, 3}, {"win", 2, 3}, {"win", 1, 4},
		}},
		{"does not grow without a backlog", 2, 16, []step{{"win-no-backlog", 50, 2}}},
		{"never above the maximum", 2, 4, []step{{"win", 100, 4}}},
		// Random failures are noise: no number of them cuts the limit.
		{"plain failures never cut it", 2, 16, []step{{"win", 2 + 3 + 4 + 5 + 6 + 7, 8}, {"fail", 100, 8}}},
		{"overload halves it", 2, 16, []step{{"win", 2 + 3 + 4 + 5 + 6 + 7, 8}, {"overload", 1, 4}}},
		// The answers to requests sent before a cut say nothing about the
		// cut limit: a burst of 429s halves it once per round, not once each.
		{"at most one cut per round", 2, 16, []step{
			{"win", 2 + 3 + 4 + 5 + 6 + 7, 8}, {"overload", 1, 4}, {"overload", 3, 4}, {"overload", 1, 2},
		}},
		{"answers far slower than the norm cut it", 2, 16, []step{
			{"win", 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9, 10}, {"slow", 2, 5},
		}},
		{"never below the configured concurrency", 4, 16, []step{{"overload", 30, 4}, {"caught-up", 3, 4}}},
		{"caught up: one step back each time", 2, 16, []step{{"win", 2 + 3 + 4, 5}, {"caught-up", 2, 3}}},
		{"reset goes back to the configured concurrency", 2, 16, []step{{"win", 2 + 3 + 4, 5}, {"reset", 1, 2}}},
		{"a maximum below the concurrency is the concurrency", 4, 2, []step{{"win", 20, 4}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var reported atomic.Int64
			l := newLimiter(tt.lo, tt.hi, func(n int) { reported.Store(int64(n)) })
			for i, s := range tt.steps {
				for range s.n {
					switch s.do {
					case "win":
						l.succeeded(true, fast)
					case "win-no-backlog":
						l.succeeded(false, fast)
					case "slow":
						l.succeeded(true, slow)
					case "fail":
						l.failed(false)
					case "overload":
						l.failed(true)
					case "caught-up":
						l.caughtUp()
					case "reset":
						l.reset()
					}
				}
				if got := l.current(); got != s.want {
					t.Fatalf("after step %d (%s x%d): limit %d, want %d", i, s.do, s.n, got, s.want)
				}
				if got := reported.Load(); got != int64(s.want) {
					t.Fatalf("after step %d: reported %d, want %d", i, got, s.want)
				}
			}
		})
	}
}

// TestForwarderConcurrencyAdapts: behind a backlog, a destination that
// answers gets more requests in flight than its concurrency, never more
// than its maximum; one that fails goes back to its concurrency.
func TestForwarderConcurrencyAdapts(t *testing.T) {
	st := openStore(t)
	var (
		mu       sync.Mutex
		inFlight int
		peak     int
		failing  atomic.Bool
	)
	arrived := make(chan chan struct{})
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		inFlight++
		peak = max(peak, inFlight)
		mu.Unlock()
		release := make(chan struct{})
		select {
		case arrived <- release:
			<-release
		case <-r.Context().Done():
		}
		mu.Lock()
		inFlight--
		mu.Unlock()
	}))
	var names []string
	for i := range 200 {
		names = append(names, fmt.Sprint("profile ", i))
	}
	put(t, st, []string{"a"}, bodies(names...)...)

	d := testDest("a", srv.URL)
	d.Concurrency, d.MaxConcurrency = 2, 4
	f, err := NewForwarder(d, st, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// Hold the requests that arrive until as many are in flight as the
	// limiter allows, then let them all succeed: each round is one full
	// round of successes, so the limit climbs 2, 3, 4.
	var held []chan struct{}
	deadline := time.After(waitTimeout)
	for rounds := 0; ; {
		select {
		case r := <-arrived:
			held = append(held, r)
		case <-deadline:
			t.Fatalf("timed out with %d requests held, limit %d", len(held), f.lim.current())
		}
		if len(held) < f.lim.current() {
			continue
		}
		if len(held) == d.MaxConcurrency {
			break
		}
		for _, r := range held {
			close(r)
		}
		held = held[:0]
		if rounds++; rounds > 10 {
			t.Fatalf("after %d rounds the limit is still %d", rounds, f.lim.current())
		}
	}
	mu.Lock()
	if peak != d.MaxConcurrency {
		t.Errorf("most requests in flight: %d, want the maximum %d", peak, d.MaxConcurrency)
	}
	mu.Unlock()

	// The destination starts failing: the limit falls back.
	failing.Store(true)
	for _, r := range held {
		close(r)
	}
	eventually(t, "the limit back at the concurrency", func() bool { return f.lim.current() == d.Concurrency })
}
