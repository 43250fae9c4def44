package replay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/progress"
	"github.com/pyrorelay/pyrorelay/relay"
	"github.com/pyrorelay/pyrorelay/selection"
	"github.com/pyrorelay/pyrorelay/store"
)

// fakeSender refuses the entries whose id is in refuse and delivers the
// others, recording the ids it was given.
type fakeSender struct {
	refuse map[uint64]bool
	mu     sync.Mutex
	got    []uint64
}

func (s *fakeSender) Send(_ context.Context, e *store.Entry) relay.SendResult {
	s.mu.Lock()
	s.got = append(s.got, e.ID)
	s.mu.Unlock()
	if s.refuse[e.ID] {
		return relay.SendResult{Fate: relay.FatePermanent, Attempts: 1, Outcome: relay.Outcome{Reason: fmt.Sprintf("400 for %d", e.ID)}}
	}
	return relay.SendResult{Fate: relay.FateDelivered, Attempts: 1}
}

// items is a Source of n entries with ids 1..n, received at t0.
func items(n int, t0 time.Time) Source {
	return func(fn func(Item) error) error {
		for i := 1; i <= n; i++ {
			e := &store.Entry{ID: uint64(i), Kind: store.KindIngest, ReceivedAt: t0, Query: "name=shop.cpu", Body: []byte("main 1\n")}
			if err := fn(Item{Entry: e, Pos: uint64(100 + i), Size: 10, Name: fmt.Sprintf("entry %d", i)}); err != nil {
				return err
			}
		}
		return nil
	}
}

func TestRunAcksDeliveredAndReportsRefused(t *testing.T) {
	for _, conc := range []int{1, 4} {
		t.Run(fmt.Sprintf("concurrency %d", conc), func(t *testing.T) {
			sender := &fakeSender{refuse: map[uint64]bool{3: true}}
			var mu sync.Mutex
			var acked []uint64
			var errs bytes.Buffer
			prog := progress.New(io.Discard, "sent", 5, 50)
			res := Run(context.Background(), items(5, time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)), Options{
				Sender: sender, Concurrency: conc, Progress: prog, Errors: &errs,
				Ack: func(pos uint64) error {
					mu.Lock()
					defer mu.Unlock()
					acked = append(acked, pos)
					return nil
				},
			})
			prog.Finish()
			if res.FeedErr != nil || res.FirstFailure != "400 for 3" {
				t.Errorf("Run = %+v", res)
			}
			if n, b, failed := prog.Counts(); n != 4 || b != 40 || failed != 1 {
				t.Errorf("counts %d, %d, %d; want 4, 40, 1", n, b, failed)
			}
			if len(acked) != 4 || len(sender.got) != 5 {
				t.Errorf("acked %v, sent %v", acked, sender.got)
			}
			for _, pos := range acked {
				if pos == 103 {
					t.Error("the refused entry was acked")
				}
			}
			if want := "entry 3 (received 2026-03-01T12:00:00Z) not sent: permanent after 1 attempts: 400 for 3\n"; errs.String() != want {
				t.Errorf("errors %q, want %q", errs.String(), want)
			}
			if conc == 1 {
				for i, id := range sender.got {
					if id != uint64(i+1) {
						t.Fatalf("concurrency 1 sent out of order: %v", sender.got)
					}
				}
			}
		})
	}
}

func TestRunStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	sender := &fakeSender{}
	n := 0
	src := func(fn func(Item) error) error {
		for i := 1; ; i++ {
			if i == 3 {
				cancel()
			}
			e := &store.Entry{ID: uint64(i)}
			if err := fn(Item{Entry: e, Size: 1}); err != nil {
				return err
			}
			n++
		}
	}
	prog := progress.New(io.Discard, "sent", -1, 0)
	res := Run(ctx, src, Options{Sender: sender, Concurrency: 1, Rate: 1000, Progress: prog, Errors: io.Discard})
	prog.Finish()
	if !errors.Is(res.FeedErr, context.Canceled) {
		t.Errorf("FeedErr = %v, want context.Canceled", res.FeedErr)
	}
	if n > 3 {
		t.Errorf("fed %d entries after the context ended", n)
	}
}

func TestDryRun(t *testing.T) {
	var out bytes.Buffer
	sel, err := selection.Parse("", "", "shop", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := DryRun(&out, items(2, time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)), "queue prod", "", sel); err != nil {
		t.Fatal(err)
	}
	want := "would send entry 1: ingest, received 2026-03-01T12:00:00Z, shop.cpu, 10 B\n" +
		"would send entry 2: ingest, received 2026-03-01T12:00:00Z, shop.cpu, 10 B\n" +
		"dry run: would send 2 entries (20 B) from queue prod to --to (app shop)\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestRetryWatchReportsNewReasonsOnce(t *testing.T) {
	var out, next bytes.Buffer
	h := NewRetryWatch(&out, slog.NewTextHandler(&next, &slog.HandlerOptions{Level: slog.LevelWarn}))
	log := slog.New(h).With("destination", "replay")
	if h.Last() != "" {
		t.Errorf("Last() before any failure = %q", h.Last())
	}
	log.Debug("retrying", "reason", "connection refused")
	log.Debug("retrying", "reason", "connection refused")
	log.Debug("retrying", "reason", "503 Service Unavailable")
	log.Warn("dead", "reason", "400 Bad Request")
	if got := strings.Count(out.String(), "retrying: connection refused"); got != 1 {
		t.Errorf("connection refused reported %d times:\n%s", got, out.String())
	}
	if !strings.Contains(out.String(), "retrying: 503 Service Unavailable") || strings.Contains(out.String(), "400") {
		t.Errorf("reports:\n%s", out.String())
	}
	if !strings.Contains(next.String(), "400 Bad Request") || strings.Contains(next.String(), "refused") {
		t.Errorf("passed on:\n%s", next.String())
	}
	if l := h.Last(); !strings.Contains(l, "400 Bad Request") || !strings.HasPrefix(l, "last error ") {
		t.Errorf("Last() = %q", l)
	}
}
