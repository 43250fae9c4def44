package store

import (
	"context"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// admAckAll acks every position of queue.
func admAckAll(t *testing.T, s *Store, queue string) {
	t.Helper()
	items, _, err := s.ReadBatch(context.Background(), queue, 0, 1<<20, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	seqs := make([]uint64, len(items))
	for i, it := range items {
		seqs[i] = it.Seq
	}
	if err := s.Ack(context.Background(), queue, seqs...); err != nil {
		t.Fatal(err)
	}
}

func TestArchiveKeepsDeliveredEntriesOnceAndSweepsOld(t *testing.T) {
	s := admOpen(t, t.TempDir(), Options{ArchiveRetention: time.Hour})
	// Entries 0..9 are i minutes after admBase; "now" is admBase+65m, so
	// with a 1h retention entries 0..4 are too old.
	now := admBase.Add(65 * time.Minute)
	admFill(t, s, 10, "a", "b")
	admAckAll(t, s, "a")
	if got := admScan(t, s, ArchiveSource(), Filter{}); len(got) != 0 {
		t.Fatalf("archived before the last queue let go: %q", got)
	}
	admAckAll(t, s, "b")
	got := admScan(t, s, ArchiveSource(), Filter{})
	if !slices.Equal(got, admBodies(admRange(0, 10, nil)...)) {
		t.Fatalf("archive %q, want every entry once", got)
	}
	sum, err := s.Summary()
	if err != nil {
		t.Fatal(err)
	}
	if sum.Archive.Entries != 10 || sum.Archive.Bytes != int64(10*admEntry(0).Size()) ||
		!sum.Archive.Oldest.Equal(admBase) || !sum.Archive.Newest.Equal(admBase.Add(9*time.Minute)) {
		t.Errorf("archive stats %+v", sum.Archive)
	}
	// Archive filters by time, starting and stopping on the index.
	if got := admScan(t, s, ArchiveSource(), Filter{Since: admBase.Add(3 * time.Minute), Until: admBase.Add(6 * time.Minute)}); !slices.Equal(got, admBodies(3, 4, 5)) {
		t.Errorf("archive window: %q", got)
	}

	res, err := s.SweepArchive(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries != 5 {
		t.Errorf("swept %d, want 5", res.Entries)
	}
	if got := admScan(t, s, ArchiveSource(), Filter{}); !slices.Equal(got, admBodies(5, 6, 7, 8, 9)) {
		t.Errorf("archive after sweep %q", got)
	}
	n, _, err := s.TotalBytes()
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("store total counts %d entries; archived entries have their own budget", n)
	}
	var entries int
	_ = s.db.View(func(tx *bolt.Tx) error {
		entries = tx.Bucket(bucketEntries).Stats().KeyN
		return nil
	})
	if entries != 5 {
		t.Errorf("%d entries left in the entries bucket, want the 5 archived ones", entries)
	}
}

// The size bound holds as entries enter the archive: the oldest go in
// the same commit, and a sweep finds nothing left to do.
func TestArchiveSweepBySize(t *testing.T) {
	size := int64(admEntry(0).Size())
	s := admOpen(t, t.TempDir(), Options{ArchiveMaxBytes: 3*size + size/2})
	admFill(t, s, 8, "q")
	admAckAll(t, s, "q")
	res, err := s.SweepArchive(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries != 0 {
		t.Errorf("swept %+v; the bound should have held as entries entered", res)
	}
	if got := admScan(t, s, ArchiveSource(), Filter{}); !slices.Equal(got, admBodies(5, 6, 7)) {
		t.Errorf("archive %q", got)
	}
}

func TestArchiveOffDeletesOnAck(t *testing.T) {
	dir := t.TempDir()
	s := admOpen(t, dir, Options{})
	admFill(t, s, 3, "q")
	admAckAll(t, s, "q")
	if got := admScan(t, s, ArchiveSource(), Filter{}); len(got) != 0 {
		t.Errorf("archive without an archive setting: %q", got)
	}
	if res, err := s.SweepArchive(context.Background(), time.Now()); err != nil || res.Entries != 0 {
		t.Errorf("sweep without archive: %+v %v", res, err)
	}
}

func TestArchiveSweepIsBatched(t *testing.T) {
	s := admOpen(t, t.TempDir(), Options{ArchiveRetention: time.Minute})
	n := sweepBatch + 10
	batch := make([]*Entry, 0, n)
	for i := range n {
		batch = append(batch, admEntry(i))
	}
	if err := s.Import(context.Background(), "q", batch); err != nil {
		t.Fatal(err)
	}
	admAckAll(t, s, "q")
	res, err := s.SweepArchive(context.Background(), admBase.Add(time.Duration(n+10)*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries != n {
		t.Errorf("swept %d of %d", res.Entries, n)
	}
	sum, _ := s.Summary()
	if sum.Archive.Entries != 0 || sum.Archive.Bytes != 0 || !sum.Archive.Oldest.IsZero() {
		t.Errorf("archive after sweeping everything: %+v", sum.Archive)
	}
}
