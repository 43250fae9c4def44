package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pyrorelay/pyrorelay/internal/poll"
)

// waitFor polls cond until it holds or a generous deadline passes; tests
// never use a fixed sleep as synchronization.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !poll.Until(poll.Deadline, 2*time.Millisecond, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

func openStore(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func reopen(t testing.TB, s *Store) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return openStore(t, filepath.Dir(s.Path()), Options{})
}

func testEntry(body string) *Entry {
	return &Entry{
		Kind:        KindIngest,
		ReceivedAt:  time.Unix(1_700_000_000, 0),
		Query:       "name=test.cpu",
		ContentType: "application/octet-stream",
		Body:        []byte(body),
	}
}

func mustPut(t testing.TB, s *Store, body string, queues ...string) *Entry {
	t.Helper()
	e := testEntry(body)
	if err := s.Put(context.Background(), e, queues); err != nil {
		t.Fatalf("put %q: %v", body, err)
	}
	return e
}

// putFromWriters starts writers goroutines; writer w puts
// testEntry(name(w, i)) into queues for each i < each, and tells stored of
// each entry committed. A failed Put is reported with t.Error and ends its
// writer. The returned wait blocks until every writer has finished.
func putFromWriters(t testing.TB, s *Store, writers, each int, queues []string, name func(w, i int) string, stored func(w int, e *Entry)) (wait func()) {
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				e := testEntry(name(w, i))
				if err := s.Put(context.Background(), e, queues); err != nil {
					t.Errorf("put %q: %v", e.Body, err)
					return
				}
				if stored != nil {
					stored(w, e)
				}
			}
		}()
	}
	return wg.Wait
}

// readAll reads a whole queue through ReadBatch, batch entries at a time.
func readAll(t testing.TB, s *Store, queue string, batch int) (items []Item, quarantined int) {
	t.Helper()
	var after uint64
	for {
		got, q, err := s.ReadBatch(context.Background(), queue, after, batch, 1<<30)
		if err != nil {
			t.Fatalf("read %q after %d: %v", queue, after, err)
		}
		quarantined += q
		if len(got) == 0 {
			return items, quarantined
		}
		if got[0].Seq <= after {
			// Without this check such a bug would loop here forever.
			t.Fatalf("read %q after %d returned position %d", queue, after, got[0].Seq)
		}
		items = append(items, got...)
		after = got[len(got)-1].Seq
	}
}

func bodies(items []Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = string(it.Entry.Body)
	}
	return out
}

func seqs(items []Item) []uint64 {
	out := make([]uint64, len(items))
	for i, it := range items {
		out[i] = it.Seq
	}
	return out
}

func wantBodies(t testing.TB, what string, items []Item, want ...string) {
	t.Helper()
	if got := bodies(items); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("%s: bodies %q, want %q", what, got, want)
	}
}

func mustAck(t testing.TB, s *Store, queue string, seqs ...uint64) {
	t.Helper()
	if err := s.Ack(context.Background(), queue, seqs...); err != nil {
		t.Fatalf("ack %q %v: %v", queue, seqs, err)
	}
}

func mustStats(t testing.TB, s *Store) map[string]QueueStats {
	t.Helper()
	st, err := s.Stats()
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	return st
}

// bucketContents copies a top-level bucket's keys (as ids) and values; the
// tests use it to see entries and references the API does not expose.
func bucketContents(t testing.TB, s *Store, name []byte) map[uint64][]byte {
	t.Helper()
	out := make(map[uint64][]byte)
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(name)
		return b.ForEach(func(k, v []byte) error {
			if bytes.Equal(name, bucketEntries) {
				// A record in the log, or in a bucket of its own.
				raw, _, err := s.log.getRecord(b, binary.BigEndian.Uint64(k))
				if err != nil {
					return err
				}
				v = raw
			}
			out[binary.BigEndian.Uint64(k)] = append([]byte(nil), v...)
			return nil
		})
	})
	if err != nil {
		t.Fatalf("read bucket %s: %v", name, err)
	}
	return out
}

func TestPutReadAckOrder(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	ctx := context.Background()
	var want []string
	var lastID uint64
	for i := range 10 {
		body := fmt.Sprintf("body-%02d", i)
		e := mustPut(t, s, body, "a")
		if e.ID <= lastID {
			t.Fatalf("put %d: id %d not above %d", i, e.ID, lastID)
		}
		lastID = e.ID
		want = append(want, body)
	}
	items, q := readAll(t, s, "a", 3)
	if q != 0 {
		t.Fatalf("quarantined %d", q)
	}
	wantBodies(t, "all", items, want...)
	for i := 1; i < len(items); i++ {
		if items[i].Seq <= items[i-1].Seq || items[i].Entry.ID <= items[i-1].Entry.ID {
			t.Fatalf("item %d not after item %d: %+v %+v", i, i-1, items[i], items[i-1])
		}
	}
	sameEntry(t, items[0].Entry, testEntry("body-00"))

	size := items[0].Entry.Size() // every body has the same length
	tests := []struct {
		name     string
		after    uint64
		max      int
		maxBytes int
		want     []string
	}{
		{"after cursor", items[4].Seq, 3, 1 << 30, want[5:8]},
		{"after last", items[9].Seq, 3, 1 << 30, nil},
		{"max 1", 0, 1, 1 << 30, want[:1]},
		{"max 0", 0, 0, 1 << 30, nil},
		{"maxBytes 0 still returns one", 0, 10, 0, want[:1]},
		{"maxBytes 1 still returns one", items[2].Seq, 10, 1, want[3:4]},
		{"maxBytes exactly two", 0, 10, 2 * size, want[:2]},
		{"maxBytes just over two", 0, 10, 2*size + 1, want[:3]},
		{"max before maxBytes", 0, 2, 5 * size, want[:2]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, q, err := s.ReadBatch(ctx, "a", tt.after, tt.max, tt.maxBytes)
			if err != nil || q != 0 {
				t.Fatalf("read: %v, quarantined %d", err, q)
			}
			wantBodies(t, tt.name, got, tt.want...)
		})
	}

	if got, q, err := s.ReadBatch(ctx, "no-such-queue", 0, 10, 1<<30); err != nil || q != 0 || len(got) != 0 {
		t.Fatalf("unknown queue: %v, %d, %v", got, q, err)
	}

	mustAck(t, s, "a", seqs(items[:5])...)
	items, _ = readAll(t, s, "a", 4)
	wantBodies(t, "after ack", items, want[5:]...)
	if st := mustStats(t, s)["a"]; st.Entries != 5 || st.Bytes != int64(5*size) {
		t.Fatalf("stats after ack: %+v, want 5 entries of %d bytes", st, size)
	}
}

// An entry in several queues goes only when the last of them acks it, and
// a reopen in between changes nothing.
func TestSharedEntryDeletedOnLastAck(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	queues := []string{"a", "b", "c"}
	var want []string
	for i := range 3 {
		body := fmt.Sprintf("shared-%d", i)
		mustPut(t, s, body, queues...)
		want = append(want, body)
	}
	size := int64(testEntry(want[0]).Size())
	for i, q := range queues {
		items, _ := readAll(t, s, q, 10)
		wantBodies(t, "before ack of "+q, items, want...)
		mustAck(t, s, q, seqs(items)...)
		s = reopen(t, s)

		st := mustStats(t, s)
		for j, other := range queues {
			items, _ := readAll(t, s, other, 10)
			if j <= i {
				wantBodies(t, fmt.Sprintf("%s after %s acked", other, q), items)
				if st[other].Entries != 0 || st[other].Bytes != 0 {
					t.Fatalf("%s acked all, stats %+v", other, st[other])
				}
			} else {
				wantBodies(t, fmt.Sprintf("%s after %s acked", other, q), items, want...)
				if st[other].Entries != 3 || st[other].Bytes != 3*size {
					t.Fatalf("%s holds all, stats %+v", other, st[other])
				}
			}
		}
		stored := len(bucketContents(t, s, bucketEntries))
		if last := i == len(queues)-1; last && stored != 0 {
			t.Fatalf("all queues acked, %d entries still stored", stored)
		} else if !last && stored != 3 {
			t.Fatalf("%d queues still hold the entries, %d stored", len(queues)-1-i, stored)
		}
	}
	if refs := bucketContents(t, s, bucketRefs); len(refs) != 0 {
		t.Fatalf("references left: %v", refs)
	}
}

func TestAckIdempotent(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	ctx := context.Background()
	mustPut(t, s, "one", "a", "b")
	mustPut(t, s, "two", "a", "b")
	items, _ := readAll(t, s, "a", 10)
	first := items[0].Seq

	// Acking a position again, twice in one call, an unknown position or
	// an unknown queue must not take a reference the other queue holds.
	mustAck(t, s, "a", first)
	mustAck(t, s, "a", first, first)
	mustAck(t, s, "a", 9999)
	mustAck(t, s, "nope", first)
	if err := s.Ack(ctx, "a"); err != nil {
		t.Fatalf("empty ack: %v", err)
	}
	s = reopen(t, s)
	a, _ := readAll(t, s, "a", 10)
	wantBodies(t, "a", a, "two")
	b, _ := readAll(t, s, "b", 10)
	wantBodies(t, "b", b, "one", "two")
	if st := mustStats(t, s); st["a"].Entries != 1 || st["b"].Entries != 2 {
		t.Fatalf("stats %+v", st)
	}
	if n := len(bucketContents(t, s, bucketEntries)); n != 2 {
		t.Fatalf("%d entries stored, want 2", n)
	}
	mustAck(t, s, "b", b[0].Seq)
	mustAck(t, s, "b", b[0].Seq)
	if n := len(bucketContents(t, s, bucketEntries)); n != 1 {
		t.Fatalf("%d entries stored, want 1", n)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	ctx := context.Background()
	var lastID uint64
	for i := range 5 {
		lastID = mustPut(t, s, fmt.Sprintf("e%d", i), "a", "b").ID
	}
	a, _ := readAll(t, s, "a", 10)
	mustAck(t, s, "a", a[0].Seq, a[1].Seq)
	b, _ := readAll(t, s, "b", 10)
	if err := s.MoveToDeadLetter(ctx, "b", b[4].Seq, DeadLetter{Reason: "400 Bad Request", Status: 400, Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	before := mustStats(t, s)

	s = reopen(t, s)
	a, _ = readAll(t, s, "a", 2)
	wantBodies(t, "a", a, "e2", "e3", "e4")
	b, _ = readAll(t, s, "b", 2)
	wantBodies(t, "b", b, "e0", "e1", "e2", "e3")
	after := mustStats(t, s)
	for _, q := range []string{"a", "b"} {
		// Oldest and Newest come back in local time; compare as instants.
		x, y := before[q], after[q]
		if x.Entries != y.Entries || x.Bytes != y.Bytes || x.DeadEntries != y.DeadEntries ||
			x.DeadBytes != y.DeadBytes || !x.Oldest.Equal(y.Oldest) || !x.Newest.Equal(y.Newest) {
			t.Fatalf("stats of %s changed over reopen: %+v -> %+v", q, x, y)
		}
	}

	// IDs and positions keep increasing, even once everything is acked.
	mustAck(t, s, "a", seqs(a)...)
	mustAck(t, s, "b", seqs(b)...)
	s = reopen(t, s)
	e := mustPut(t, s, "later", "a")
	if e.ID <= lastID {
		t.Fatalf("id after reopen %d, not above %d", e.ID, lastID)
	}
	a2, _ := readAll(t, s, "a", 10)
	if len(a2) != 1 || a2[0].Seq <= a[len(a)-1].Seq {
		t.Fatalf("position after reopen %v, not after %d", seqs(a2), a[len(a)-1].Seq)
	}
}

func TestPutWithoutQueuesGoesToHold(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	mustPut(t, s, "nil")
	if err := s.Put(context.Background(), testEntry("empty"), []string{}); err != nil {
		t.Fatal(err)
	}
	items, _ := readAll(t, s, HoldQueue, 10)
	wantBodies(t, HoldQueue, items, "nil", "empty")
	if st := mustStats(t, s); len(st) != 1 || st[HoldQueue].Entries != 2 {
		t.Fatalf("queues %v", st)
	}
}

func TestWakeAfterCommit(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	wake := s.Wake("a")
	other := s.Wake("b")
	mustPut(t, s, "x", "a")
	select {
	case <-wake:
	case <-time.After(30 * time.Second):
		t.Fatal("no wake after a committed put")
	}
	select {
	case <-other:
		t.Fatal("queue b woken by a put to a")
	default:
	}
}

// Many writers at once: every put lands exactly once in every queue, and
// the commit loop shares transactions between them.
func TestConcurrentPuts(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	const writers, each = 64, 8
	ids := make([][]uint64, writers)
	putFromWriters(t, s, writers, each, []string{"a", "b"},
		func(w, i int) string { return fmt.Sprintf("w%02d-%d", w, i) },
		func(w int, e *Entry) { ids[w] = append(ids[w], e.ID) })()
	if t.Failed() {
		t.FailNow()
	}
	idOf := make(map[string]uint64)
	for w := range writers {
		for i, id := range ids[w] {
			idOf[fmt.Sprintf("w%02d-%d", w, i)] = id
		}
	}
	for _, q := range []string{"a", "b"} {
		items, _ := readAll(t, s, q, 50)
		if len(items) != writers*each {
			t.Fatalf("queue %s holds %d entries, want %d", q, len(items), writers*each)
		}
		seen := make(map[string]bool)
		for i, it := range items {
			body := string(it.Entry.Body)
			if seen[body] {
				t.Fatalf("queue %s: %q twice", q, body)
			}
			seen[body] = true
			if id, ok := idOf[body]; !ok || id != it.Entry.ID {
				t.Fatalf("queue %s: %q has id %d, Put reported %d", q, body, it.Entry.ID, id)
			}
			if i > 0 && it.Entry.ID <= items[i-1].Entry.ID {
				t.Fatalf("queue %s not in id order at %d", q, i)
			}
		}
	}
	commits, writes := s.CommitCounts()
	if writes != writers*each {
		t.Fatalf("writes = %d, want %d", writes, writers*each)
	}
	if commits == 0 || commits > writes {
		t.Fatalf("commits = %d for %d writes", commits, writes)
	}
	t.Logf("%d puts in %d commits (%.1f writes per commit)", writes, commits, float64(writes)/float64(commits))
}

// CommitCounts is read while writers commit: without group commit every
// transaction carries exactly one write, so any reading where the two
// counts differ caught a commit counted without its write.
func TestCommitCountsConsistent(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{NoGroupCommit: true})
	const writers, each = 4, 150
	done := make(chan struct{})
	wait := putFromWriters(t, s, writers, each, []string{"q"}, func(w, i int) string { return fmt.Sprintf("w%d-%d", w, i) }, nil)
	go func() { wait(); close(done) }()
	readings := 0
	for {
		select {
		case <-done:
			if c, w := s.CommitCounts(); c != writers*each || w != c {
				t.Fatalf("after the writes: %d commits, %d writes; want %d of each", c, w, writers*each)
			}
			t.Logf("%d readings, all consistent", readings)
			return
		default:
		}
		if c, w := s.CommitCounts(); c != w {
			t.Fatalf("reading %d: %d commits but %d writes without group commit", readings, c, w)
		}
		readings++
	}
}

// Close while writers are busy: every Put that returned nil survives, and
// every other Put says ErrClosed and is not stored. A Put that never
// returns is a failure too.
func TestCloseWithPutsInFlight(t *testing.T) {
	for round := range 5 {
		dir := t.TempDir()
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		var (
			mu   sync.Mutex
			done = make(map[uint64]string)
			n    atomic.Int64
			wg   sync.WaitGroup
		)
		errs := make(chan error, 32)
		for w := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					e := testEntry(fmt.Sprintf("r%d-w%d-%d", round, w, i))
					if err := s.Put(context.Background(), e, []string{"a", "b"}); err != nil {
						errs <- err
						return
					}
					mu.Lock()
					done[e.ID] = string(e.Body)
					mu.Unlock()
					n.Add(1)
				}
			}()
		}
		waitFor(t, "some puts to commit", func() bool { return n.Load() >= 20 })
		if err := s.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		finished := make(chan struct{})
		go func() { wg.Wait(); close(finished) }()
		select {
		case <-finished:
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: a Put did not return after Close", round)
		}
		close(errs)
		for err := range errs {
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("put during close: %v, want ErrClosed", err)
			}
		}

		s2 := openStore(t, dir, Options{})
		for _, q := range []string{"a", "b"} {
			items, _ := readAll(t, s2, q, 100)
			got := make(map[uint64]string, len(items))
			for _, it := range items {
				got[it.Entry.ID] = string(it.Entry.Body)
			}
			for id, body := range done {
				if got[id] != body {
					t.Fatalf("round %d queue %s: acknowledged put %d %q reads back as %q", round, q, id, body, got[id])
				}
			}
			if len(got) != len(done) {
				t.Fatalf("round %d queue %s: %d entries stored, %d puts succeeded", round, q, len(got), len(done))
			}
		}
		_ = s2.Close()
	}
}

func TestWritesAfterClose(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mustPut(t, s, "x", "a")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	for name, err := range map[string]error{
		"put":         s.Put(ctx, testEntry("y"), []string{"a"}),
		"ack":         s.Ack(ctx, "a", 1),
		"dead-letter": s.MoveToDeadLetter(ctx, "a", 1, DeadLetter{Reason: "r"}),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after close: %v, want ErrClosed", name, err)
		}
	}
	if _, _, err := s.ReadBatch(ctx, "a", 0, 10, 1<<20); err == nil {
		t.Error("read after close succeeded")
	}
}

// bbolt's flock is per open file description, so a second Open in the same
// process contends like another process would.
func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, Options{LockTimeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		_ = s.Close()
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), FileName) {
		t.Errorf("error %q does not name the file", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, dir, Options{LockTimeout: 100 * time.Millisecond})
	_ = s2.Close()
}

// A file bbolt cannot read is refused with a way out, and left exactly as
// it was: the data in it may still be recoverable.
func TestOpenGarbageFile(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"random 64 KiB", random(64 << 10)},
		{"random 100 bytes", random(100)},
		{"zeros 16 KiB", make([]byte, 16<<10)},
		{"text", []byte("this is not a database\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			for attempt := range 2 { // the second proves the lock was let go
				s, err := Open(dir, Options{LockTimeout: 100 * time.Millisecond})
				if err == nil {
					_ = s.Close()
					t.Fatal("garbage file opened")
				}
				if errors.Is(err, ErrLocked) {
					t.Fatalf("attempt %d: %v: a failed open kept the lock", attempt, err)
				}
				for _, hint := range []string{"bbolt check", "mv " + path, "left as it is"} {
					if !strings.Contains(err.Error(), hint) {
						t.Errorf("error %q does not mention %q", err, hint)
					}
				}
				got, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, tt.data) {
					t.Fatalf("file changed: %d bytes, was %d", len(got), len(tt.data))
				}
			}
		})
	}
}

func TestOpenNewerSchemaRefused(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	editBolt(t, filepath.Join(dir, FileName), func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, u64(schemaVersion+1))
	})
	for _, ro := range []bool{false, true} {
		s, err := Open(dir, Options{ReadOnly: ro})
		if err == nil {
			_ = s.Close()
		}
		want := fmt.Sprintf("schema version %d is newer", schemaVersion+1)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("open of a newer schema, read-only %v: %v, want %q", ro, err, want)
		}
	}
}

// editBolt changes a closed store's file directly, as damage would.
func editBolt(t testing.TB, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// One damaged record costs that record only: both queues skip it, it is
// kept in quarantine, and the counters still drain to zero.
func TestCorruptRecordQuarantined(t *testing.T) {
	// Small records are plain values in the entries bucket, big ones sit
	// in buckets of their own (entries.go): both are checked and moved.
	for _, pad := range []int{0, 8 << 10} {
		t.Run(fmt.Sprintf("body=%dB", len("entry-0")+pad), func(t *testing.T) { testCorruptRecordQuarantined(t, pad) })
	}
}

func testCorruptRecordQuarantined(t *testing.T, pad int) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	body := func(i int) string { return fmt.Sprintf("entry-%d", i) + strings.Repeat(".", pad) }
	var ids []uint64
	for i := range 5 {
		ids = append(ids, mustPut(t, s, body(i), "a", "b").ID)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var damaged []byte
	editBolt(t, filepath.Join(dir, FileName), func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEntries)
		if loc, ok := decodeLocator(b.Get(u64(ids[2]))); ok {
			// A record in the log: flip the byte in its segment.
			damaged = flipInSegment(t, dir, loc, int(loc.size)-1)
			return nil
		}
		v := append([]byte(nil), b.Get(u64(ids[2]))...)
		if len(v) == 0 {
			return errors.New("entry not found")
		}
		v[len(v)-1] ^= 0x01 // last byte of the body
		damaged = v
		return b.Put(u64(ids[2]), v)
	})

	s = openStore(t, dir, Options{})
	ctx := context.Background()
	want := []string{body(0), body(1), body(3), body(4)}
	for _, q := range []string{"a", "b"} {
		items, quarantined, err := s.ReadBatch(ctx, q, 0, 100, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		wantBodies(t, q, items, want...)
		if quarantined != 1 {
			t.Fatalf("queue %s: quarantined = %d, want 1", q, quarantined)
		}
		if sum, err := s.Summary(); err != nil || sum.Quarantined != 1 {
			t.Fatalf("after reading %s: Summary().Quarantined = %d, %v; want 1", q, sum.Quarantined, err)
		}
		// The bad position is gone: a second read reports nothing new.
		again, quarantined, err := s.ReadBatch(ctx, q, 0, 100, 1<<30)
		if err != nil || quarantined != 0 || len(again) != 4 {
			t.Fatalf("second read of %s: %d items, quarantined %d, %v", q, len(again), quarantined, err)
		}
		if st := mustStats(t, s)[q]; st.Entries != 4 {
			t.Fatalf("queue %s stats after quarantine: %+v", q, st)
		}
		mustAck(t, s, q, seqs(items)...)
	}
	st := mustStats(t, s)
	for _, q := range []string{"a", "b"} {
		if st[q].Entries != 0 || st[q].Bytes != 0 {
			t.Fatalf("queue %s after acking the good entries: %+v", q, st[q])
		}
	}
	if n := len(bucketContents(t, s, bucketEntries)); n != 0 {
		t.Fatalf("%d entries left", n)
	}
	if q := bucketContents(t, s, bucketQuarantine); len(q) != 1 || !bytes.Equal(q[ids[2]], damaged) {
		t.Fatalf("quarantine does not hold the damaged record as it was: %d records", len(q))
	}
	s = reopen(t, s)
	if sum, err := s.Summary(); err != nil || sum.Quarantined != 1 {
		t.Fatalf("Summary().Quarantined after reopen = %d, %v", sum.Quarantined, err)
	}
}

func TestDeadLetter(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	ctx := context.Background()
	for i := range 3 {
		mustPut(t, s, fmt.Sprintf("d%d", i), "a", "b")
	}
	a, _ := readAll(t, s, "a", 10)
	victim := a[1]
	size := int64(victim.Entry.Size())
	at := time.Unix(1_700_000_100, 0)
	dl := DeadLetter{At: at, Reason: "400 Bad Request: invalid profile", Status: 400, Attempts: 3}
	if err := s.MoveToDeadLetter(ctx, "a", victim.Seq, dl); err != nil {
		t.Fatal(err)
	}
	// Again, or for a position that is not there: nothing happens.
	if err := s.MoveToDeadLetter(ctx, "a", victim.Seq, dl); err != nil {
		t.Fatal(err)
	}
	if err := s.MoveToDeadLetter(ctx, "nope", 1, dl); err != nil {
		t.Fatal(err)
	}
	st := mustStats(t, s)["a"]
	if st.Entries != 2 || st.Bytes != 2*size || st.DeadEntries != 1 || st.DeadBytes != size {
		t.Fatalf("stats of a after dead-letter: %+v (entry size %d)", st, size)
	}
	items, _ := readAll(t, s, "a", 10)
	wantBodies(t, "a", items, "d0", "d2")

	// b delivers everything, a the rest: the dead letter keeps its entry.
	b, _ := readAll(t, s, "b", 10)
	mustAck(t, s, "b", seqs(b)...)
	mustAck(t, s, "a", seqs(items)...)
	s = reopen(t, s)

	check := func() {
		t.Helper()
		var got []*DeadLetter
		var entries []*Entry
		err := s.DeadLetters("a", func(d *DeadLetter, e *Entry) error {
			got = append(got, d)
			entries = append(entries, e)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			t.Fatalf("%d dead letters, want 1", len(got))
		}
		d := got[0]
		if d.EntryID != victim.Entry.ID || d.Reason != dl.Reason || d.Status != 400 || d.Attempts != 3 || !d.At.Equal(at) || d.Seq == 0 {
			t.Fatalf("dead letter %+v", d)
		}
		if entries[0] == nil {
			t.Fatal("dead letter's entry is gone")
		}
		sameEntry(t, entries[0], victim.Entry)
		if entries[0].ID != victim.Entry.ID {
			t.Fatalf("entry id %d, want %d", entries[0].ID, victim.Entry.ID)
		}
	}
	check()
	if stored := bucketContents(t, s, bucketEntries); len(stored) != 1 || stored[victim.Entry.ID] == nil {
		t.Fatalf("stored entries %d, want only the dead letter's", len(stored))
	}
	if err := s.DeadLetters("b", func(*DeadLetter, *Entry) error { return errors.New("b has no dead letters") }); err != nil {
		t.Fatal(err)
	}
	st = mustStats(t, s)["a"]
	if st.Entries != 0 || st.DeadEntries != 1 || st.DeadBytes != size {
		t.Fatalf("stats of a at the end: %+v", st)
	}
	stop := errors.New("stop")
	if err := s.DeadLetters("a", func(*DeadLetter, *Entry) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("DeadLetters did not pass fn's error on: %v", err)
	}
}

// crashCopy copies the file of open store s, as a crash now would leave it
// (every write returned), into a new data dir with its segments, and
// returns the dir. The segments are copied after the file: they only grow,
// so every frame the copied file points at is in them.
func crashCopy(t testing.TB, s *Store) string {
	t.Helper()
	b, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), b, 0o600); err != nil {
		t.Fatal(err)
	}
	copySegments(t, filepath.Dir(s.Path()), dir)
	return dir
}

// freelistOf reads, from the file at path, which page holds bbolt's list
// of free pages according to the newest meta page; noFreelist means none.
func freelistOf(t *testing.T, path string) uint64 {
	t.Helper()
	page, err := freelistPage(path)
	if err != nil {
		t.Fatal(err)
	}
	return page
}

// TestFreelistOnDisk: a commit to a file small enough to walk leaves
// bbolt's free-page list off the disk (a page less per commit); a commit
// to a bigger file writes it while it is short, so that a restart after a
// crash loads it instead of walking every page the queues hold, and
// leaves a long one off (writing it in every commit cost a fifth of the
// CPU after a large backlog). Close writes it in every case.
func TestFreelistOnDisk(t *testing.T) {
	for _, tc := range []struct {
		name        string
		walkMax     int64
		syncMax     int
		listWhileOn bool
	}{
		{"small file, left off by each commit", 0, 0, false},
		{"big file, short list, written by each commit", 1, 0, true},
		{"big file, long list, written at close", 1, 16, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, t.TempDir(), Options{freelistWalkMax: tc.walkMax, freelistSyncMax: tc.syncMax})
			for i := range 20 {
				mustPut(t, s, strings.Repeat("x", 5000+i), "a")
			}
			items, _ := readAll(t, s, "a", 20)
			mustAck(t, s, "a", seqs(items[:10])...)

			crashed := crashCopy(t, s)
			if got := freelistOf(t, s.Path()) != noFreelist; got != tc.listWhileOn {
				t.Errorf("while open, free-page list on disk: %v, want %v", got, tc.listWhileOn)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if freelistOf(t, s.Path()) == noFreelist {
				t.Fatal("after Close, no free-page list on disk: the next open walks the whole file")
			}

			// The crashed file opens with what was acknowledged, and new
			// writes land on free pages without harming the old entries.
			c := openStore(t, crashed, Options{})
			for i := range 20 {
				mustPut(t, c, strings.Repeat("y", 5000+i), "a")
			}
			got, _ := readAll(t, c, "a", 100)
			want := bodies(items[10:])
			for i := range 20 {
				want = append(want, strings.Repeat("y", 5000+i))
			}
			wantBodies(t, "after the crash", got, want...)
		})
	}
}

// TestCrashImagesConsistent copies the file, as a crash would leave it,
// again and again while entries come and go and the free-page list keeps
// crossing the size up to which commits to a file over the walk size
// write it (see freelist.go; a small file's commits are the rounds with
// the list off). Every copy must pass
// bbolt's own check (no page both used and free, none lost) and hold
// exactly the entries not yet acknowledged, and take new writes.
func TestCrashImagesConsistent(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir(), Options{freelistSyncMax: 64, freelistWalkMax: 1, RecentBytes: -1})
	rng := rand.New(rand.NewPCG(1, 2))
	want := map[uint64]string{} // queue position -> body, not yet acked
	synced, unsynced := 0, 0
	for round := range 60 {
		for range rng.IntN(8) {
			body := strings.Repeat(string(rune('a'+rng.IntN(26))), 100+rng.IntN(30000))
			e := testEntry(body)
			if err := s.Put(ctx, e, []string{"a"}); err != nil {
				t.Fatal(err)
			}
		}
		items, _ := readAll(t, s, "a", 1000)
		want = map[uint64]string{}
		var ack []uint64
		for _, it := range items {
			if rng.IntN(3) == 0 {
				ack = append(ack, it.Seq)
			} else {
				want[it.Seq] = string(it.Entry.Body)
			}
		}
		mustAck(t, s, "a", ack...)
		if freelistOf(t, s.Path()) == noFreelist {
			unsynced++
		} else {
			synced++
		}

		crashed := crashCopy(t, s)
		path := filepath.Join(crashed, FileName)
		db, err := bolt.Open(path, 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType, NoFreelistSync: true})
		if err != nil {
			t.Fatalf("round %d: open the crash image: %v", round, err)
		}
		err = db.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				t.Errorf("round %d: bbolt check: %v", round, err)
			}
			return nil
		})
		if err == nil {
			err = db.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		c := openStore(t, crashed, Options{})
		mustPut(t, c, "after the crash", "a")
		got, _ := readAll(t, c, "a", 1000)
		if len(got) != len(want)+1 {
			t.Fatalf("round %d: crash image holds %d entries, want %d and the new one", round, len(got), len(want))
		}
		for _, it := range got[:len(got)-1] {
			if w, ok := want[it.Seq]; !ok || w != string(it.Entry.Body) {
				t.Fatalf("round %d: position %d differs in the crash image", round, it.Seq)
			}
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if synced == 0 || unsynced == 0 {
		t.Fatalf("the list was on disk after %d rounds and off after %d: the test did not cross the limit", synced, unsynced)
	}
}
