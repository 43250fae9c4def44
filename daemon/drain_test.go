package daemon

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/relay"
	"github.com/pyrorelay/pyrorelay/store"
)

// putEntries opens a store in a temporary directory with n entries queued
// for queue.
func putEntries(t *testing.T, queue string, n int) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	for range n {
		e := &store.Entry{Query: "name=app.cpu%7B%7D", Body: []byte("main;work 1\n")}
		if err := st.Put(context.Background(), e, []string{queue}); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// TestDrainEmptiesQueues: Drain forwards everything queued and says how
// the queue was before and after.
func TestDrainEmptiesQueues(t *testing.T) {
	dst := newDestination(t)
	st := putEntries(t, "d", 3)
	res, why, err := Drain(context.Background(), st, []relay.Destination{{Name: "d", URL: dst.srv.URL}}, deliverDeadline, nil)
	if err != nil || why != "" {
		t.Fatalf("Drain: why %q, err %v", why, err)
	}
	if len(res) != 1 || res[0].Destination != "d" || res[0].Before.Entries != 3 || res[0].After.Entries != 0 {
		t.Fatalf("results %+v", res)
	}
	if n := len(dst.requests()); n != 3 {
		t.Errorf("destination got %d requests, want 3", n)
	}
}

// TestDrainTimesOut: a destination that keeps failing leaves its entries
// queued; Drain says it timed out and what the last failure was.
func TestDrainTimesOut(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	st := putEntries(t, "d", 1)
	d := relay.Destination{Name: "d", URL: down.URL, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	res, why, err := Drain(context.Background(), st, []relay.Destination{d}, 300*time.Millisecond, nil)
	if err != nil || !strings.HasPrefix(why, "timed out after") {
		t.Fatalf("Drain: why %q, err %v; want a time-out", why, err)
	}
	if len(res) != 1 || res[0].After.Entries != 1 {
		t.Fatalf("results %+v: want the entry still queued", res)
	}
	if res[0].LastFailure == nil {
		t.Error("no last failure reported")
	}
}

// TestDrainResultCounts: what left the queue is delivered unless it went
// to the dead-letter list; counters that moved the other way (entries
// added meanwhile) count nothing.
func TestDrainResultCounts(t *testing.T) {
	for _, c := range []struct {
		name                 string
		before, after        store.QueueStats
		delivered, deadLettd int64
	}{
		{"all delivered", store.QueueStats{Entries: 5}, store.QueueStats{}, 5, 0},
		{"some dead", store.QueueStats{Entries: 5, DeadEntries: 1}, store.QueueStats{DeadEntries: 3}, 3, 2},
		{"some left", store.QueueStats{Entries: 5}, store.QueueStats{Entries: 2}, 3, 0},
		{"grew", store.QueueStats{Entries: 1, DeadEntries: 4}, store.QueueStats{Entries: 6, DeadEntries: 2}, 0, 0},
	} {
		r := DrainResult{Before: c.before, After: c.after}
		if got := r.Delivered(); got != c.delivered {
			t.Errorf("%s: Delivered = %d, want %d", c.name, got, c.delivered)
		}
		if got := r.DeadLettered(); got != c.deadLettd {
			t.Errorf("%s: DeadLettered = %d, want %d", c.name, got, c.deadLettd)
		}
	}
}
