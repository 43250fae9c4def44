package relay

import (
	"context"
	"net/http/httptest"
	"sync"
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
