package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// salvageOf writes file into a fresh data dir, salvages it into another
// and checks the old file was left as it was.
func salvageOf(t *testing.T, file []byte) (SalvageReport, *Store) {
	t.Helper()
	srcDir, dstDir := t.TempDir(), filepath.Join(t.TempDir(), "new")
	path := filepath.Join(srcDir, FileName)
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := Salvage(context.Background(), path, dstDir)
	if err != nil {
		t.Fatalf("salvage: %v", err)
	}
	if now, err := os.ReadFile(path); err != nil || sha256.Sum256(now) != sha256.Sum256(file) {
		t.Errorf("salvage changed the old file (%v)", err)
	}
	return rep, admOpen(t, dstDir, Options{})
}

// readSalvagedStore reads every entry of every list of s; the new store must need
// no quarantine.
func readSalvagedStore(t *testing.T, s *Store) (entries int) {
	t.Helper()
	ctx := context.Background()
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	for q := range st {
		items, quarantined, err := s.ReadBatch(ctx, q, 0, 1<<20, 1<<40)
		if err != nil || quarantined != 0 {
			t.Errorf("read %q of the salvaged store: %v, %d quarantined", q, err, quarantined)
		}
		entries += len(items)
		res, err := s.Count(ctx, DeadLetterSource(q), Filter{})
		if err != nil || res.Skipped != 0 {
			t.Errorf("dead letters of %q: %v, %d skipped", q, err, res.Skipped)
		}
		entries += res.Entries
	}
	res, err := s.Count(ctx, ArchiveSource(), Filter{})
	if err != nil || res.Skipped != 0 {
		t.Errorf("archive: %v, %d skipped", err, res.Skipped)
	}
	return entries + res.Entries
}

func TestSalvageCopiesAnIntactStore(t *testing.T) {
	orig := damageFixture(t)
	rep, s := salvageOf(t, orig)
	if rep.Damaged {
		t.Errorf("intact store reported damaged: %+v", rep)
	}
	copied := int64(0)
	for _, l := range rep.Lists {
		if l.Lost() != 0 || l.Copied == 0 {
			t.Errorf("%s: %+v", l.Source, l)
		}
		copied += l.Copied
	}
	if n := readSalvagedStore(t, s); int64(n) != copied {
		t.Errorf("salvaged store holds %d entries, the report says %d", n, copied)
	}
	// Counters and sizes are those of the old store; shared entries are
	// stored once.
	old := admOpenCopy(t, orig)
	want, _ := old.Summary()
	got, _ := s.Summary()
	for q, w := range want.Queues {
		if g := got.Queues[q]; g.Entries != w.Entries || g.Bytes != w.Bytes || g.DeadEntries != w.DeadEntries || g.DeadBytes != w.DeadBytes {
			t.Errorf("queue %q: salvaged %+v, old %+v", q, g, w)
		}
	}
	if got.Archive.Entries != want.Archive.Entries || got.Archive.Bytes != want.Archive.Bytes {
		t.Errorf("archive: salvaged %+v, old %+v", got.Archive, want.Archive)
	}
	_, wantTotal, _ := old.TotalBytes()
	if _, gotTotal, _ := s.TotalBytes(); gotTotal != wantTotal {
		t.Errorf("stored bytes: salvaged %d, old %d (shared entries copied twice?)", gotTotal, wantTotal)
	}
}

// admOpenCopy opens a copy of file as a store.
func admOpenCopy(t *testing.T, file []byte) *Store {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), file, 0o600); err != nil {
		t.Fatal(err)
	}
	return admOpen(t, dir, Options{})
}

// A damaged store, truncated or with pages gone: what can be read is
// copied, what cannot is reported per list, and the new store is sound.
func TestSalvageDamagedStore(t *testing.T) {
	orig := damageFixture(t)
	ps := os.Getpagesize()
	pages := pagesOf(t, orig)
	qa, qb := queueRoot(t, orig, "a"), queueRoot(t, orig, "b")
	for _, tc := range []struct {
		damage
		// wantSome: the damage leaves part of the tree readable. A
		// truncation or a branch page may cut off every path to the
		// records: then the report must say so.
		wantSome bool
	}{
		{truncateTo(len(orig) / 2), false},
		{zeroPage(pages["branch"][0], ps), false},
		{zeroPage(qb, ps), true}, // the other lists are intact
		{flipByte(qa*ps+10, "count of queue a's root page"), true},
		{flipByte(len(orig)/3+100, "anywhere"), false}, // it may fall on the root
	} {
		dc := tc.damage
		t.Run(dc.name, func(t *testing.T) {
			rep, s := salvageOf(t, dc.apply(bytes.Clone(orig)))
			copied, lost := int64(0), int64(0)
			for _, l := range rep.Lists {
				copied += l.Copied
				lost += max(l.Lost(), 0)
				t.Logf("%s: expected %d, copied %d, corrupt %d, unreadable places %d, lost %d",
					l.Source, l.Expected, l.Copied, l.Corrupt, l.Unreadable, l.Lost())
			}
			if copied == 0 && (tc.wantSome || !rep.Damaged) {
				t.Errorf("nothing salvaged: %+v", rep)
			}
			if n := readSalvagedStore(t, s); int64(n) != copied {
				t.Errorf("salvaged store holds %d entries, the report says %d", n, copied)
			}
			if lost > 0 && !rep.Damaged {
				t.Errorf("%d entries lost but the report says no damage", lost)
			}
		})
	}
}

func TestSalvageRefusesAnExistingTarget(t *testing.T) {
	orig := damageFixture(t)
	srcDir := t.TempDir()
	path := filepath.Join(srcDir, FileName)
	if err := os.WriteFile(path, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Salvage(context.Background(), path, srcDir); err == nil {
		t.Error("salvage into the damaged store's own directory succeeded")
	}
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, FileName), orig, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Salvage(context.Background(), path, other); err == nil {
		t.Error("salvage into a directory that holds a store succeeded")
	}
}

// queueRoot returns the root page of queue name in the store file.
func queueRoot(t *testing.T, file []byte, name string) int {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), file, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	root := 0
	_ = db.View(func(tx *bolt.Tx) error {
		root = int(tx.Bucket(bucketQueues).Bucket([]byte(name)).Root())
		return nil
	})
	if root == 0 {
		t.Fatalf("queue %q is inline: no page of its own", name)
	}
	return root
}
