package store

import (
	"context"
	"errors"
	"maps"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestSegmentCountsInMemory: what is live in each segment is counted in
// memory, not in the file: no commit writes a segments bucket, and Open
// drops one an earlier build left. A failed transaction's changes to the
// counts go with it, a committed one's stay, and after a restart the
// counts are taken from the locators again.
func TestSegmentCountsInMemory(t *testing.T) {
	dir := t.TempDir()
	var failing atomic.Bool
	s := openStore(t, dir, Options{segmentFault: func(call string) error {
		if call == "sync" && failing.Load() {
			return syscall.EIO
		}
		return nil
	}})
	wantCounts := func(when string, want int64) {
		t.Helper()
		var live map[uint64]segmentCount
		var bucket bool
		if err := s.db.View(func(tx *bolt.Tx) error {
			live, _ = liveSegments(tx)
			bucket = tx.Bucket(bucketSegments) != nil
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		got := segmentCounts(t, s)
		if !maps.Equal(got, live) {
			t.Errorf("%s: counts %v, locators say %v", when, got, live)
		}
		var n int64
		for _, c := range got {
			n += c.count
		}
		if n != want {
			t.Errorf("%s: %d live frames counted, want %d", when, n, want)
		}
		if bucket {
			t.Errorf("%s: the file has a segments bucket", when)
		}
	}
	first := mustPut(t, s, bigBody("first"), "a", "b")
	mustPut(t, s, bigBody("second"), "a")
	wantCounts("after two puts", 2)

	failing.Store(true)
	if err := s.Put(context.Background(), testEntry(bigBody("refused")), []string{"a"}); !errors.Is(err, syscall.EIO) {
		t.Fatalf("put with a failing segment sync: %v", err)
	}
	failing.Store(false)
	wantCounts("after a put that rolled back", 2)

	items, _ := readAll(t, s, "a", 10)
	mustAck(t, s, "a", seqs(items)...)
	wantCounts("after acking queue a", 1) // b still holds the first

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	editBolt(t, filepath.Join(dir, FileName), func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(bucketSegments)
		if err != nil {
			return err
		}
		return b.Put(u64(99), make([]byte, 16))
	})
	s = openStore(t, dir, Options{})
	wantCounts("after a restart", 1)
	if loc, ok := entryLocator(t, s, first.ID); !ok || segmentCounts(t, s)[loc.seg].count != 1 {
		t.Errorf("the first entry's segment is counted %+v", segmentCounts(t, s)[loc.seg])
	}
}
