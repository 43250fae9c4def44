package store

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// entryRoot is the page of the bucket that holds entry id alone, or 0 when
// the record is a plain value (or gone).
func entryRoot(t *testing.T, s *Store, id uint64) uint64 {
	t.Helper()
	var root uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketEntries).Bucket(u64(id)); b != nil {
			root = uint64(b.Root())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// bigBody is a body well over half a page: its record gets a bucket.
func bigBody(name string) string { return name + strings.Repeat(".", 12<<10) }

// TestBigRecordsAreNeverRewritten: a big record is written once. Puts after
// it and deletes beside it leave its pages as they are; as plain values
// side by side, bbolt rewrote them with every neighbour's change.
func TestBigRecordsAreNeverRewritten(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})

	small := mustPut(t, s, "small", "a")
	if root := entryRoot(t, s, small.ID); root != 0 {
		t.Errorf("a %d-byte record sits in a bucket of its own (page %d): small records share leaves", small.Size(), root)
	}
	first := mustPut(t, s, bigBody("first"), "a", "b")
	root := entryRoot(t, s, first.ID)
	if root == 0 {
		t.Fatalf("a %d-byte record is a plain value, want a bucket of its own", first.Size())
	}
	// One commit each: every Put lands next to the records before it.
	var later []*Entry
	for i := range 4 {
		later = append(later, mustPut(t, s, bigBody(fmt.Sprintf("later-%d", i)), "a", "b"))
	}
	if got := entryRoot(t, s, first.ID); got != root {
		t.Fatalf("later puts moved the first record from page %d to %d: it was rewritten", root, got)
	}
	// Free the records on both sides of the first one's neighbours.
	for _, q := range []string{"a", "b"} {
		items, _ := readAll(t, s, q, 100)
		for _, it := range items {
			if it.Entry.ID == later[0].ID || it.Entry.ID == later[2].ID {
				mustAck(t, s, q, it.Seq)
			}
		}
	}
	if got := entryRoot(t, s, later[1].ID); got == 0 {
		t.Fatal("the entry between the two freed ones is gone")
	}
	if got := entryRoot(t, s, first.ID); got != root {
		t.Fatalf("freeing other entries moved the first record from page %d to %d", root, got)
	}
	for _, id := range []uint64{later[0].ID, later[2].ID} {
		if got := entryRoot(t, s, id); got != 0 {
			t.Errorf("entry %d acked by every queue still has its bucket (page %d)", id, got)
		}
	}
	items, _ := readAll(t, s, "b", 100)
	wantBodies(t, "b", items, bigBody("first"), bigBody("later-1"), bigBody("later-3"))

	// Acking everything leaves nothing behind: no bucket, no counters.
	for _, q := range []string{"a", "b"} {
		items, _ := readAll(t, s, q, 100)
		mustAck(t, s, q, seqs(items)...)
	}
	if n := len(bucketContents(t, s, bucketEntries)); n != 0 {
		t.Errorf("%d entries left after every queue acked them", n)
	}
	if n, b, err := s.TotalBytes(); err != nil || n != 0 || b != 0 {
		t.Errorf("TotalBytes = %d entries, %d bytes, %v; want 0, 0", n, b, err)
	}
}

// TestSchema1RecordsStillRead: a data dir written before records had
// buckets of their own keeps working, and is marked so that an older
// pyrorelay refuses it once it holds records of the new shape.
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
		entries := tx.Bucket(bucketEntries)
		for _, id := range []uint64{old1.ID, old2.ID} {
			rec := append([]byte(nil), getRecord(entries, id)...)
			if err := entries.DeleteBucket(u64(id)); err != nil {
				return err
			}
			if err := entries.Put(u64(id), rec); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchema, u64(1))
	})

	s = openStore(t, dir, Options{})
	var schema uint64
	_ = s.db.View(func(tx *bolt.Tx) error {
		schema = binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keySchema))
		return nil
	})
	if schema != schemaVersion {
		t.Errorf("schema after opening a schema 1 file: %d, want %d", schema, schemaVersion)
	}
	added := mustPut(t, s, bigBody("new"), "a")
	if entryRoot(t, s, added.ID) == 0 {
		t.Error("a record added to an upgraded file is a plain value, want a bucket of its own")
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
