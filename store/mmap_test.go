package store

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	bolt "go.etcd.io/bbolt"
)

// TestDropMappedKeepsData drops the memory map's pages while entries are
// put and read, and checks that every entry still reads back intact: the
// drop may only cost page faults, never data.
func TestDropMappedKeepsData(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	body := func(i int) []byte { return bytes.Repeat([]byte(fmt.Sprintf("entry %05d;", i)), 2000) } // 24 KiB: several pages
	const n = 120
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		// Drops as often as possible, beside the writes and reads.
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				s.noteMapped(dropMappedEvery)
				time.Sleep(time.Millisecond)
			}
		}
	}()
	for i := range n {
		e := &Entry{Kind: KindIngest, ReceivedAt: time.Now(), Body: body(i)}
		if err := s.Put(ctx, e, []string{"a", "b"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{"a", "b"} {
		var after uint64
		got := 0
		for {
			items, quarantined, err := s.ReadBatch(ctx, q, after, 7, 1<<20)
			if err != nil || quarantined != 0 {
				t.Fatalf("read %s: %v, %d quarantined", q, err, quarantined)
			}
			if len(items) == 0 {
				break
			}
			for _, it := range items {
				if !bytes.Equal(it.Entry.Body, body(got)) {
					t.Fatalf("queue %s entry %d: body differs after drops", q, got)
				}
				got++
				after = it.Seq
			}
		}
		if got != n {
			t.Fatalf("queue %s: read %d entries, want %d", q, got, n)
		}
	}
	close(stop)
	wg.Wait()
}

// TestPrefetchesRecords: a batch that reads records from the file first
// asks the kernel to read each big record's pages ahead (a cold backlog
// drained at a third of its ingest rate without it), covering the batch and
// no more, and a batch served from the cache of recent entries asks
// nothing. A scan or count (export, replay) of a queue, a dead-letter list
// or the archive does the same for each of its pages. Only records kept in
// bbolt's pages (schema 2) are read through the memory map: the test turns
// the log's records into those; reads from the log are plain reads, which
// the kernel reads ahead by itself.
func TestPrefetchesRecords(t *testing.T) {
	type span struct{ addr, end uintptr }
	big := func(i int) string { return strings.Repeat(fmt.Sprintf("big %03d;", i), 2500) } // 20 KB: several pages
	mixed := []string{big(0), big(1), "small", big(2), big(3), big(4)}
	batch := func(max int) func(*testing.T, *Store) int {
		return func(t *testing.T, s *Store) int {
			items, _, err := s.ReadBatch(context.Background(), "a", 0, max, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != max {
				t.Fatalf("read %d entries, want %d", len(items), max)
			}
			return max
		}
	}
	scan := func(src Source) func(*testing.T, *Store) int {
		return func(t *testing.T, s *Store) int {
			res, err := s.Scan(context.Background(), src, Filter{}, func(Record) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			return res.Entries
		}
	}
	fromFile := Options{RecentBytes: -1}
	for _, tc := range []struct {
		name      string
		opts      Options
		bodies    []string
		setup     func(*testing.T, *Store, []Item) // after the entries are put and read
		read      func(*testing.T, *Store) int     // reads; returns how many entries it read
		wantCalls bool
	}{
		{"batch of big records from the file", fromFile, mixed, nil, batch(4), true},
		{"batch of small records only", fromFile, []string{"a", "b", "c"}, nil, batch(3), false},
		{"batch from the cache", Options{}, []string{big(0), big(1)}, nil, batch(2), false},
		{"scan", fromFile, mixed, nil, scan(QueueSource("a")), true},
		{"count", fromFile, mixed, nil, func(t *testing.T, s *Store) int {
			res, err := s.Count(context.Background(), QueueSource("a"), Filter{})
			if err != nil {
				t.Fatal(err)
			}
			return res.Entries
		}, true},
		{"scan of dead letters", fromFile, mixed, func(t *testing.T, s *Store, items []Item) {
			for _, it := range items {
				if err := s.MoveToDeadLetter(context.Background(), "a", it.Seq, DeadLetter{Reason: "test"}); err != nil {
					t.Fatal(err)
				}
			}
		}, scan(DeadLetterSource("a")), true},
		{"scan of the archive", Options{RecentBytes: -1, ArchiveRetention: time.Hour}, mixed, func(t *testing.T, s *Store, items []Item) {
			mustAck(t, s, "a", seqs(items)...)
		}, scan(ArchiveSource()), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, tc.opts)
			var put []uint64
			for _, b := range tc.bodies {
				put = append(put, mustPut(t, s, b, "a").ID)
			}
			if err := s.write(context.Background(), nil, func(tx *bolt.Tx) error {
				for _, id := range put {
					if _, ok := decodeLocator(tx.Bucket(bucketEntries).Get(u64(id))); ok {
						if err := unlogRecord(t, s.log, "", tx, id, true); err != nil {
							return err
						}
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			var all []Item
			if tc.wantCalls { // reading the cached entries would take them out
				s.willNeed = func(uintptr, int64) {}
				all, _ = readAll(t, s, "a", 100)
			}
			if tc.setup != nil {
				tc.setup(t, s, all)
			}
			var spans []span
			s.willNeed = func(addr uintptr, n int64) { spans = append(spans, span{addr, addr + uintptr(n)}) }
			n := tc.read(t, s)
			if !tc.wantCalls {
				if len(spans) > 0 {
					t.Fatalf("prefetched %d spans, want none", len(spans))
				}
				return
			}
			covered := func(p []byte) bool {
				lo := uintptr(unsafe.Pointer(&p[0]))
				for _, sp := range spans {
					if lo >= sp.addr && lo+uintptr(len(p)) <= sp.end {
						return true
					}
				}
				return false
			}
			err := s.view(func(tx *bolt.Tx) error {
				info := tx.DB().Info()
				for _, sp := range spans {
					if sp.addr%uintptr(info.PageSize) != 0 || sp.addr < info.Data || sp.end > info.Data+uintptr(tx.Size()) {
						t.Errorf("span [%#x, %#x) is not page-aligned inside the mapping [%#x, %#x)", sp.addr, sp.end, info.Data, info.Data+uintptr(tx.Size()))
					}
				}
				entries := tx.Bucket(bucketEntries)
				for i, it := range all {
					raw, _, _ := s.log.getRecord(entries, it.Entry.ID)
					if len(raw) <= 100 {
						continue // small records share leaves: nothing to prefetch
					}
					if want := i < n; covered(raw) != want {
						t.Errorf("record %d of %d read: prefetched %v, want %v; spans %v", i, n, !want, want, spans)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
