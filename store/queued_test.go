package store

import (
	"context"
	"testing"
	"time"
)

func TestQueued(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Put(ctx, &Entry{Kind: KindIngest, ReceivedAt: time.Now(), Body: []byte("x")}, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	items, _, err := s.ReadBatch(ctx, "a", 0, 1, 1<<20)
	if err != nil || len(items) != 1 {
		t.Fatalf("read: %v, %d items", err, len(items))
	}
	seq := items[0].Seq
	for _, tc := range []struct {
		queue string
		seq   uint64
		want  bool
	}{{"a", seq, true}, {"a", seq + 1, false}, {"nosuch", seq, false}} {
		if got, err := s.Queued(tc.queue, tc.seq); err != nil || got != tc.want {
			t.Errorf("Queued(%q, %d) = %v, %v; want %v", tc.queue, tc.seq, got, err, tc.want)
		}
	}
	if err := s.Ack(ctx, "a", seq); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Queued("a", seq); got {
		t.Error("an acked entry is still queued")
	}
}
