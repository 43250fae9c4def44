package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Salvage copies what can still be read out of a damaged store into a new
// one. It reads the old file through bbolt, read-only, with every read
// guarded: a page that makes bbolt panic, or that lies past the end of a
// truncated file, costs the positions behind it, not the salvage. Each
// record is kept only if it passes its checksum. The old file is never
// written.

// SalvageList is what Salvage found in one list of entries.
type SalvageList struct {
	Source Source
	// Expected is what the list's counters say it held; -1 when they
	// could not be read.
	Expected int64
	// Copied entries passed their checksum and are in the new store.
	Copied int64
	// Corrupt entries failed their checksum, or their record is gone.
	Corrupt int64
	// Unreadable counts the damaged places met (pages bbolt could not
	// read); the positions behind them are lost, Lost says how many when
	// the counters could be read.
	Unreadable int
}

// Lost is how many entries the list held that were not copied, or -1 when
// that is not known.
func (l SalvageList) Lost() int64 {
	if l.Expected < 0 {
		return -1
	}
	return max(l.Expected-l.Copied, 0)
}

// SalvageReport lists what Salvage did, list by list: queues first, then
// dead letters, then the archive.
type SalvageReport struct {
	Lists []SalvageList
	// Damaged is true when any damage was met, lists aside (the list of
	// queues itself, say).
	Damaged bool
	// Files are the new store's files, the bbolt file first, then its
	// record log's segments: what to move to put the new store in place.
	Files []string
}

// salvageBatch bounds what one transaction of the new store carries.
const salvageBatch = 512

// Salvage copies every readable entry of the store file at srcPath, with
// its queue positions, dead letters and archive entries, into a new store
// in dstDir, which must not hold one yet. An entry held by several queues
// is stored once, as before. The file at srcPath is opened read-only and
// left as it is.
func Salvage(ctx context.Context, srcPath, dstDir string) (SalvageReport, error) {
	var rep SalvageReport
	if _, err := os.Stat(srcPath); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return rep, fmt.Errorf("salvage: no store file %s: check --data-dir: %w", srcPath, ErrNotFound)
		}
		return rep, fmt.Errorf("salvage %s: %w", srcPath, err)
	}
	dstPath := filepath.Join(dstDir, FileName)
	if _, err := os.Stat(dstPath); err == nil {
		return rep, fmt.Errorf("salvage into %s: it holds a store already; name a new directory", dstDir)
	}
	if abs1, _ := filepath.Abs(filepath.Dir(srcPath)); abs1 != "" {
		if abs2, _ := filepath.Abs(dstDir); abs1 == abs2 {
			return rep, fmt.Errorf("salvage into %s: that is the damaged store's own directory; name a new one", dstDir)
		}
	}
	src, err := openSalvageSource(srcPath)
	if err != nil {
		return rep, err
	}
	defer src.Close()
	dst, err := Open(dstDir, Options{RecentBytes: -1})
	if err != nil {
		return rep, fmt.Errorf("salvage: create the new store: %w", err)
	}
	// Records in the log are read from the segments beside the file.
	srcLog := newSegmentLog(filepath.Dir(srcPath), true, 0)
	defer srcLog.close()
	srcLog.id = salvageLogID(src, srcLog.dir)
	sv := &salvager{dst: dst, src: srcLog, ids: make(map[uint64]uint64), looping: map[string]bool{}}
	if m, err := newestMeta(srcPath); err == nil {
		if f, err := os.Open(srcPath); err == nil {
			sv.looping = loopingTrees(f, m)
			_ = f.Close()
		}
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	err = src.View(func(tx *bolt.Tx) error {
		return sv.run(ctx, tx, &rep)
	})
	logID := dst.log.id
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return rep, fmt.Errorf("salvage %s into %s: %w", srcPath, dstDir, err)
	}
	rep.Files = []string{dstPath}
	if logID != 0 {
		segs, _, err := listSegments(dstDir, logID)
		if err != nil {
			return rep, fmt.Errorf("salvage %s into %s: %w", srcPath, dstDir, err)
		}
		for _, n := range segs {
			rep.Files = append(rep.Files, filepath.Join(dstDir, segmentName(logID, n)))
		}
	}
	return rep, nil
}

// salvageLogID is the ID of the log of the damaged file db, whose
// segments are in dir: the one its meta bucket names or, if that cannot be
// read, the one of the segments there when they are all of one log.
func salvageLogID(db *bolt.DB, dir string) uint64 {
	var id uint64
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	try(func() {
		_ = db.View(func(tx *bolt.Tx) error {
			if tx.Bucket(bucketMeta) != nil {
				id = logID(tx)
			}
			return nil
		})
	})
	if id != 0 {
		return id
	}
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		sid, _, ok := parseSegmentName(de.Name())
		switch {
		case !ok:
		case id == 0:
			id = sid
		case sid != id:
			return 0 // several logs: none can be told to be this file's
		}
	}
	return id
}

// openSalvageSource opens path read-only, without the checks Open makes:
// a truncated file is read up to where it ends.
func openSalvageSource(path string) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("salvage: open %s: %w: %v (nothing can be read through bbolt)", path, ErrDamaged, r)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("salvage: open %s: %w (stop the relay first)", path, ErrLocked)
	case err != nil:
		return nil, fmt.Errorf("salvage: open %s: %w (nothing can be read through bbolt)", path, err)
	}
	return db, nil
}

type salvager struct {
	dst *Store
	src *segmentLog       // the old store's record log
	ids map[uint64]uint64 // entry ID in the old file → in the new one
	// looping are the buckets whose pages loop (see loopingTrees): a
	// cursor that entered one would descend until the process runs out
	// of memory, so they are not read.
	looping map[string]bool
}

// unsafe reports whether reading the bucket at path, or one of the
// buckets it is reached through, could loop.
func (sv *salvager) unsafe(path string) bool {
	if sv.looping[""] {
		return true
	}
	for i := range path {
		if path[i] == '/' && sv.looping[path[:i]] {
			return true
		}
	}
	return sv.looping[path]
}

// salvaged is one entry copied out of the old file, and where it goes.
type salvaged struct {
	srcID uint64
	rec   []byte
	at    int64
	dead  *DeadLetter // for a dead letter
}

// try runs fn and reports whether it ran without a panic.
func try(fn func()) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			ok = false
		}
	}()
	fn()
	return true
}

func (sv *salvager) run(ctx context.Context, tx *bolt.Tx, rep *SalvageReport) error {
	if sv.unsafe("") {
		rep.Damaged = true
		return nil
	}
	for _, kind := range []struct {
		parent []byte
		src    func(string) Source
	}{{bucketQueues, QueueSource}, {bucketDead, DeadLetterSource}} {
		var names []string
		if sv.unsafe(string(kind.parent)) {
			rep.Damaged = true
			continue
		}
		if !try(func() {
			if b := tx.Bucket(kind.parent); b != nil {
				_ = b.ForEachBucket(func(k []byte) error {
					names = append(names, string(k))
					return nil
				})
			}
		}) {
			rep.Damaged = true
		}
		sort.Strings(names)
		for _, name := range names {
			l, err := sv.list(ctx, tx, kind.src(name))
			rep.Lists = append(rep.Lists, l)
			if err != nil {
				return err
			}
		}
	}
	var has bool
	try(func() { has = tx.Bucket(bucketArchive) != nil })
	if has {
		l, err := sv.list(ctx, tx, ArchiveSource())
		rep.Lists = append(rep.Lists, l)
		if err != nil {
			return err
		}
	}
	// Records whose positions were lost with a damaged list: every record
	// that can be read is kept.
	l, err := sv.list(ctx, tx, QueueSource(SalvageQueue))
	if l.Copied > 0 || l.Unreadable > 0 {
		rep.Lists = append(rep.Lists, l)
	}
	if err != nil {
		return err
	}
	for _, l := range rep.Lists {
		rep.Damaged = rep.Damaged || l.Unreadable > 0 || l.Corrupt > 0
	}
	return nil
}

// SalvageQueue is the queue of the new store that Salvage puts records
// in whose queue positions it could not read. Like every name starting
// with "_", no destination drains it: move its entries with
// `pyrorelay queue move`, or replay them.
const SalvageQueue = "_salvaged"

// list copies one list of the old file.
func (sv *salvager) list(ctx context.Context, tx *bolt.Tx, src Source) (SalvageList, error) {
	l := SalvageList{Source: src, Expected: -1}
	path := string(bucketEntries)
	switch {
	case src == QueueSource(SalvageQueue):
	case src.Kind == SourceQueue:
		path = string(bucketQueues) + "/" + src.Queue
	case src.Kind == SourceDeadLetters:
		path = string(bucketDead) + "/" + src.Queue
	case src.Kind == SourceArchive:
		path = string(bucketArchive)
	}
	var key []byte // of the list's counters
	switch src.Kind {
	case SourceQueue:
		key = statsKey('q', src.Queue)
	case SourceDeadLetters:
		key = statsKey('d', src.Queue)
	case SourceArchive:
		key = keyArchive
	}
	if src != QueueSource(SalvageQueue) && !sv.unsafe(string(bucketStats)) {
		try(func() { l.Expected, _ = getStats(tx, key) })
	}
	if sv.unsafe(path) || sv.unsafe(string(bucketEntries)) {
		l.Unreadable++
		return l, nil
	}
	var b *bolt.Bucket
	if !try(func() {
		switch src.Kind {
		case SourceQueue:
			b = tx.Bucket(bucketQueues).Bucket([]byte(src.Queue))
		case SourceDeadLetters:
			b = tx.Bucket(bucketDead).Bucket([]byte(src.Queue))
		case SourceArchive:
			b = tx.Bucket(bucketArchive)
		}
		if src == QueueSource(SalvageQueue) {
			b, l.Expected = tx.Bucket(bucketEntries), -1 // every record, by ID
		}
	}) || b == nil {
		l.Unreadable++
		return l, nil
	}
	entries := tx.Bucket(bucketEntries)
	var batch []salvaged
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := sv.put(ctx, src, batch)
		batch = batch[:0]
		return err
	}
	// Walk the keys in order. A panic moving the cursor leaves it
	// unusable: seek past the key it stopped after, further and further,
	// until a seek lands behind the damage.
	var last []byte
	c := b.Cursor()
	var k, v []byte
	ok := try(func() { k, v = c.First() })
	for {
		if !ok {
			l.Unreadable++
			if k, v, ok = seekPast(c, last); !ok {
				break
			}
		}
		if k == nil {
			break
		}
		last = append(last[:0], k...)
		var item salvaged
		var good bool
		if src == QueueSource(SalvageQueue) {
			if _, done := sv.ids[binary.BigEndian.Uint64(k)]; done || len(k) != 8 {
				ok = try(func() { k, v = c.Next() })
				continue
			}
		}
		if !try(func() { item, good = readSalvaged(sv.src, entries, src, k, v) }) {
			l.Unreadable++
		} else if !good {
			l.Corrupt++
		} else {
			batch = append(batch, item)
			l.Copied++
		}
		if len(batch) == salvageBatch {
			if err := flush(); err != nil {
				return l, err
			}
		}
		ok = try(func() { k, v = c.Next() })
	}
	return l, flush()
}

// seekPast moves c to the first key after last that it can reach without
// meeting the damage (last nil: from the start). Queue and dead-letter
// keys are positions and archive keys start with a time, so it seeks ever
// further ahead in that number until a seek lands, then back by halves to
// the nearest target that still lands.
func seekPast(c *bolt.Cursor, last []byte) (k, v []byte, ok bool) {
	base := uint64(0)
	if len(last) >= 8 {
		base = binary.BigEndian.Uint64(last)
	}
	seek := func(target uint64) bool {
		key := u64(target)
		return try(func() { k, v = c.Seek(key) })
	}
	lo, hi := base, uint64(0) // lo fails (or is last), hi lands
	for shift := 0; shift < 64; shift++ {
		next := base + 1<<shift
		if next <= base {
			break
		}
		if seek(next) {
			hi = next
			break
		}
		lo = next
	}
	if hi == 0 {
		return nil, nil, false
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if seek(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	ok = seek(hi)
	return k, v, ok
}

// readSalvaged reads the entry a key and value of list src point at and
// checks its record; good is false when it is gone or fails its checksum.
func readSalvaged(l *segmentLog, entries *bolt.Bucket, src Source, k, v []byte) (item salvaged, good bool) {
	var id, want uint64 // want: the record's size as the list recorded it; 0 when it does not
	switch {
	case src == QueueSource(SalvageQueue):
		id = binary.BigEndian.Uint64(k)
	case src.Kind == SourceQueue:
		ref, ok := decodeQueueRef(v)
		if !ok {
			return item, false
		}
		id, want = ref.id, ref.size
	case src.Kind == SourceDeadLetters:
		d, size, err := decodeDeadLetter(binary.BigEndian.Uint64(k), v)
		if err != nil {
			return item, false
		}
		id, want, item.dead = d.EntryID, size, d
	case src.Kind == SourceArchive:
		if len(k) != 16 || len(v) != 8 {
			return item, false
		}
		id, want = binary.BigEndian.Uint64(k[8:]), binary.BigEndian.Uint64(v)
	}
	raw, _, err := l.getRecord(entries, id)
	if err != nil || raw == nil || (want != 0 && uint64(len(raw)) != want) {
		return item, false
	}
	// Checked where it lies, before it is copied: a damaged page can give
	// a record any length.
	e, err := decodeRecord(raw)
	if err != nil {
		return item, false
	}
	return salvaged{srcID: id, rec: bytes.Clone(raw), at: e.ReceivedAt.UnixNano(), dead: item.dead}, true
}
