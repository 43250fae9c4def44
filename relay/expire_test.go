package relay

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/store"
)

// TestMaxAgeExpiresWhileDestinationIsDown: entries older than max_age leave
// the queue for dead-letter with reason "expired", even while every worker
// is stuck retrying a destination that is down.
func TestMaxAgeExpiresWhileDestinationIsDown(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	down := httptest.NewServer(nil)
	down.Close() // connection refused from now on

	ctx := context.Background()
	for i := 0; i < 6; i++ {
		e := &store.Entry{Kind: store.KindIngest, ReceivedAt: time.Now().Add(-2 * time.Hour), Query: "name=app", Body: []byte{byte(i)}}
		if i == 5 {
			e.ReceivedAt = time.Now() // young: stays
		}
		if err := st.Put(ctx, e, []string{"d"}); err != nil {
			t.Fatal(err)
		}
	}
	f, err := NewForwarder(Destination{
		Name: "d", URL: down.URL, MaxAge: time.Hour, Concurrency: 2,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
	}, st, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); f.Run(runCtx) }()
	defer func() { cancel(); wg.Wait() }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		stats, err := st.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if s := stats["d"]; s.DeadEntries == 5 && s.Entries == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats = %+v; want 5 dead letters and 1 queued", stats["d"])
		}
		time.Sleep(20 * time.Millisecond)
	}
	err = st.DeadLetters("d", func(d *store.DeadLetter, _ *store.Entry) error {
		if d.Reason != store.ReasonExpired {
			t.Errorf("dead letter reason = %q, want %q", d.Reason, store.ReasonExpired)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestWorkerStopsRetryingExpiredEntry: an entry waiting for a retry is
// dropped, not sent again, once it is older than max_age: sending it would
// deliver it after expiry has told the operator it was not (and a requeue
// would deliver it twice).
func TestWorkerStopsRetryingExpiredEntry(t *testing.T) {
	st := openStore(t)
	var oldTries, youngDelivered atomic.Int64
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if string(body) == "old" {
			oldTries.Add(1)
			http.Error(w, `{"code":"unavailable","message":"down for this one"}`, http.StatusServiceUnavailable)
			return
		}
		youngDelivered.Add(1)
	}))
	const maxAge = time.Second
	now := time.Now()
	put(t, st, []string{"d"},
		&store.Entry{Query: "name=app", ReceivedAt: now.Add(-maxAge + 300*time.Millisecond), Body: []byte("old")},
		&store.Entry{Query: "name=app", ReceivedAt: now, Body: []byte("young")},
	)
	d := testDest("d", srv.URL)
	d.MaxAge, d.Concurrency, d.MaxConcurrency = maxAge, 1, 1
	f, err := NewForwarder(d, st, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()

	eventually(t, "the young entry delivered", func() bool { return youngDelivered.Load() == 1 })
	eventually(t, "the old entry in dead-letter, the queue empty", func() bool {
		s := queueStats(t, st, "d")
		return s.Entries == 0 && s.DeadEntries == 1
	})
	// Once the forwarder holds nothing, nothing can send the old entry.
	eventually(t, "the forwarder holds nothing", func() bool { _, held := f.sched.counts(); return held == 0 })
	tries := oldTries.Load()
	cancel()
	<-done
	if n := oldTries.Load(); n != tries {
		t.Errorf("the old entry was tried %d more times after expiry", n-tries)
	}
	t.Logf("the old entry was tried %d times while it was young", tries)
	if dl := deadLetters(t, st, "d"); len(dl) != 1 || dl[0].Reason != store.ReasonExpired || dl[0].Body != "old" {
		t.Errorf("dead letters %+v, want the old entry, expired", dl)
	}
}

// TestReplayIgnoresMaxAge: a Sender (replay) sends entries of any age; max_age
// is the queue's rule, and replaying old profiles is the point of replay.
func TestReplayIgnoresMaxAge(t *testing.T) {
	var got atomic.Int64
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got.Add(1) }))
	d := testDest("d", srv.URL)
	d.MaxAge = time.Second
	s, err := NewSender(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	res := s.Send(context.Background(), &store.Entry{Kind: store.KindIngest, Query: "name=app", ReceivedAt: time.Now().Add(-time.Hour), Body: []byte("x")})
	if res.Fate != FateDelivered || got.Load() != 1 {
		t.Fatalf("fate %v, %d requests; want delivered once", res.Fate, got.Load())
	}
}
