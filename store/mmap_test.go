package store

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
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
