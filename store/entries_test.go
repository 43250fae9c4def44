package store

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// entryLocator is where entry id's record is in the log; ok is false when
// the record is a plain value or a bucket of its own (or gone).
func entryLocator(t *testing.T, s *Store, id uint64) (loc locator, ok bool) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		loc, ok = decodeLocator(tx.Bucket(bucketEntries).Get(u64(id)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return loc, ok
}

// bigBody is a body well over half a page: its record goes to the log.
func bigBody(name string) string { return name + strings.Repeat(".", 12<<10) }

// TestBigRecordsGoToTheLog: a big record is written once, to the record
// log; bbolt holds its locator. Puts after it and deletes beside it leave
// it where it is, small records stay plain values, and acking everything
// leaves no entry, no counter and no segment behind but the active one.
func TestBigRecordsGoToTheLog(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})

	small := mustPut(t, s, "small", "a")
	if _, ok := entryLocator(t, s, small.ID); ok {
		t.Errorf("a %d-byte record is in the log: small records share leaves", small.Size())
	}
	first := mustPut(t, s, bigBody("first"), "a", "b")
	loc, ok := entryLocator(t, s, first.ID)
	if !ok {
		t.Fatalf("a %d-byte record is not in the log", first.Size())
	}
	if int(loc.size) != first.Size() || loc.at != first.ReceivedAt.UnixNano() {
		t.Errorf("locator %+v, want size %d and receive time %d", loc, first.Size(), first.ReceivedAt.UnixNano())
	}
	var later []*Entry
	for i := range 4 {
		later = append(later, mustPut(t, s, bigBody(fmt.Sprintf("later-%d", i)), "a", "b"))
	}
	for _, q := range []string{"a", "b"} {
		items, _ := readAll(t, s, q, 100)
		for _, it := range items {
			if it.Entry.ID == later[0].ID || it.Entry.ID == later[2].ID {
				mustAck(t, s, q, it.Seq)
			}
		}
	}
	if got, _ := entryLocator(t, s, first.ID); got != loc {
		t.Fatalf("the first record moved from %+v to %+v", loc, got)
	}
	items, _ := readAll(t, s, "b", 100)
	wantBodies(t, "b", items, bigBody("first"), bigBody("later-1"), bigBody("later-3"))

	for _, q := range []string{"a", "b"} {
		items, _ := readAll(t, s, q, 100)
		mustAck(t, s, q, seqs(items)...)
	}
	if n := len(bucketContents(t, s, bucketEntries)); n != 0 {
		t.Errorf("%d entries left after every queue acked them", n)
	}
	if n := len(segmentCounts(t, s)); n != 0 {
		t.Errorf("%d segment counters left after every queue acked every entry", n)
	}
	if n, b, err := s.TotalBytes(); err != nil || n != 0 || b != 0 {
		t.Errorf("TotalBytes = %d entries, %d bytes, %v; want 0, 0", n, b, err)
	}
}

// TestSchema1RecordsStillRead: a data dir written before records had
// buckets of their own keeps working, and is marked so that an older
// pyrorelay refuses it once it holds records of the new shape, not before.
func TestSchema1RecordsStillRead(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	old1 := mustPut(t, s, bigBody("old-1"), "a")
	old2 := mustPut(t, s, bigBody("old-2"), "a")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Rewrite the file as schema 1 kept it: every record a plain value.
	path := filepath.Join(dir, FileName)
	editBolt(t, path, func(tx *bolt.Tx) error {
		for _, id := range []uint64{old1.ID, old2.ID} {
			if err := unlogRecord(t, nil, dir, tx, id, false); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchema, u64(1))
	})

	s = openStore(t, dir, Options{})
	if got := schemaOf(t, s); got != 1 {
		t.Errorf("schema after opening a schema 1 file: %d, want 1 until a record goes to the log", got)
	}
	added := mustPut(t, s, bigBody("new"), "a")
	if _, ok := entryLocator(t, s, added.ID); !ok {
		t.Error("a record added to an old file is not in the log")
	}
	if got := schemaOf(t, s); got != schemaVersion {
		t.Errorf("schema after the first record in the log: %d, want %d", got, schemaVersion)
	}
	items, quarantined := readAll(t, s, "a", 100)
	if quarantined != 0 {
		t.Fatalf("%d schema 1 records quarantined", quarantined)
	}
	wantBodies(t, "a", items, bigBody("old-1"), bigBody("old-2"), bigBody("new"))
	mustAck(t, s, "a", seqs(items)...)
	if n := len(bucketContents(t, s, bucketEntries)); n != 0 {
		t.Errorf("%d entries left after acking old and new records", n)
	}
	if st := mustStats(t, s)["a"]; st.Entries != 0 || st.Bytes != 0 {
		t.Errorf("queue a after acking everything: %+v", st)
	}
}
