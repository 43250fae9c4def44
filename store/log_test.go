package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// segmentFiles lists the numbers of the segment files in dir.
func segmentFiles(t testing.TB, dir string) []uint64 {
	t.Helper()
	nums, _, err := listSegments(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	return nums
}

// TestLogRecordsSurviveRestart: records in the log are read back after a
// restart, byte for byte, and the new run appends to a segment of its own.
func TestLogRecordsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{RecentBytes: -1})
	var want []string
	for i := range 5 {
		want = append(want, bigBody(fmt.Sprintf("before-%d", i)))
		mustPut(t, s, want[i], "a")
	}
	before := segmentFiles(t, dir)
	if len(before) != 1 {
		t.Fatalf("segments after the first run's puts: %v, want one", before)
	}
	s = reopen(t, s)
	want = append(want, bigBody("after"))
	added := mustPut(t, s, want[5], "a")
	loc, ok := entryLocator(t, s, added.ID)
	if !ok || loc.seg <= before[0] {
		t.Errorf("a put after the restart went to %+v (in the log: %v), want a segment after %d", loc, ok, before[0])
	}
	s = reopen(t, s)
	items, quarantined := readAll(t, s, "a", 100)
	if quarantined != 0 {
		t.Fatalf("%d records quarantined after restarts", quarantined)
	}
	wantBodies(t, "a", items, want...)
}

// TestOrphanSegmentsRemovedAtOpen: segment files no committed locator
// points into (frames of a commit that never happened, a segment whose
// last entry was acked just before a crash) are removed at Open; the
// segments entries still point into are kept, and so are the segments of
// another bbolt file's log (one moved aside after damage, to be salvaged).
func TestOrphanSegmentsRemovedAtOpen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	kept := mustPut(t, s, bigBody("kept"), "a")
	s = reopen(t, s)
	gone := mustPut(t, s, bigBody("acked"), "b")
	items, _ := readAll(t, s, "b", 10)
	mustAck(t, s, "b", seqs(items)...)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var keptLoc locator
	var id uint64
	func() {
		s := openStore(t, dir, Options{ReadOnly: true})
		defer s.Close()
		keptLoc, _ = entryLocator(t, s, kept.ID)
		id = s.log.id
	}()
	// Appended, synced, never committed: the crash came before bbolt's commit.
	orphan := filepath.Join(dir, segmentName(id, 50))
	if err := os.WriteFile(orphan, appendFrame(nil, gone.ID+1, []byte("uncommitted")), 0o600); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(dir, segmentName(id+1, 3))
	if err := os.WriteFile(foreign, appendFrame(nil, 1, []byte("another file's")), 0o600); err != nil {
		t.Fatal(err)
	}
	if files, _, _ := listSegments(dir, id); len(files) != 3 {
		t.Fatalf("segments before the open: %v, want the kept one, the emptied one and the orphan", files)
	}
	s = openStore(t, dir, Options{})
	if got, _, _ := listSegments(dir, id); len(got) != 1 || got[0] != keptLoc.seg {
		t.Errorf("segments after the open: %v, want only %d", got, keptLoc.seg)
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("another log's segment: %v, want it left alone", err)
	}
	items, _ = readAll(t, s, "a", 10)
	wantBodies(t, "a", items, bigBody("kept"))
	// Numbering goes on after the orphan: a new segment never takes the
	// name of one a crash left.
	added := mustPut(t, s, bigBody("new"), "a")
	if loc, _ := entryLocator(t, s, added.ID); loc.seg <= 50 {
		t.Errorf("new segment %d, want a number after 50", loc.seg)
	}
}

// TestSealedSegmentsRemovedOnceAcked: segments are sealed at their size
// and removed once every entry in them is acked; the disk then holds
// about one segment.
func TestSealedSegmentsRemovedOnceAcked(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{segmentSize: 64 << 10})
	for i := range 40 {
		mustPut(t, s, bigBody(fmt.Sprint(i)), "a", "b")
	}
	if n := len(segmentFiles(t, dir)); n < 5 {
		t.Fatalf("%d segments for 40 records of 12 KiB at 64 KiB a segment", n)
	}
	items, _ := readAll(t, s, "a", 100)
	mustAck(t, s, "a", seqs(items)...)
	if n := len(segmentFiles(t, dir)); n < 5 {
		t.Fatalf("%d segments left while queue b still holds every entry", n)
	}
	items, _ = readAll(t, s, "b", 100)
	for _, it := range items { // one commit each, oldest first
		mustAck(t, s, "b", it.Seq)
	}
	if got := segmentFiles(t, dir); len(got) > 1 {
		t.Errorf("segments left after every entry was acked: %v, want at most the active one", got)
	}
	if p := s.log.physicalBytes(); p > 64<<10 {
		t.Errorf("the log counts %d bytes on disk after every entry was acked", p)
	}
	if n := len(segmentCounts(t, s)); n != 0 {
		t.Errorf("%d segment counters left", n)
	}
}

// TestPinnedSegmentsCopiedForward: a dead letter in each sealed segment
// would keep every segment on disk; their live records are copied forward
// and the segments go, and the dead letters still read back, after a
// restart too.
func TestPinnedSegmentsCopiedForward(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir, Options{segmentSize: 64 << 10, RecentBytes: -1, compactIdle: -1})
	var dead []string
	for i := range 60 {
		mustPut(t, s, bigBody(fmt.Sprint(i)), "a")
	}
	items, _ := readAll(t, s, "a", 100)
	for i, it := range items {
		if i%5 == 0 {
			dead = append(dead, string(it.Entry.Body))
			if err := s.MoveToDeadLetter(ctx, "a", it.Seq, DeadLetter{Reason: "400"}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		mustAck(t, s, "a", it.Seq)
	}
	// Later traffic seals more segments, which lets the copying reach
	// the last pinned ones.
	for i := range 20 {
		mustPut(t, s, bigBody(fmt.Sprint("later", i)), "b")
		items, _ := readAll(t, s, "b", 10)
		mustAck(t, s, "b", seqs(items)...)
	}
	files := segmentFiles(t, dir)
	// 12 dead letters of 12 KiB fit in three segments of 64 KiB; pinned,
	// they would keep all ten or more.
	if len(files) > 5 {
		t.Errorf("%d segments on disk for 12 live records: %v", len(files), files)
	}
	check := func(s *Store) {
		t.Helper()
		var got []string
		if err := s.DeadLetters("a", func(d *DeadLetter, e *Entry) error {
			if e == nil {
				return fmt.Errorf("dead letter %d lost its entry", d.Seq)
			}
			got = append(got, string(e.Body))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, ",") != strings.Join(dead, ",") {
			t.Fatalf("dead letters read back %d records, want %d, or not the same", len(got), len(dead))
		}
	}
	check(s)
	check(reopen(t, s))
}

// TestMissingSegmentRefused: a segment committed entries point into that
// is gone or cut short makes Open refuse the data dir, naming the file
// and salvage, and leave everything as it was.
func TestMissingSegmentRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(path string) error
	}{
		{"removed", os.Remove},
		{"cut short", func(path string) error { return os.Truncate(path, 100) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, Options{})
			mustPut(t, s, bigBody("x"), "a")
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			seg := segmentPath(t, dir, segmentFiles(t, dir)[0])
			if err := tc.damage(seg); err != nil {
				t.Fatal(err)
			}
			before := segmentFiles(t, dir)
			_, err := Open(dir, Options{})
			if !errors.Is(err, ErrDamaged) || !errors.Is(err, errMissingSegment) {
				t.Fatalf("open: %v, want ErrDamaged for a missing segment", err)
			}
			for _, want := range []string{seg, "pyrorelay salvage"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("refusal does not say %q: %v", want, err)
				}
			}
			if after := segmentFiles(t, dir); len(after) != len(before) {
				t.Errorf("segments %v after the refusal, %v before", after, before)
			}
		})
	}
}

// TestSegmentWriteFailureRefusesThePut: a segment write that fails (a full
// disk) or a sync that fails fails the put as a failed commit does, with
// the same error classes; nothing of it is committed, and the next put
// goes to a new segment and is kept across a restart.
func TestSegmentWriteFailureRefusesThePut(t *testing.T) {
	for _, tc := range []struct {
		call  string
		err   error
		space bool
	}{
		{"write", syscall.ENOSPC, true},
		{"sync", syscall.EIO, false},
	} {
		t.Run(tc.call, func(t *testing.T) {
			dir := t.TempDir()
			var failing atomic.Bool
			s := openStore(t, dir, Options{segmentFault: func(call string) error {
				if call == tc.call && failing.Load() {
					return tc.err
				}
				return nil
			}})
			first := mustPut(t, s, bigBody("first"), "a")
			loc, _ := entryLocator(t, s, first.ID)
			failing.Store(true)
			err := s.Put(context.Background(), testEntry(bigBody("refused")), []string{"a"})
			if !errors.Is(err, tc.err) || isSpaceErr(err) != tc.space {
				t.Fatalf("put with a failing segment %s: %v, want %v", tc.call, err, tc.err)
			}
			if !strings.Contains(err.Error(), "segment") {
				t.Errorf("error does not say which file: %v", err)
			}
			if tc.space {
				if h := s.Health(); h == nil || !strings.Contains(h.Error(), "refuses writes") {
					t.Errorf("Health after a put refused for lack of space: %v", h)
				}
			}
			failing.Store(false)
			next := mustPut(t, s, bigBody("next"), "a")
			if nl, _ := entryLocator(t, s, next.ID); nl.seg == loc.seg {
				t.Errorf("the put after a failed %s went to the same segment %d", tc.call, nl.seg)
			}
			s = reopen(t, s)
			items, quarantined := readAll(t, s, "a", 10)
			if quarantined != 0 {
				t.Errorf("%d quarantined", quarantined)
			}
			wantBodies(t, "a", items, bigBody("first"), bigBody("next"))
		})
	}
}

// TestTornFrameQuarantined: a frame cut short or overwritten is caught by
// its check when read: the record is quarantined, the rest delivered.
func TestTornFrameQuarantined(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{RecentBytes: -1})
	var ids []uint64
	for i := range 3 {
		ids = append(ids, mustPut(t, s, bigBody(fmt.Sprint(i)), "a").ID)
	}
	loc, _ := entryLocator(t, s, ids[1])
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The frame's header: the magic no longer says a frame starts here.
	f, err := os.OpenFile(segmentPath(t, dir, loc.seg), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0, 0, 0, 0}, int64(loc.off)); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	s = openStore(t, dir, Options{})
	items, quarantined := readAll(t, s, "a", 10)
	if quarantined != 1 {
		t.Errorf("quarantined %d, want 1", quarantined)
	}
	wantBodies(t, "a", items, bigBody("0"), bigBody("2"))
	if q := bucketContents(t, s, bucketQuarantine); len(q) != 1 || len(q[ids[1]]) != int(loc.size) {
		t.Errorf("quarantine holds %d records, want the damaged one's %d bytes", len(q), loc.size)
	}
	want := int64(items[0].Entry.Size() + items[1].Entry.Size())
	if n, b, err := s.TotalBytes(); err != nil || n != 2 || b != want {
		t.Errorf("TotalBytes = %d entries, %d bytes, %v; want 2, %d", n, b, err, want)
	}
}

// TestDrainingSegmentsNotCopied: segments a backlog is draining from, oldest
// first, are not copied forward: their entries are about to be acked, and
// a copy would write them twice.
func TestDrainingSegmentsNotCopied(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{segmentSize: 64 << 10})
	for i := range 40 {
		mustPut(t, s, bigBody(fmt.Sprint(i)), "a")
	}
	items, _ := readAll(t, s, "a", 100)
	before := map[uint64]locator{}
	for _, it := range items {
		before[it.Entry.ID], _ = entryLocator(t, s, it.Entry.ID)
	}
	var left []Item
	for i, it := range items { // most of every segment: a drain in progress
		if i%5 == 4 {
			left = append(left, it)
			continue
		}
		mustAck(t, s, "a", it.Seq)
	}
	defer pauseLoop(t, s)()
	for _, it := range left {
		if got, _ := entryLocator(t, s, it.Entry.ID); got != before[it.Entry.ID] {
			t.Errorf("entry %d of a draining backlog was copied from %+v to %+v", it.Entry.ID, before[it.Entry.ID], got)
		}
	}
}

// TestSchema2DataDirKeepsWorking: a data dir the previous version wrote
// (testdata/schema2.db.gz: queues a and b sharing a big record, a small
// one, and a dead letter, records in buckets of their own) opens with no
// migration and stays schema 2 while only read; its entries are read,
// acked and purged as they are, and new records go to the log, which
// marks the file schema 3.
func TestSchema2DataDirKeepsWorking(t *testing.T) {
	ctx := context.Background()
	gz, err := os.ReadFile(filepath.Join("testdata", "schema2.db.gz"))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	file, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), file, 0o600); err != nil {
		t.Fatal(err)
	}
	big := func(name string) string { return name + strings.Repeat(".", 12<<10) }

	s := openStore(t, dir, Options{})
	if got := schemaOf(t, s); got != 2 {
		t.Errorf("schema after opening: %d, want 2 until a record goes to the log", got)
	}
	items, quarantined := readAll(t, s, "a", 10)
	if quarantined != 0 {
		t.Fatalf("%d schema 2 records quarantined", quarantined)
	}
	wantBodies(t, "a", items, big("old-1"), "old-small", big("old-2"))
	var dead []string
	if err := s.DeadLetters("a", func(_ *DeadLetter, e *Entry) error {
		dead = append(dead, string(e.Body))
		return nil
	}); err != nil || len(dead) != 1 || dead[0] != big("old-dead") {
		t.Fatalf("dead letters of a: %d, %v; want old-dead", len(dead), err)
	}
	s = reopen(t, s)
	if got := schemaOf(t, s); got != 2 {
		t.Errorf("schema after a run that only read: %d, want 2 (an older pyrorelay can still open it)", got)
	}
	added := mustPut(t, s, big("new"), "a")
	if _, ok := entryLocator(t, s, added.ID); !ok {
		t.Error("a record put into a schema 2 file is not in the log")
	}
	if got := schemaOf(t, s); got != schemaVersion {
		t.Errorf("schema after the first record in the log: %d, want %d", got, schemaVersion)
	}
	s = reopen(t, s)
	items, _ = readAll(t, s, "a", 10)
	wantBodies(t, "a", items, big("old-1"), "old-small", big("old-2"), big("new"))
	mustAck(t, s, "a", seqs(items)...)
	items, _ = readAll(t, s, "b", 10)
	wantBodies(t, "b", items, big("old-1"))
	mustAck(t, s, "b", seqs(items)...)
	if _, err := s.PurgeDeadLetters(ctx, "a", Filter{}); err != nil {
		t.Fatal(err)
	}
	if n := len(bucketContents(t, s, bucketEntries)); n != 0 {
		t.Errorf("%d entries left after acking and purging everything", n)
	}
	if n, b, _ := s.TotalBytes(); n != 0 || b != 0 {
		t.Errorf("TotalBytes %d entries %d bytes after everything went", n, b)
	}
}

// TestSalvageReadsTheLog: salvage finds records in the log through their
// locators, in the segments beside the old file, and the old data dir is
// left as it was; so it does after the file was moved aside, as recovery
// hints say, and a new store started in the same directory, whose log is
// another (its Open leaves the old segments alone).
func TestSalvageReadsTheLog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir, Options{segmentSize: 64 << 10})
	var want []string
	for i := range 12 {
		want = append(want, bigBody(fmt.Sprint(i)))
		mustPut(t, s, want[i], "a")
	}
	items, _ := readAll(t, s, "a", 1)
	if err := s.MoveToDeadLetter(ctx, "a", items[0].Seq, DeadLetter{Reason: "400"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := segmentFiles(t, dir)
	broken := filepath.Join(dir, FileName+".broken")
	if err := os.Rename(filepath.Join(dir, FileName), broken); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, Options{})
	mustPut(t, s, bigBody("new store"), "a")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(t.TempDir(), "new")
	rep, err := Salvage(ctx, broken, to)
	if err != nil {
		t.Fatal(err)
	}
	// The report names every file of the new store, for moving it in.
	inDir, err := filepath.Glob(filepath.Join(to, "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Files) < 2 || rep.Files[0] != filepath.Join(to, FileName) || !sameSet(rep.Files, inDir) {
		t.Errorf("report names the files %v; the new store's directory holds %v", rep.Files, inDir)
	}
	if rep.Damaged {
		t.Errorf("an intact store reported damaged: %+v", rep)
	}
	copied := int64(0)
	for _, l := range rep.Lists {
		copied += l.Copied
	}
	if copied != 12 {
		t.Errorf("salvage copied %d entries, want 12: %+v", copied, rep)
	}
	if after := segmentFiles(t, dir); len(after) != len(before)+1 {
		t.Errorf("segments before %v, after a new store's run %v: want the old ones and the new store's", before, after)
	}
}

// TestEmptiedActiveSegmentTakesNewRecords: one commit acks the last live
// entry of the active segment (a quarter full, so due for removal) and then
// stores a new record in the same segment. The segment must stay: the new
// entry lives in it.
func TestEmptiedActiveSegmentTakesNewRecords(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir, Options{segmentSize: 64 << 10, RecentBytes: -1})
	for i := range 2 {
		mustPut(t, s, bigBody(fmt.Sprint("old-", i)), "a")
	}
	items, _ := readAll(t, s, "a", 10)
	if len(items) != 2 {
		t.Fatalf("read %d entries, want 2", len(items))
	}
	// Hold the commit loop, then queue the ack before the put, so that
	// both commit in one transaction, in that order.
	resume := pauseLoop(t, s)
	acked, put := make(chan error, 1), make(chan error, 1)
	go func() { acked <- s.Ack(ctx, "a", seqs(items)...) }()
	waitQueued(t, s, 1)
	go func() {
		put <- s.Put(ctx, &Entry{Kind: KindIngest, Query: "name=app", Body: []byte(bigBody("new"))}, []string{"a"})
	}()
	waitQueued(t, s, 2)
	resume()
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
	if err := <-put; err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s)
	got, quarantined := readAll(t, s, "a", 10)
	if quarantined != 0 {
		t.Fatalf("%d records quarantined", quarantined)
	}
	wantBodies(t, "a", got, bigBody("new"))
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	return len(a) == len(b) && len(a) == len(slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(a), b...)))))
}
