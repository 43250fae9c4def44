package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pyrorelay/pyrorelay/internal/poll"
)

// removedStillOpen lists the segment files of data dir dir that this
// process holds open after they were removed: their blocks stay on the
// disk until they are closed.
func removedStillOpen(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	var out []string
	for _, de := range des {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", de.Name()))
		if err != nil {
			continue
		}
		if strings.HasPrefix(target, dir+string(filepath.Separator)+segmentPrefix) && strings.HasSuffix(target, " (deleted)") {
			out = append(out, target)
		}
	}
	return out
}

// TestRemovedSegmentsReleased: a segment removed once its last entry was
// acked is closed as soon as no reader can need it, so that its blocks
// leave the disk then; a read transaction that began before the ack keeps
// it open, reads its record from it, and lets it go when it ends. The
// closes run beside the commit loop, so the test waits for them.
func TestRemovedSegmentsReleased(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{segmentSize: 64 << 10, RecentBytes: -1})
	// Free pages for the commits below: while a reader is open, bbolt
	// could not map a grown file.
	for i := range 1000 {
		mustPut(t, s, fmt.Sprint("small", i, strings.Repeat(".", 1500)), "warm")
	}
	items, _ := readAll(t, s, "warm", 1000)
	mustAck(t, s, "warm", seqs(items)...)

	first := mustPut(t, s, bigBody("first"), "a")
	for i := range 19 {
		mustPut(t, s, bigBody(fmt.Sprint("old", i)), "a")
	}
	items, _ = readAll(t, s, "a", 100)
	started, proceed, read := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		read <- s.view(func(tx *bolt.Tx) error {
			entries := tx.Bucket(bucketEntries)
			if _, ok := decodeLocator(entries.Get(u64(first.ID))); !ok {
				return errors.New("the first entry is not in the log")
			}
			close(started)
			<-proceed
			raw, fresh, err := s.log.getRecord(entries, first.ID)
			if err != nil {
				return err
			}
			e, err := decodeRecord(ownRecord(raw, fresh))
			if err != nil {
				return err
			}
			if string(e.Body) != bigBody("first") {
				return fmt.Errorf("read %.20q, want the first record", e.Body)
			}
			return nil
		})
	}()
	select {
	case <-started:
	case err := <-read:
		t.Fatal(err)
	}
	mustAck(t, s, "a", seqs(items)...)
	mustPut(t, s, bigBody("later"), "b") // a commit, after which removed files are closed
	if open := removedStillOpen(t, dir); len(open) == 0 {
		t.Error("the segments removed under an older reader were closed at once")
	}
	close(proceed)
	if err := <-read; err != nil {
		t.Fatalf("the older reader: %v", err)
	}
	mustPut(t, s, bigBody("last"), "b")
	allClosed := func() (bool, string) {
		open := removedStillOpen(t, dir)
		return len(open) == 0, fmt.Sprint(open)
	}
	poll.For(t, 10*time.Second, "removed segments closed once no reader could need them", allClosed)

	// With no reader open, the commit that empties a segment closes it.
	for i := range 20 {
		mustPut(t, s, bigBody(fmt.Sprint("more", i)), "b")
	}
	more, _ := readAll(t, s, "b", 100)
	if err := s.Ack(context.Background(), "b", seqs(more)...); err != nil {
		t.Fatal(err)
	}
	// Well within the 30 s a removed segment stayed open before.
	poll.For(t, 10*time.Second, "removed segments closed after the commit that emptied them", allClosed)
}
