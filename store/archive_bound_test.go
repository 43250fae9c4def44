package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// boundEntry is an 8 KiB entry received now (inside any retention).
func boundEntry(i int) *Entry {
	return &Entry{Kind: KindIngest, ReceivedAt: time.Now(), Query: fmt.Sprintf("name=app{i=%04d}", i),
		Body: bytes.Repeat([]byte{byte('a' + i%26)}, 8<<10)}
}

// putAck puts e on queues and acks it from each, as healthy forwarders do.
func putAck(ctx context.Context, s *Store, e *Entry, queues ...string) error {
	if err := s.Put(ctx, e, queues); err != nil {
		return err
	}
	for _, q := range queues {
		items, _, err := s.ReadBatch(ctx, q, 0, 1<<20, 1<<40)
		if err != nil {
			return err
		}
		seqs := make([]uint64, len(items))
		for i, it := range items {
			seqs[i] = it.Seq
		}
		if err := s.Ack(ctx, q, seqs...); err != nil {
			return err
		}
	}
	return nil
}

// The archive's size bound holds the moment an entry enters it, not only
// after the next sweep (which serve runs once a minute).
func TestArchiveBoundHoldsAtEntry(t *testing.T) {
	ctx := context.Background()
	size := int64(boundEntry(0).Size())
	bound := 10*size + size/2
	s := admOpen(t, t.TempDir(), Options{ArchiveRetention: time.Hour, ArchiveMaxBytes: bound})
	for i := range 60 {
		if err := putAck(ctx, s, boundEntry(i), "a", "b"); err != nil {
			t.Fatal(err)
		}
		sum, err := s.Summary()
		if err != nil {
			t.Fatal(err)
		}
		if sum.Archive.Bytes > bound {
			t.Fatalf("after %d entries the archive holds %d bytes, over its bound of %d", i+1, sum.Archive.Bytes, bound)
		}
	}
	sum, _ := s.Summary()
	if sum.Archive.Entries != 10 {
		t.Errorf("archive holds %d entries, want the newest 10", sum.Archive.Entries)
	}
}

// The reproductions of issue 17: a store whose queues stay empty must never
// refuse a put because of what it archived. The file's cap stands for a
// small disk (a tmpfs that is full answers ENOSPC, which takes the same path).
func TestArchiveNeverBlocksIngest(t *testing.T) {
	const fileCap = 2 << 20
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"archive bound below the budget", Options{ArchiveRetention: time.Hour, ArchiveMaxBytes: 256 << 10,
			MaxFileSize: fileCap, Limits: Limits{MaxTotalBytes: 512 << 10}}},
		{"retention alone within a budget", Options{ArchiveRetention: 24 * time.Hour,
			MaxFileSize: fileCap, Limits: Limits{MaxTotalBytes: 512 << 10}}},
		{"retention alone, file cap only", Options{ArchiveRetention: 24 * time.Hour, MaxFileSize: fileCap}},
		{"retention alone, drop-oldest", Options{ArchiveRetention: 24 * time.Hour,
			MaxFileSize: fileCap, Limits: Limits{MaxTotalBytes: 512 << 10, DropOldest: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := admOpen(t, t.TempDir(), tc.opts)
			// 600 entries of 8 KiB: more than twice what the file may hold.
			for i := range 600 {
				if err := putAck(ctx, s, boundEntry(i), "a", "b"); err != nil {
					sum, _ := s.Summary()
					t.Fatalf("entry %d refused with empty queues (archive %d entries, %d bytes; file %d bytes): %v",
						i, sum.Archive.Entries, sum.Archive.Bytes, sum.FileBytes, err)
				}
			}
			if err := s.Health(); err != nil {
				t.Errorf("Health: %v", err)
			}
			sum, err := s.Summary()
			if err != nil {
				t.Fatal(err)
			}
			if sum.Archive.Entries == 0 {
				t.Errorf("archive is empty: it should keep what fits")
			}
			if b := tc.opts.Limits.MaxTotalBytes; b > 0 && sum.Archive.Bytes > b {
				t.Errorf("archive holds %d bytes, over the store's budget of %d", sum.Archive.Bytes, b)
			}
			if fi, err := os.Stat(s.Path()); err != nil || fi.Size() > fileCap {
				t.Errorf("file is %v bytes (%v), over its cap of %d", fi.Size(), err, fileCap)
			}
		})
	}
}

// A store that refuses puts because its file is at its cap still commits
// deletes (they use the headroom kept for them), says so in Health, and
// takes puts again once the deletes made room.
func TestDeletesCommitAtFileCap(t *testing.T) {
	ctx := context.Background()
	s := admOpen(t, t.TempDir(), Options{MaxFileSize: 1 << 20})
	var refused error
	n := 0
	for ; n < 1000; n++ {
		if refused = s.Put(ctx, boundEntry(n), []string{"q"}); refused != nil {
			break
		}
	}
	if !isSpaceErr(refused) {
		t.Fatalf("after %d puts: %v, want the file's cap reached", n, refused)
	}
	if err := s.Health(); err == nil || !strings.Contains(err.Error(), "refuses writes") {
		t.Errorf("Health of a store that refuses puts: %v", err)
	}
	items, _, err := s.ReadBatch(ctx, "q", 0, 1<<20, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != n {
		t.Fatalf("read %d entries, put %d", len(items), n)
	}
	for _, it := range items {
		if err := s.Ack(ctx, "q", it.Seq); err != nil {
			t.Fatalf("ack of entry %d on a full file: %v", it.Seq, err)
		}
	}
	if err := s.Put(ctx, boundEntry(0), []string{"q"}); err != nil {
		t.Fatalf("put after the acks made room: %v", err)
	}
	if err := s.Health(); err != nil {
		t.Errorf("Health after a put committed: %v", err)
	}
}

// A file that an earlier run filled to its cap with archived entries: the
// sweep at the next start must commit, and puts must go through.
func TestFullFileOfArchiveRecovers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir, Options{ArchiveRetention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		if err := putAck(ctx, s, boundEntry(i), "a"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	// The file and its record log are at their cap: no page is free, bbolt
	// may not grow the file, and the log may not grow either. Room comes
	// only from the sweep, and from copying what it leaves in the old
	// segment forward (logcompact.go) so that the segment can go.
	_, sizes, err := listSegments(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	capBytes := fi.Size()
	for _, n := range sizes {
		capBytes += n
	}
	s = admOpen(t, dir, Options{ArchiveRetention: time.Hour, ArchiveMaxBytes: 64 << 10, MaxFileSize: int(capBytes)})
	if _, err := s.SweepArchive(ctx, time.Now()); err != nil {
		t.Fatalf("sweep on a full file: %v", err)
	}
	for i := range 50 {
		if err := putAck(ctx, s, boundEntry(i), "a"); err != nil {
			t.Fatalf("put %d after the sweep: %v", i, err)
		}
	}
}

func TestPurgeArchive(t *testing.T) {
	ctx := context.Background()
	s := admOpen(t, t.TempDir(), Options{ArchiveRetention: 24 * time.Hour})
	admFill(t, s, 10, "q")
	admAckAll(t, s, "q")
	res, err := s.PurgeArchive(ctx, admBase.Add(4*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries != 4 {
		t.Errorf("purged %d entries received before the 4th, want 4", res.Entries)
	}
	res, err = s.PurgeArchive(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries != 6 {
		t.Errorf("purged %d of the 6 left", res.Entries)
	}
	sum, _ := s.Summary()
	if sum.Archive.Entries != 0 || sum.Archive.Bytes != 0 {
		t.Errorf("archive after purge: %+v", sum.Archive)
	}
	n := 0
	_ = s.view(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketEntries).Stats().KeyN
		return nil
	})
	if n != 0 {
		t.Errorf("%d records left after purging the whole archive", n)
	}
}

// With dead letters alone filling the budget, drop-oldest cannot make room:
// the put is refused at once, saying why, and nothing queued is dropped.
func TestDropOldestRefusesUpFrontWhenDeadLettersFill(t *testing.T) {
	ctx := context.Background()
	size := int64(admEntry(0).Size())
	drops := 0
	s := admOpen(t, t.TempDir(), Options{Limits: Limits{MaxTotalBytes: 10 * size, DropOldest: true,
		OnDrop: func(string, int) { drops++ }}})
	admFill(t, s, 7, "q")
	admDeadLetter(t, s, "q", 0, 1, 2, 3, 4, 5, 6)
	for i := 7; i < 10; i++ {
		if err := s.Put(ctx, admEntry(i), []string{"q"}); err != nil {
			t.Fatal(err)
		}
	}
	big := admEntry(10)
	big.Body = bytes.Repeat([]byte("x"), int(4*size))
	err := s.Put(ctx, big, []string{"q"})
	if !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "dead letters") {
		t.Fatalf("put that no drop can make room for: %v", err)
	}
	if drops != 0 {
		t.Errorf("%d entries dropped for a put that was refused", drops)
	}
	st, _ := s.Stats()
	if st["q"].Entries != 3 {
		t.Errorf("queue holds %d entries, want the 3 queued", st["q"].Entries)
	}
}

// One put refused inside a group commit gets its refusal; the others in
// the batch commit with it, in one transaction, not one each.
func TestRefusedPutCommitsTheRestOfItsBatch(t *testing.T) {
	ctx := context.Background()
	size := int64(boundEntry(0).Size())
	s := admOpen(t, t.TempDir(), Options{Limits: Limits{MaxTotalBytes: 32 * size}})
	// Hold the commit loop in a write until all 64 puts are queued
	// behind it, so that they share the next transaction.
	release := make(chan struct{})
	held := make(chan struct{})
	go func() {
		_ = s.write(ctx, nil, func(*bolt.Tx) error {
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	before, _ := s.CommitCounts()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Put(ctx, boundEntry(i), []string{"q"})
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(s.ops) < 64 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(errs)
	ok, full := 0, 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrFull):
			full++
		default:
			t.Errorf("put: %v", err)
		}
	}
	if ok != 32 || full != 32 {
		t.Errorf("%d puts committed and %d refused, want 32 and 32", ok, full)
	}
	after, _ := s.CommitCounts()
	// The held write's own commit, then one for the 64 puts.
	if n := after - before; n > 3 {
		t.Errorf("%d commits for 64 puts in one batch", n)
	}
	t.Logf("%d commits for the held write and 64 puts, 32 refused", after-before)
}
