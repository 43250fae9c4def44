package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

func openLimited(t *testing.T, l Limits) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), Options{Limits: l})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func sizedEntry(n int, tag byte) *Entry {
	return &Entry{Kind: KindIngest, ReceivedAt: time.Now(), Query: "name=app", Body: bytes.Repeat([]byte{tag}, n)}
}

// queueBodies reads a whole queue and returns the first byte of each body.
func queueTags(t *testing.T, s *Store, q string) []byte {
	t.Helper()
	items, _, err := s.ReadBatch(context.Background(), q, 0, 1000, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	var tags []byte
	for _, it := range items {
		tags = append(tags, it.Entry.Body[0])
	}
	return tags
}

func TestLimitRejectsWhenQueueFull(t *testing.T) {
	ctx := context.Background()
	size := int64(sizedEntry(1000, 'a').Size())
	s := openLimited(t, Limits{MaxQueueBytes: 3 * size})
	for _, tag := range []byte("abc") {
		if err := s.Put(ctx, sizedEntry(1000, tag), []string{"q"}); err != nil {
			t.Fatalf("put %c: %v", tag, err)
		}
	}
	err := s.Put(ctx, sizedEntry(1000, 'd'), []string{"q"})
	if !errors.Is(err, ErrFull) {
		t.Fatalf("put over the limit: got %v, want ErrFull", err)
	}
	if got := queueTags(t, s, "q"); string(got) != "abc" {
		t.Fatalf("queue after refusal = %q, want abc (nothing acknowledged is touched)", got)
	}
	items, _, _ := s.ReadBatch(ctx, "q", 0, 1, 1<<30)
	if err := s.Ack(ctx, "q", items[0].Seq); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, sizedEntry(1000, 'd'), []string{"q"}); err != nil {
		t.Fatalf("put after room was made: %v", err)
	}
	if got := queueTags(t, s, "q"); string(got) != "bcd" {
		t.Fatalf("queue = %q, want bcd", got)
	}
}

func TestLimitDropOldest(t *testing.T) {
	ctx := context.Background()
	size := int64(sizedEntry(1000, 'a').Size())
	drops := map[string]int{}
	s := openLimited(t, Limits{MaxQueueBytes: 3 * size, DropOldest: true, OnDrop: func(q string, n int) { drops[q] += n }})
	for _, tag := range []byte("abcde") {
		if err := s.Put(ctx, sizedEntry(1000, tag), []string{"q", "other"}); err != nil {
			t.Fatalf("put %c: %v", tag, err)
		}
	}
	for _, q := range []string{"q", "other"} {
		if got := queueTags(t, s, q); string(got) != "cde" {
			t.Errorf("queue %s = %q, want cde", q, got)
		}
		if drops[q] != 2 {
			t.Errorf("drops[%s] = %d, want 2", q, drops[q])
		}
	}
	// Dropped from both queues, the entries themselves are gone.
	if n, b, _ := s.TotalBytes(); n != 3 || b != 3*size {
		t.Errorf("total = %d entries, %d bytes; want 3, %d", n, b, 3*size)
	}
	if err := s.Put(ctx, sizedEntry(5000, 'x'), []string{"q"}); !errors.Is(err, ErrFull) {
		t.Errorf("entry larger than the whole limit: got %v, want ErrFull", err)
	}
}

func TestLimitTotalBytes(t *testing.T) {
	ctx := context.Background()
	size := int64(sizedEntry(1000, 'a').Size())
	t.Run("reject", func(t *testing.T) {
		s := openLimited(t, Limits{MaxTotalBytes: 2 * size})
		// Stored once for both queues: two entries fit, whatever the
		// number of queues.
		for _, tag := range []byte("ab") {
			if err := s.Put(ctx, sizedEntry(1000, tag), []string{"x", "y"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Put(ctx, sizedEntry(1000, 'c'), []string{"x"}); !errors.Is(err, ErrFull) {
			t.Fatalf("got %v, want ErrFull", err)
		}
		// Acking in one queue frees nothing: the other still holds it.
		items, _, _ := s.ReadBatch(ctx, "x", 0, 1, 1<<30)
		_ = s.Ack(ctx, "x", items[0].Seq)
		if err := s.Put(ctx, sizedEntry(1000, 'c'), []string{"x"}); !errors.Is(err, ErrFull) {
			t.Fatalf("after a partial ack: got %v, want ErrFull", err)
		}
		items, _, _ = s.ReadBatch(ctx, "y", 0, 1, 1<<30)
		_ = s.Ack(ctx, "y", items[0].Seq)
		if err := s.Put(ctx, sizedEntry(1000, 'c'), []string{"x"}); err != nil {
			t.Fatalf("after both acks: %v", err)
		}
	})
	t.Run("drop-oldest", func(t *testing.T) {
		s := openLimited(t, Limits{MaxTotalBytes: 2 * size, DropOldest: true})
		for _, tag := range []byte("abc") {
			if err := s.Put(ctx, sizedEntry(1000, tag), []string{"x", "y"}); err != nil {
				t.Fatal(err)
			}
		}
		for _, q := range []string{"x", "y"} {
			if got := queueTags(t, s, q); string(got) != "bc" {
				t.Errorf("queue %s = %q, want bc", q, got)
			}
		}
	})
}

func TestExpireMovesOldEntriesToDeadLetter(t *testing.T) {
	ctx := context.Background()
	s := openLimited(t, Limits{})
	old := time.Now().Add(-2 * time.Hour)
	for i, tag := range []byte("abcd") {
		e := sizedEntry(10, tag)
		if i < 2 {
			e.ReceivedAt = old
		}
		if err := s.Put(ctx, e, []string{"q"}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.Expire(ctx, "q", time.Now().Add(-time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("Expire = %d, %v; want 2", n, err)
	}
	if got := queueTags(t, s, "q"); string(got) != "cd" {
		t.Fatalf("queue = %q, want cd", got)
	}
	var reasons []string
	var tags []byte
	err = s.DeadLetters("q", func(d *DeadLetter, e *Entry) error {
		reasons = append(reasons, d.Reason)
		tags = append(tags, e.Body[0])
		return nil
	})
	if err != nil || string(tags) != "ab" || reasons[0] != ReasonExpired || reasons[1] != ReasonExpired {
		t.Fatalf("dead letters = %q %v %v; want ab, both %q", tags, reasons, err, ReasonExpired)
	}
	if n, _ := s.Expire(ctx, "q", time.Now().Add(-time.Hour)); n != 0 {
		t.Fatalf("second Expire moved %d, want 0", n)
	}
}

// TestFileStaysBoundedOverFillDrainCycles fills a queue to its limit and
// drains it, again and again: bbolt reuses freed pages, so the file must
// stop growing after the first cycles.
func TestFileStaysBoundedOverFillDrainCycles(t *testing.T) {
	ctx := context.Background()
	const body = 16 << 10
	size := int64(sizedEntry(body, 'a').Size())
	s := openLimited(t, Limits{MaxQueueBytes: 100 * size})
	var sizes []int64
	for cycle := 0; cycle < 12; cycle++ {
		for {
			err := s.Put(ctx, sizedEntry(body, byte(cycle)), []string{"q", "r"})
			if errors.Is(err, ErrFull) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, q := range []string{"q", "r"} {
			for {
				items, _, err := s.ReadBatch(ctx, q, 0, 64, 1<<30)
				if err != nil {
					t.Fatal(err)
				}
				if len(items) == 0 {
					break
				}
				seqs := make([]uint64, len(items))
				for i, it := range items {
					seqs[i] = it.Seq
				}
				if err := s.Ack(ctx, q, seqs...); err != nil {
					t.Fatal(err)
				}
			}
		}
		fi, err := os.Stat(s.Path())
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, fi.Size())
	}
	t.Logf("file size after each fill/drain cycle: %v (limit %d bytes)", sizes, 100*size)
	// Free pages get fragmented, so the file may step up once or twice
	// before it settles; what must hold is a bound proportional to the
	// limit, however many cycles run.
	bound := 4*100*size + 4<<20
	for i, sz := range sizes {
		if sz > bound {
			t.Fatalf("after cycle %d the file is %d bytes, over %d (4x the queue limit + 4 MiB): %v", i, sz, bound, sizes)
		}
	}
}
