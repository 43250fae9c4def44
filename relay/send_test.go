package relay

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/store"
)

// sndServer answers /ingest with the statuses in order, then 200.
func sndServer(t *testing.T, statuses ...int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		i := int(n.Add(1)) - 1
		if i < len(statuses) {
			w.WriteHeader(statuses[i])
			_, _ = io.WriteString(w, `{"code":"x","message":"test"}`)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func sndDest(url string) Destination {
	return Destination{Name: "replay", URL: url, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, MaxAttempts: 3, Timeout: 5 * time.Second}
}

func sndEntry() *store.Entry {
	return &store.Entry{Kind: store.KindIngest, ReceivedAt: time.Now(), Query: "name=app.cpu", Body: []byte("main 1\n")}
}

func TestSenderUsesTheForwarderPolicy(t *testing.T) {
	tests := []struct {
		name      string
		statuses  []int
		fate      Fate
		attempts  int
		requests  int32
		lastFails bool
	}{
		{"delivered at once", nil, FateDelivered, 1, 1, false},
		{"retries while down", []int{503, 503, 429}, FateDelivered, 4, 4, true},
		{"permanent 400", []int{400}, FatePermanent, 1, 1, true},
		// Wrong credentials: every entry would get the same answer, and
		// replay has no queue to keep it in, so it says so at once.
		{"unauthorized 401", []int{401}, FatePermanent, 1, 1, true},
		// 500 is a strike each time: three strikes and it is poison.
		{"poison", []int{500, 500, 500, 500}, FatePoison, 3, 3, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, n := sndServer(t, tt.statuses...)
			s, err := NewSender(sndDest(srv.URL), nil)
			if err != nil {
				t.Fatal(err)
			}
			res := s.Send(context.Background(), sndEntry())
			if res.Fate != tt.fate || res.Attempts != tt.attempts {
				t.Errorf("got %v after %d attempts (%s), want %v after %d", res.Fate, res.Attempts, res.Outcome.Reason, tt.fate, tt.attempts)
			}
			if got := n.Load(); got != tt.requests {
				t.Errorf("destination saw %d requests, want %d", got, tt.requests)
			}
			if got := s.c.lastFailure.Load() != nil; got != tt.lastFails {
				t.Errorf("LastFailure set = %v, want %v", got, tt.lastFails)
			}
		})
	}
}

func TestSenderGivesUpWhenTheContextEnds(t *testing.T) {
	down := make([]int, 100)
	for i := range down {
		down[i] = http.StatusServiceUnavailable
	}
	srv, _ := sndServer(t, down...)
	d := sndDest(srv.URL)
	d.MinBackoff, d.MaxBackoff = time.Hour, time.Hour
	s, err := NewSender(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan SendResult, 1)
	go func() { done <- s.Send(ctx, sndEntry()) }()
	deadline := time.Now().Add(30 * time.Second)
	for s.c.lastFailure.Load() == nil {
		if time.Now().After(deadline) {
			t.Fatal("no failed attempt within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case res := <-done:
		if res.Fate != FateAbandoned || res.Outcome.Status != 503 {
			t.Errorf("got %+v, want abandoned after a 503", res)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Send did not return after its context ended")
	}
}

// TestSenderCapsRetryAfter: a Retry-After beyond max_backoff waits
// max_backoff; uncapped, the hour asked for here would outlast the context.
func TestSenderCapsRetryAfter(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	t.Cleanup(srv.Close)
	s, err := NewSender(sndDest(srv.URL), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if res := s.Send(ctx, sndEntry()); res.Fate != FateDelivered || res.Attempts != 2 {
		t.Fatalf("got %v after %d attempts (%s), want delivered on the second", res.Fate, res.Attempts, res.Outcome.Reason)
	}
}

func TestNewSenderValidates(t *testing.T) {
	if _, err := NewSender(Destination{Name: "x", URL: "ftp://nope"}, nil); err == nil {
		t.Error("a bad URL was accepted")
	}
}
