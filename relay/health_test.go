package relay

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pyrorelay/pyrorelay/internal/syncbuf"
	"github.com/pyrorelay/pyrorelay/store"
)

// TestForwardRandomFailuresLoseNothing: a destination that answers half of
// all requests with 503 at random gets every entry, and none is
// dead-lettered, however often one entry is unlucky.
func TestForwardRandomFailuresLoseNothing(t *testing.T) {
	const n = 300
	st := openStore(t)
	var got answered200
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		fail := rng.IntN(2) == 0
		mu.Unlock()
		if fail {
			http.Error(w, `{"code":"unavailable","message":"random"}`, http.StatusServiceUnavailable)
			return
		}
		got.ok(w, body)
	}))
	names := numbered(n)
	put(t, st, []string{"dest"}, bodies(names...)...)
	d := testDest("dest", srv.URL)
	d.MaxAttempts = 2
	runForwarder(t, d, st, nil)

	eventually(t, "queue empty", queueEmpty(t, st, "dest"))
	if dl := deadLetters(t, st, "dest"); len(dl) != 0 {
		t.Fatalf("%d dead letters, want none; first: %+v", len(dl), dl[0])
	}
	for _, name := range names {
		if c := got.counts()[name]; c != 1 {
			t.Errorf("%s delivered %d times, want once", name, c)
		}
	}
}

// TestForwardFailedEntryHoldsNoSlot: with one request allowed in flight, an
// entry that fails waits aside for its (here hour-long) backoff while the
// entries behind it are delivered. Retried in place, it would hold the only
// slot for the hour.
func TestForwardFailedEntryHoldsNoSlot(t *testing.T) {
	st := openStore(t)
	srv, got, stuckTries := failingOne(t, "stuck", http.StatusServiceUnavailable, "busy")
	put(t, st, []string{"dest"}, bodies("stuck", "a", "b", "c")...)
	d := testDest("dest", srv.URL)
	d.Concurrency, d.MaxConcurrency = 1, 1
	d.MinBackoff, d.MaxBackoff = time.Hour, time.Hour
	runForwarder(t, d, st, nil)

	eventually(t, "the entries behind the failed one delivered", func() bool { return len(got.counts()) == 3 })
	eventually(t, "their acks committed", func() bool { return queueStats(t, st, "dest").Entries == 1 })
	if s := queueStats(t, st, "dest"); s.DeadEntries != 0 {
		t.Errorf("queue %+v, want the failed entry still queued, nothing dead-lettered", s)
	}
	if n := stuckTries.Load(); n != 1 {
		t.Errorf("failed entry tried %d times, want once (its backoff is an hour)", n)
	}
}

// TestForwardRetryAfterPausesTheDestination: a Retry-After pauses every
// entry of the destination, not only the one it answered.
func TestForwardRetryAfterPausesTheDestination(t *testing.T) {
	st := openStore(t)
	var answeredAt atomic.Int64 // unix nanos of the 429
	var mu sync.Mutex
	var after []time.Time // arrivals after the 429 was sent
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		now := time.Now()
		if at := answeredAt.Load(); at != 0 {
			mu.Lock()
			after = append(after, now)
			mu.Unlock()
		}
		if string(body) == "first" && answeredAt.Load() == 0 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			answeredAt.Store(time.Now().UnixNano())
		}
	}))
	put(t, st, []string{"dest"}, bodies("first", "b", "c", "d", "e", "f")...)
	d := testDest("dest", srv.URL)
	d.Concurrency, d.MaxConcurrency = 1, 1
	d.MaxBackoff = 10 * time.Second
	runForwarder(t, d, st, nil)

	eventually(t, "queue empty", queueEmpty(t, st, "dest"))
	sent := time.Unix(0, answeredAt.Load())
	mu.Lock()
	defer mu.Unlock()
	for _, at := range after {
		// A lower bound on a wait the forwarder imposes: safe on a slow machine.
		if gap := at.Sub(sent); gap < 900*time.Millisecond {
			t.Errorf("a request arrived %v after the 429, want none within the 1s of Retry-After", gap)
		}
	}
	if len(after) != 6 {
		t.Errorf("%d requests after the 429, want the 6 entries", len(after))
	}
}

// TestForwardCapsRetryAfter: a Retry-After beyond max_backoff pauses for
// max_backoff; uncapped, the hour asked for here would outlast the test.
func TestForwardCapsRetryAfter(t *testing.T) {
	st := openStore(t)
	var calls atomic.Int64
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	put(t, st, []string{"dest"}, bodies("e")...)
	d := testDest("dest", srv.URL)
	d.MaxBackoff = 200 * time.Millisecond
	runForwarder(t, d, st, nil)
	eventually(t, "entry delivered", queueEmpty(t, st, "dest"))
}

// TestForwardMisconfiguredDestinationGoesDown: a 401 is the destination's
// fault, not the entries': nothing is dead-lettered, the destination goes
// down with one request at a time in flight, the operator is told once,
// and fixing it brings delivery back.
func TestForwardMisconfiguredDestinationGoesDown(t *testing.T) {
	const n = 20
	st := openStore(t)
	var (
		fixed    atomic.Bool
		mu       sync.Mutex
		inFlight int
		peak     int // requests in flight at once, once down was seen
		watching bool
	)
	var got answered200
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		inFlight++
		if watching {
			peak = max(peak, inFlight)
		}
		mu.Unlock()
		defer func() {
			mu.Lock()
			inFlight--
			mu.Unlock()
		}()
		if !fixed.Load() {
			time.Sleep(time.Millisecond) // let requests overlap if they may
			http.Error(w, `{"code":"unauthenticated","message":"invalid token"}`, http.StatusUnauthorized)
			return
		}
		got.ok(w, body)
	}))
	names := numbered(n)
	put(t, st, []string{"dest"}, bodies(names...)...)
	d := testDest("dest", srv.URL)
	d.Concurrency, d.MaxConcurrency = 4, 8
	d.ProbeInterval = 20 * time.Millisecond
	m := NewMetrics(nil)
	var logs syncbuf.Buffer
	f, err := NewForwarder(d, st, m, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	eventually(t, "destination down", func() bool { s, _ := f.State(); return s == StateDown })
	mu.Lock()
	watching, peak = true, 0 // count only requests that arrive from now on
	mu.Unlock()
	probes := m.probes.WithLabelValues("dest")
	eventually(t, "five probes", func() bool { return counterValue(t, probes) >= 5 })
	mu.Lock()
	if peak > 1 {
		t.Errorf("%d requests in flight at once while down, want at most one probe", peak)
	}
	mu.Unlock()
	if up := gaugeValue(t, m.up.WithLabelValues("dest")); up != 0 {
		t.Errorf("pyrorelay_destination_up = %v while down, want 0", up)
	}
	if dl := deadLetters(t, st, "dest"); len(dl) != 0 {
		t.Fatalf("%d dead letters for a destination fault, want none", len(dl))
	}

	fixed.Store(true)
	eventually(t, "every entry delivered", func() bool { return len(got.counts()) == n })
	eventually(t, "queue empty", queueEmpty(t, st, "dest"))
	if s, _ := f.State(); s != StateUp {
		t.Errorf("state %v after delivering, want up", s)
	}
	if up := gaugeValue(t, m.up.WithLabelValues("dest")); up != 1 {
		t.Errorf("pyrorelay_destination_up = %v after recovery, want 1", up)
	}
	if ts := gaugeValue(t, m.lastDelivery.WithLabelValues("dest")); ts < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last success timestamp %v, want about now", ts)
	}
	down, up := logs.Lines("destination down"), logs.Lines("destination up again")
	if len(down) != 1 || len(up) != 1 {
		t.Fatalf("log has %d down and %d up lines, want one each:\n%s", len(down), len(up), strings.Join(append(down, up...), "\n"))
	}
	if !strings.Contains(down[0], "level=WARN") || !strings.Contains(down[0], "misconfigured: 401") || !strings.Contains(down[0], "entries_waiting=") {
		t.Errorf("down line %q, want a warning with the 401 and the entries waiting", down[0])
	}
	if !strings.Contains(up[0], "level=WARN") || !strings.Contains(up[0], "down_for=") {
		t.Errorf("up line %q, want a warning saying how long it was down", up[0])
	}
	if retries := logs.Lines("level=INFO"); len(retries) != 0 {
		t.Errorf("%d info lines, want none (retries log at debug): %q", len(retries), retries[0])
	}
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// damagedQueue is a queue whose reads find the store damaged.
type damagedQueue struct {
	*store.Store
	reads atomic.Int64
}

func (q *damagedQueue) ReadBatch(context.Context, string, uint64, int, int) ([]store.Item, int, error) {
	q.reads.Add(1)
	return nil, 0, fmt.Errorf("read queue: %w: page 7 out of range", store.ErrDamaged)
}

// TestForwardStopsOnDamagedQueue: a queue the store finds damaged is not
// read again every few seconds (an error line each time): the forwarder
// says so once and stops.
func TestForwardStopsOnDamagedQueue(t *testing.T) {
	q := &damagedQueue{Store: openStore(t)}
	var logs syncbuf.Buffer
	f, err := NewForwarder(testDest("dest", "http://127.0.0.1:1"), q, nil, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); f.Run(context.Background()) }()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("Run did not stop on a damaged queue")
	}
	if n := q.reads.Load(); n != 1 {
		t.Errorf("%d reads of the damaged queue, want 1", n)
	}
	if l := logs.Lines("queue damaged"); len(l) != 1 || !strings.Contains(l[0], "page 7 out of range") {
		t.Errorf("log lines %q, want one saying the queue is damaged and why", l)
	}
}
