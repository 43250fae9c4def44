package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// flipInSegment flips the byte at offset i of the record loc points at,
// in its segment file in dir, and returns the record as it is then.
func flipInSegment(t testing.TB, dir string, loc locator, i int) []byte {
	t.Helper()
	path := segmentPath(t, dir, loc.seg)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec := make([]byte, loc.size)
	if _, err := f.ReadAt(rec, int64(loc.off)+frameHeaderLen); err != nil {
		t.Fatal(err)
	}
	rec[i] ^= 0x01
	if _, err := f.WriteAt(rec[i:i+1], int64(loc.off)+frameHeaderLen+int64(i)); err != nil {
		t.Fatal(err)
	}
	return rec
}

// unlogRecord moves entry id's record out of the log into the form an
// older version wrote: a bucket of its own (schema 2) with bucket set, a
// plain value (schema 1) without. Its frame stays in the segment, dead.
// log is the open store's, whose transaction (run by its commit loop) tx
// is; nil for a closed store in dir.
func unlogRecord(t testing.TB, log *segmentLog, dir string, tx *bolt.Tx, id uint64, bucket bool) error {
	t.Helper()
	entries := tx.Bucket(bucketEntries)
	loc, ok := decodeLocator(entries.Get(u64(id)))
	if !ok {
		return fmt.Errorf("entry %d is not in the log", id)
	}
	l := log
	if l == nil {
		l = newSegmentLog(dir, true, 0)
		defer l.close()
		l.id = logID(tx)
	}
	rec, err := l.read(loc, id)
	if err != nil {
		return err
	}
	if err := entries.Delete(u64(id)); err != nil {
		return err
	}
	l.addSegmentStats(loc.seg, -1, -loc.frameBytes())
	if !bucket {
		return entries.Put(u64(id), rec)
	}
	b, err := entries.CreateBucket(u64(id))
	if err != nil {
		return err
	}
	return b.Put(recordKey, rec)
}

// schemaOf is the schema version s's file is marked with.
func schemaOf(t testing.TB, s *Store) uint64 {
	t.Helper()
	var v uint64
	if err := s.db.View(func(tx *bolt.Tx) error {
		v = binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keySchema))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// toSchema2 moves every record of open store s out of the log into a
// bucket of its own and marks the file schema 2, as the previous version
// left its files: for the tests of bbolt's own pages.
func toSchema2(t testing.TB, s *Store) {
	t.Helper()
	if err := s.write(context.Background(), nil, func(tx *bolt.Tx) error {
		var ids []uint64
		_ = tx.Bucket(bucketEntries).ForEach(func(k, v []byte) error {
			if _, ok := decodeLocator(v); ok {
				ids = append(ids, binary.BigEndian.Uint64(k))
			}
			return nil
		})
		for _, id := range ids {
			if err := unlogRecord(t, s.log, "", tx, id, true); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchema, u64(2))
	}); err != nil {
		t.Fatal(err)
	}
}

// copySegments copies the segment files of data dir from into data dir to.
func copySegments(t testing.TB, from, to string) {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(from, segmentPrefix+"*"+segmentSuffix))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, filepath.Base(p)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// segmentPath is the path of segment n in data dir dir, whatever its log.
func segmentPath(t testing.TB, dir string, n uint64) string {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(dir, fmt.Sprintf("%s*-%08d%s", segmentPrefix, n, segmentSuffix)))
	if len(paths) != 1 {
		t.Fatalf("segment %d in %s: %v", n, dir, paths)
	}
	return paths[0]
}

// pauseLoop holds s's commit loop inside a transaction of its own until
// the returned func is called: what it does between writes (copying
// records forward, removing segments) is then done, and nothing changes
// what the caller reads meanwhile, which must not write.
func pauseLoop(t testing.TB, s *Store) (resume func()) {
	t.Helper()
	held, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	var once sync.Once
	go func() {
		done <- s.write(context.Background(), nil, func(*bolt.Tx) error {
			once.Do(func() { close(held) })
			<-release
			return nil
		})
	}()
	<-held
	return func() {
		close(release)
		if err := <-done; err != nil {
			t.Errorf("held write: %v", err)
		}
	}
}

// segmentCounts is what s counts live in each segment, as its commit loop
// last committed it.
func segmentCounts(t testing.TB, s *Store) map[uint64]segmentCount {
	t.Helper()
	var counts map[uint64]segmentCount
	if err := s.write(context.Background(), nil, func(*bolt.Tx) error {
		counts = maps.Clone(s.log.counts)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return counts
}
