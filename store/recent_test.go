package store

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestRecentCache(t *testing.T) {
	entry := func(id uint64) *Entry {
		e := testEntry(fmt.Sprint("body ", id))
		e.ID = id
		return e
	}
	tests := []struct {
		name      string
		max       int64
		run       func(c *recent)
		wantLive  []uint64
		wantGone  []uint64
		wantBytes int64
	}{
		{
			name: "leaves once every queue read it",
			max:  1000,
			run: func(c *recent) {
				c.add(entry(1), 10, 2)
				c.take(1)
			},
			wantLive: []uint64{1}, wantBytes: 10,
		},
		{
			name: "gone after the last reader",
			max:  1000,
			run: func(c *recent) {
				c.add(entry(1), 10, 2)
				c.take(1)
				c.take(1)
			},
			wantGone: []uint64{1},
		},
		{
			name: "oldest out over the budget",
			max:  100,
			run: func(c *recent) {
				for id := uint64(1); id <= 5; id++ {
					c.add(entry(id), 25, 1)
				}
			},
			wantLive: []uint64{2, 3, 4, 5}, wantGone: []uint64{1}, wantBytes: 100,
		},
		{
			name: "an entry over a quarter of the budget is not kept",
			max:  100,
			run: func(c *recent) {
				c.add(entry(1), 26, 1)
			},
			wantGone: []uint64{1},
		},
		{
			name: "an entry nobody reads does not keep the IDs behind it",
			max:  1 << 40,
			run: func(c *recent) {
				c.add(entry(1), 1, 1) // never taken
				for id := uint64(2); id < 2+2*maxRecentIDs; id++ {
					c.add(entry(id), 1, 1)
					c.take(id)
				}
				if n := len(c.order) - c.head; n > maxRecentIDs {
					t.Errorf("order holds %d IDs, want at most %d", n, maxRecentIDs)
				}
				if len(c.order) > 2*maxRecentIDs+1024 {
					t.Errorf("order's slice is %d long: its front is never reclaimed", len(c.order))
				}
			},
			wantGone: []uint64{1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newRecent(tt.max)
			tt.run(c)
			for _, id := range tt.wantLive {
				if _, ok := c.byID[id]; !ok {
					t.Errorf("entry %d is gone, want it kept", id)
				}
			}
			for _, id := range tt.wantGone {
				if _, ok := c.byID[id]; ok {
					t.Errorf("entry %d is kept, want it gone", id)
				}
			}
			if c.bytes != tt.wantBytes {
				t.Errorf("bytes = %d, want %d", c.bytes, tt.wantBytes)
			}
		})
	}
}

func TestRecentCacheOff(t *testing.T) {
	var c *recent = newRecent(0)
	c.add(testEntry("x"), 1, 1) // must not panic
	if e := c.take(0); e != nil {
		t.Fatalf("a cache that is off returned %v", e)
	}
}

// TestReadBatchFromRecent: entries just put reach every queue's reader from
// memory, equal to what the file holds; and with the cache off, or after a
// reopen, the same reads come from the file.
func TestReadBatchFromRecent(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name       string
		opts       Options
		wantHits   uint64
		wantMisses uint64
	}{
		{"cache on", Options{}, 6, 0},
		{"cache off", Options{RecentBytes: -1}, 0, 0},
		{"cache too small for the entries", Options{RecentBytes: 64}, 0, 6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, t.TempDir(), tt.opts)
			var want []*Entry
			for i := range 3 {
				e := testEntry(fmt.Sprintf("profile %d", i))
				if err := s.Put(ctx, e, []string{"a", "b"}); err != nil {
					t.Fatal(err)
				}
				want = append(want, e)
			}
			for _, q := range []string{"a", "b"} {
				items, _, err := s.ReadBatch(ctx, q, 0, 10, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				checkItems(t, q, items, want)
			}
			if hits, misses := s.recent.stats(); hits != tt.wantHits || misses != tt.wantMisses {
				t.Errorf("cache hits %d, misses %d; want %d, %d", hits, misses, tt.wantHits, tt.wantMisses)
			}
			if s.recent != nil && len(s.recent.byID) != 0 {
				t.Errorf("%d entries still cached after every queue read them", len(s.recent.byID))
			}
			// The file holds the same entries.
			s = reopen(t, s)
			items, _, err := s.ReadBatch(ctx, "a", 0, 10, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			checkItems(t, "a after reopen", items, want)
		})
	}
}

func checkItems(t *testing.T, what string, items []Item, want []*Entry) {
	t.Helper()
	if len(items) != len(want) {
		t.Fatalf("%s: read %d entries, want %d", what, len(items), len(want))
	}
	for i, it := range items {
		w := want[i]
		if it.Entry.ID != w.ID || !bytes.Equal(it.Entry.Body, w.Body) || it.Entry.Query != w.Query ||
			it.Entry.ContentType != w.ContentType || !it.Entry.ReceivedAt.Equal(w.ReceivedAt) || it.Entry.Kind != w.Kind {
			t.Errorf("%s: entry %d = %+v, want %+v", what, i, it.Entry, w)
		}
	}
}

// TestRecentOnlyCommitted: a Put that fails leaves nothing in the cache, so
// a reader can never see an entry the file does not hold.
func TestRecentOnlyCommitted(t *testing.T) {
	ctx := context.Background()
	// The file cannot grow to hold the second entry: its transaction fails
	// in bbolt's commit, after the Put's own code ran.
	s := openStore(t, t.TempDir(), Options{MaxFileSize: 1 << 20, RecentBytes: 64 << 20})
	if err := s.Put(ctx, testEntry("fits"), []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, testEntry(string(make([]byte, 2<<20))), []string{"a"}); err == nil {
		t.Fatal("a Put bigger than the file may grow succeeded")
	}
	if n := len(s.recent.byID); n != 1 {
		t.Fatalf("%d entries cached, want only the committed one", n)
	}
}

// TestRecentNoOrphans: readers draining their queues while writers put
// leave nothing in the cache. An entry cached only after its commit could
// be read from the file first by a reader already running, and then wait
// in the cache for a reader that never comes.
func TestRecentNoOrphans(t *testing.T) {
	// A reader still waiting at the deadline fails the test instead of
	// hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := openStore(t, t.TempDir(), Options{RecentBytes: 1 << 30})
	const writers, each = 8, 50
	queues := []string{"a", "b"}
	var readers sync.WaitGroup
	for _, q := range queues {
		readers.Add(1)
		go func() {
			defer readers.Done()
			var cursor uint64
			for got := 0; got < writers*each; {
				items, _, err := s.ReadBatch(ctx, q, cursor, 4, 1<<20)
				if err != nil {
					t.Errorf("reader of %s after %d of %d entries: %v", q, got, writers*each, err)
					return
				}
				for _, it := range items {
					cursor = it.Seq
					got++
				}
				if len(items) == 0 {
					select {
					case <-s.Wake(q):
					case <-ctx.Done():
						t.Errorf("reader of %s: %d of %d entries when the deadline passed, and no wake", q, got, writers*each)
						return
					}
				}
			}
		}()
	}
	putFromWriters(t, s, writers, each, queues, func(w, i int) string { return fmt.Sprint(w, "/", i) }, nil)()
	readers.Wait()
	if t.Failed() {
		return
	}
	if n := len(s.recent.byID); n != 0 {
		t.Fatalf("%d entries left in the cache after every queue read every entry", n)
	}
}

func TestRecentSkipsHoldQueue(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	if err := s.Put(context.Background(), testEntry("kept on disk only"), nil); err != nil {
		t.Fatal(err)
	}
	if n := len(s.recent.byID); n != 0 {
		t.Fatalf("%d entries cached for the hold queue, which nothing reads", n)
	}
}
