package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	berrors "go.etcd.io/bbolt/errors"
)

// admBase is the receive time of the first test entry; entries are a
// minute apart, so time filters select exact index ranges.
var admBase = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// admEntry is test entry i: an /ingest entry for app "app<i%3>" received
// i minutes after admBase.
func admEntry(i int) *Entry {
	return &Entry{
		Kind:        KindIngest,
		ReceivedAt:  admBase.Add(time.Duration(i) * time.Minute),
		Query:       "name=" + url.QueryEscape(fmt.Sprintf("app%d.cpu{i=%d}", i%3, i)) + "&from=1&until=2",
		ContentType: "text/plain",
		Tenant:      fmt.Sprintf("t%d", i%2),
		Body:        []byte(fmt.Sprintf("main;f%d 1\n", i)),
	}
}

func admOpen(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// admFill puts entries 0..n-1 into queues.
func admFill(t *testing.T, s *Store, n int, queues ...string) []*Entry {
	t.Helper()
	out := make([]*Entry, n)
	for i := range n {
		out[i] = admEntry(i)
		if err := s.Put(context.Background(), out[i], queues); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// admScan returns the body of every entry of src that f selects.
func admScan(t *testing.T, s *Store, src Source, f Filter) []string {
	t.Helper()
	var got []string
	res, err := s.Scan(context.Background(), src, f, func(r Record) error {
		if r.Entry == nil || r.Size != r.Entry.Size() {
			t.Errorf("record %+v: size %d does not match its entry", r, r.Size)
		}
		got = append(got, string(r.Entry.Body))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries != len(got) {
		t.Errorf("scan reports %d entries, fn saw %d", res.Entries, len(got))
	}
	cnt, err := s.Count(context.Background(), src, f)
	if err != nil {
		t.Fatal(err)
	}
	if cnt.Entries != res.Entries || cnt.Bytes != res.Bytes {
		t.Errorf("Count = %+v, Scan = %+v", cnt, res)
	}
	return got
}

func admBodies(idx ...int) []string {
	out := make([]string, 0, len(idx))
	for _, i := range idx {
		out = append(out, string(admEntry(i).Body))
	}
	return out
}

func admRange(from, to int, keep func(int) bool) []int {
	var out []int
	for i := from; i < to; i++ {
		if keep == nil || keep(i) {
			out = append(out, i)
		}
	}
	return out
}

func TestScanSelectsExactlyWhatTheFilterSays(t *testing.T) {
	s := admOpen(t, t.TempDir(), Options{})
	const n = 300 // more than two pages
	admFill(t, s, n, "q")
	app1 := func(e *Entry) bool { return strings.Contains(e.Query, "app1.cpu") }
	tests := []struct {
		name string
		f    Filter
		want []int
	}{
		{"all", Filter{}, admRange(0, n, nil)},
		{"since", Filter{Since: admBase.Add(250 * time.Minute)}, admRange(250, n, nil)},
		{"until is exclusive", Filter{Until: admBase.Add(10 * time.Minute)}, admRange(0, 10, nil)},
		{"window", Filter{Since: admBase.Add(100 * time.Minute), Until: admBase.Add(200 * time.Minute)}, admRange(100, 200, nil)},
		{"match", Filter{Match: app1}, admRange(0, n, func(i int) bool { return i%3 == 1 })},
		{"match and window", Filter{Since: admBase.Add(5 * time.Minute), Until: admBase.Add(20 * time.Minute), Match: app1},
			admRange(5, 20, func(i int) bool { return i%3 == 1 })},
		{"nothing", Filter{Since: admBase.Add(time.Hour * 24)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := admScan(t, s, QueueSource("q"), tt.f)
			if want := admBodies(tt.want...); !slices.Equal(got, want) {
				t.Errorf("got %d entries %.3q..., want %d", len(got), got, len(want))
			}
		})
	}
	if got := admScan(t, s, QueueSource("missing"), Filter{}); len(got) != 0 {
		t.Errorf("missing queue: got %d entries", len(got))
	}
}

func TestScanStopsOnCallbackErrorAndContext(t *testing.T) {
	s := admOpen(t, t.TempDir(), Options{})
	admFill(t, s, 10, "q")
	stop := errors.New("stop")
	n := 0
	_, err := s.Scan(context.Background(), QueueSource("q"), Filter{}, func(Record) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Errorf("err %v after %d calls, want stop after 3", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Scan(ctx, QueueSource("q"), Filter{}, func(Record) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled scan: err %v", err)
	}
}

// admDeadLetter moves the queue positions whose entry index is in idx to
// the dead-letter list.
func admDeadLetter(t *testing.T, s *Store, queue string, idx ...int) {
	t.Helper()
	items, _, err := s.ReadBatch(context.Background(), queue, 0, 1<<20, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, b := range admBodies(idx...) {
		want[b] = true
	}
	for _, it := range items {
		if want[string(it.Entry.Body)] {
			if err := s.MoveToDeadLetter(context.Background(), queue, it.Seq, DeadLetter{Reason: "400 bad", Status: 400, Attempts: 1}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestRequeueDeadLettersMovesSelectedBackAndWakes(t *testing.T) {
	s := admOpen(t, t.TempDir(), Options{})
	admFill(t, s, 20, "q")
	admDeadLetter(t, s, "q", 2, 4, 6, 8, 10)
	dead := admScan(t, s, DeadLetterSource("q"), Filter{})
	if !slices.Equal(dead, admBodies(2, 4, 6, 8, 10)) {
		t.Fatalf("dead letters %q", dead)
	}
	// Drain the wake signal of the puts, then requeue.
	select {
	case <-s.Wake("q"):
	default:
	}
	res, err := s.RequeueDeadLetters(context.Background(), "q", Filter{Until: admBase.Add(7 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries != 3 {
		t.Errorf("requeued %d, want 3", res.Entries)
	}
	select {
	case <-s.Wake("q"):
	default:
		t.Error("requeue did not wake the queue")
	}
	if got := admScan(t, s, DeadLetterSource("q"), Filter{}); !slices.Equal(got, admBodies(8, 10)) {
		t.Errorf("dead letters left %q, want 8 and 10", got)
	}
	// Requeued entries go to the end of the queue, oldest first.
	deadIdx := func(i int) bool { return i%2 == 0 && i >= 2 && i <= 10 }
	want := admBodies(append(admRange(0, 20, func(i int) bool { return !deadIdx(i) }), 2, 4, 6)...)
	if got := admScan(t, s, QueueSource("q"), Filter{}); !slices.Equal(got, want) {
		t.Errorf("queue %q\nwant %q", got, want)
	}
	st, _ := s.Stats()
	if st["q"].Entries != 18 || st["q"].DeadEntries != 2 {
		t.Errorf("stats %+v, want 18 queued, 2 dead", st["q"])
	}
}

func TestPurgeDeadLettersReleasesEntries(t *testing.T) {
	for _, archive := range []bool{false, true} {
		t.Run(fmt.Sprintf("archive=%v", archive), func(t *testing.T) {
			opts := Options{}
			if archive {
				opts.ArchiveRetention = 24 * 365 * time.Hour
			}
			s := admOpen(t, t.TempDir(), opts)
			admFill(t, s, 6, "a", "b")
			admDeadLetter(t, s, "a", 1, 2, 3)
			admDeadLetter(t, s, "b", 1)
			res, err := s.PurgeDeadLetters(context.Background(), "a", Filter{Match: func(e *Entry) bool { return !bytes.Contains(e.Body, []byte("f3")) }})
			if err != nil {
				t.Fatal(err)
			}
			if res.Entries != 2 {
				t.Errorf("purged %d, want 2", res.Entries)
			}
			if got := admScan(t, s, DeadLetterSource("a"), Filter{}); !slices.Equal(got, admBodies(3)) {
				t.Errorf("dead letters of a: %q", got)
			}
			// Entry 1 is still a dead letter of b, entry 2 still queued
			// for b: both must still be readable there.
			if got := admScan(t, s, DeadLetterSource("b"), Filter{}); !slices.Equal(got, admBodies(1)) {
				t.Errorf("dead letters of b: %q", got)
			}
			if got := admScan(t, s, QueueSource("b"), Filter{}); !slices.Equal(got, admBodies(0, 2, 3, 4, 5)) {
				t.Errorf("queue b: %q", got)
			}
			// Purging b's dead letter drops entry 1's last reference: it
			// must be gone, and not archived.
			if _, err := s.PurgeDeadLetters(context.Background(), "b", Filter{}); err != nil {
				t.Fatal(err)
			}
			n, _, err := s.TotalBytes()
			if err != nil {
				t.Fatal(err)
			}
			if n != 5 {
				t.Errorf("%d entries stored, want 5", n)
			}
			if got := admScan(t, s, ArchiveSource(), Filter{}); len(got) != 0 {
				t.Errorf("purged entries were archived: %q", got)
			}
		})
	}
}

func TestMoveQueueMovesEntriesAndDeadLettersInSteps(t *testing.T) {
	s := admOpen(t, t.TempDir(), Options{})
	n := moveBatch*2 + 17 // three steps
	batch := make([]*Entry, 0, 500)
	for i := range n {
		batch = append(batch, admEntry(i))
		if len(batch) == cap(batch) || i == n-1 {
			if err := s.Import(context.Background(), "old", batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	admDeadLetter(t, s, "old", 0, 1)
	admFill(t, s, 2, "new") // the target may already hold entries
	res, err := s.MoveQueue(context.Background(), "old", "new")
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries != n-2 || res.DeadLetters != 2 {
		t.Errorf("moved %+v, want %d entries and 2 dead letters", res, n-2)
	}
	got := admScan(t, s, QueueSource("new"), Filter{})
	want := append(admBodies(0, 1), admBodies(admRange(2, n, nil)...)...)
	if !slices.Equal(got, want) {
		t.Errorf("queue new has %d entries, want %d in order", len(got), len(want))
	}
	if got := admScan(t, s, DeadLetterSource("new"), Filter{}); !slices.Equal(got, admBodies(0, 1)) {
		t.Errorf("dead letters of new: %q", got)
	}
	st, _ := s.Stats()
	if _, ok := st["old"]; ok {
		t.Errorf("queue old still listed: %+v", st["old"])
	}
	if st["new"].Entries != int64(n) || st["new"].DeadEntries != 2 {
		t.Errorf("stats of new %+v", st["new"])
	}
	if _, err := s.MoveQueue(context.Background(), "old", "new"); !errors.Is(err, ErrNotFound) {
		t.Errorf("moving a missing queue: %v, want ErrNotFound", err)
	}
	if _, err := s.MoveQueue(context.Background(), "new", "new"); err == nil {
		t.Error("moving a queue onto itself succeeded")
	}
}

func TestImportKeepsEntriesByteForByte(t *testing.T) {
	dir := t.TempDir()
	s := admOpen(t, dir, Options{})
	in := []*Entry{admEntry(0), admEntry(1), {Kind: KindPush, ReceivedAt: admBase, ContentEncoding: "gzip", Body: []byte{0, 1, 2, 0xff}}}
	if err := s.Import(context.Background(), "q", in); err != nil {
		t.Fatal(err)
	}
	var got []*Entry
	if _, err := s.Scan(context.Background(), QueueSource("q"), Filter{}, func(r Record) error {
		got = append(got, r.Entry)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in) {
		t.Fatalf("got %d entries", len(got))
	}
	for i := range in {
		a, b := encodeRecord(nil, in[i]), encodeRecord(nil, got[i])
		if !bytes.Equal(a, b) || got[i].ID != in[i].ID {
			t.Errorf("entry %d: got %+v, want %+v", i, got[i], in[i])
		}
	}
}

func TestOpenReadOnly(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenReadOnly(filepath.Join(dir, "nope"), Options{}); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "--data-dir") {
		t.Errorf("missing store: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "nope")); !os.IsNotExist(err) {
		t.Error("OpenReadOnly created the data dir")
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	admFill(t, s, 3, "q")
	if _, err := OpenReadOnly(dir, Options{LockTimeout: 50 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Errorf("read-only open of a store in use: %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r1, err := OpenReadOnly(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	// A second reader shares the lock.
	r2, err := OpenReadOnly(dir, Options{LockTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("second reader: %v", err)
	}
	defer r2.Close()
	sum, err := r2.Summary()
	if err != nil {
		t.Fatal(err)
	}
	if sum.Queues["q"].Entries != 3 || sum.FileBytes <= 0 {
		t.Errorf("summary %+v", sum)
	}
	if got := admScan(t, r1, QueueSource("q"), Filter{}); len(got) != 3 {
		t.Errorf("read %d entries", len(got))
	}
	if err := r1.Put(context.Background(), admEntry(9), []string{"q"}); !errors.Is(err, berrors.ErrDatabaseReadOnly) {
		t.Errorf("put through a read-only store: %v", err)
	}
	// A writer waits for the readers.
	if _, err := Open(dir, Options{LockTimeout: 50 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Errorf("open for writing while read: %v, want ErrLocked", err)
	}
}

func TestCompactShrinksAndKeepsData(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Records under half a page: plain values in bbolt's pages, which are
	// what compact rewrites (bigger ones are in the record log).
	big := bytes.Repeat([]byte("x"), 1500)
	var batch []*Entry
	for i := range 200 {
		e := admEntry(i)
		e.Body = append(big[:len(big):len(big)], e.Body...)
		batch = append(batch, e)
	}
	if err := s.Import(context.Background(), "q", batch); err != nil {
		t.Fatal(err)
	}
	items, _, err := s.ReadBatch(context.Background(), "q", 0, 195, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	seqs := make([]uint64, len(items))
	for i, it := range items {
		seqs[i] = it.Seq
	}
	if err := s.Ack(context.Background(), "q", seqs...); err != nil {
		t.Fatal(err)
	}
	if _, err := Compact(dir, 50*time.Millisecond); !errors.Is(err, ErrLocked) {
		t.Errorf("compact of an open store: %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := Compact(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.After >= res.Before/4 {
		t.Errorf("compact %d -> %d bytes: expected it to shrink to well under a quarter", res.Before, res.After)
	}
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil || fi.Size() != res.After {
		t.Errorf("file size %v (%v), reported %d", fi.Size(), err, res.After)
	}
	left, _ := filepath.Glob(filepath.Join(dir, FileName+".compact-*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	s = admOpen(t, dir, Options{})
	got := admScan(t, s, QueueSource("q"), Filter{})
	if len(got) != 5 {
		t.Fatalf("after compact: %d entries, want 5", len(got))
	}
	// Sequences survive compaction: new entries get new ids and positions.
	e := admEntry(1000)
	if err := s.Put(context.Background(), e, []string{"q"}); err != nil {
		t.Fatal(err)
	}
	if e.ID != 201 {
		t.Errorf("new entry id %d, want 201", e.ID)
	}
	if _, err := Compact(filepath.Join(dir, "nope"), 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("compact of a missing store: %v", err)
	}
}
