package store

// Operator tools: read what is stored in bounded pages, move queues and
// dead letters, put exported entries back, summarize, compact. Reads copy
// a page out of a short read transaction and close it before the caller
// sees a record, so a slow consumer (a file system, a network) never pins
// pages or blocks commits.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// SourceKind says which list of entries a Source names.
type SourceKind uint8

const (
	// SourceQueue is a destination's queue.
	SourceQueue SourceKind = iota + 1
	// SourceDeadLetters is a destination's dead-letter list.
	SourceDeadLetters
	// SourceArchive is the archive of delivered entries.
	SourceArchive
)

// Source names a list of stored entries: a queue, a dead-letter list or
// the archive.
type Source struct {
	Kind  SourceKind
	Queue string // the queue, for SourceQueue and SourceDeadLetters
}

// QueueSource names the queue of destination name.
func QueueSource(name string) Source { return Source{Kind: SourceQueue, Queue: name} }

// DeadLetterSource names the dead-letter list of destination name.
func DeadLetterSource(name string) Source { return Source{Kind: SourceDeadLetters, Queue: name} }

// ArchiveSource names the archive.
func ArchiveSource() Source { return Source{Kind: SourceArchive} }

func (s Source) String() string {
	switch s.Kind {
	case SourceQueue:
		return fmt.Sprintf("queue %q", s.Queue)
	case SourceDeadLetters:
		return fmt.Sprintf("dead letters of %q", s.Queue)
	case SourceArchive:
		return "archive"
	default:
		return fmt.Sprintf("source(%d)", s.Kind)
	}
}

// Filter selects entries. The zero Filter selects everything.
type Filter struct {
	// Since and Until bound the receive time: Since <= t < Until. A zero
	// bound is open.
	Since, Until time.Time
	// Match, if set, must return true for an entry to be selected. It runs
	// inside a read transaction: e.Body is only valid during the call, and
	// Match must not call the store.
	Match func(e *Entry) bool
}

func (f Filter) timeOK(ns int64) bool {
	if !f.Since.IsZero() && ns < f.Since.UnixNano() {
		return false
	}
	if !f.Until.IsZero() && ns >= f.Until.UnixNano() {
		return false
	}
	return true
}

// Record is one entry read by Scan.
type Record struct {
	// Pos is the position in the queue or dead-letter list (pass it to
	// Ack); 0 for the archive.
	Pos   uint64
	Size  int // record bytes, the unit of every byte count the store reports
	Entry *Entry
	// Dead is the dead-letter record, for SourceDeadLetters.
	Dead *DeadLetter
}

// ScanResult counts what a scan selected and what it passed over.
type ScanResult struct {
	Entries int
	Bytes   int64
	// Skipped counts positions whose entry is missing or fails its
	// checksum; a scan never quarantines (it may run on a read-only store).
	Skipped int
}

// Page bounds: a page is at most this many selected entries or bytes, and a
// read transaction looks at no more than scanPageKeys positions, so a
// filter that selects little does not hold one transaction for long.
const (
	scanPageEntries = 128
	scanPageBytes   = 16 << 20
	scanPageKeys    = 4096
	// moveBatch bounds the positions one move transaction carries.
	moveBatch = 1000
)

type pageReq struct {
	src        Source
	f          Filter
	after      []byte // last key of the previous page; nil to start
	maxEntries int
	maxBytes   int
	body       bool // copy bodies out; false leaves Entry.Body nil
}

type page struct {
	recs    []Record
	last    []byte // key to continue after
	done    bool   // the source has nothing after last
	skipped int
}

func (s *Store) readPage(r pageReq) (page, error) {
	var p page
	err := s.view(func(tx *bolt.Tx) error {
		var b *bolt.Bucket
		var ref entryRef
		switch r.src.Kind {
		case SourceQueue:
			b, ref = tx.Bucket(bucketQueues).Bucket([]byte(r.src.Queue)), queueEntryRef
		case SourceDeadLetters:
			b, ref = tx.Bucket(bucketDead).Bucket([]byte(r.src.Queue)), deadEntryRef
		case SourceArchive:
			b, ref = tx.Bucket(bucketArchive), archiveEntryRef
		default:
			return fmt.Errorf("unknown source kind %d", r.src.Kind)
		}
		if b == nil {
			p.done = true
			return nil
		}
		entries := tx.Bucket(bucketEntries)
		c := b.Cursor()
		var k, v []byte
		switch {
		case r.after != nil:
			k, v = c.Seek(r.after)
			if k != nil && bytes.Equal(k, r.after) {
				k, v = c.Next()
			}
		case r.src.Kind == SourceArchive && !r.f.Since.IsZero() && r.f.Since.UnixNano() > 0:
			// The archive is ordered by receive time: start at Since.
			k, v = c.Seek(u64(uint64(r.f.Since.UnixNano())))
		default:
			k, v = c.First()
		}
		if k != nil {
			// As for a forwarder's batch: an export or replay of a
			// backlog on a cold disk otherwise reads it 4 KiB at a time,
			// and so does a count, which checks every record's checksum.
			s.prefetch(tx, b, ref, k, r.maxEntries, r.maxBytes)
		}
		size, scanned := 0, 0
		for ; ; k, v = c.Next() {
			if k == nil {
				p.done = true
				return nil
			}
			if scanned == scanPageKeys || len(p.recs) == r.maxEntries || size >= r.maxBytes {
				return nil // p.last is the key before this one
			}
			scanned++
			p.last = append(p.last[:0], k...)
			// at is the receive time when the position carries it; a dead
			// letter does not, so its entry is checked after decoding.
			rec, id, at, haveAt, ok := Record{}, uint64(0), int64(0), true, true
			switch r.src.Kind {
			case SourceQueue:
				var ref queueRef
				if ref, ok = decodeQueueRef(v); ok {
					rec.Pos, id, at = binary.BigEndian.Uint64(k), ref.id, ref.receivedAt
				}
			case SourceDeadLetters:
				var d *DeadLetter
				var err error
				if d, _, err = decodeDeadLetter(binary.BigEndian.Uint64(k), v); err == nil {
					rec.Pos, rec.Dead, id, haveAt = d.Seq, d, d.EntryID, false
				} else {
					ok = false
				}
			case SourceArchive:
				if ok = len(k) == 16; ok {
					at, id = int64(binary.BigEndian.Uint64(k)), binary.BigEndian.Uint64(k[8:])
					if !r.f.Until.IsZero() && at >= r.f.Until.UnixNano() {
						p.done = true // ordered by time: nothing later qualifies
						return nil
					}
				}
			}
			if !ok {
				p.skipped++
				continue
			}
			if haveAt && !r.f.timeOK(at) {
				continue
			}
			raw := getRecord(entries, id)
			if raw == nil {
				p.skipped++
				continue
			}
			// Decoded in place: Body aliases the memory map until copied.
			e, err := decodeRecord(raw)
			if err != nil {
				p.skipped++
				continue
			}
			e.ID = id
			if !haveAt && !r.f.timeOK(e.ReceivedAt.UnixNano()) {
				continue
			}
			if r.f.Match != nil && !r.f.Match(e) {
				continue
			}
			if r.body {
				e.Body = bytes.Clone(e.Body)
			} else {
				e.Body = nil
			}
			rec.Entry, rec.Size = e, len(raw)
			p.recs = append(p.recs, rec)
			size += len(raw)
		}
	})
	if err != nil {
		return page{}, fmt.Errorf("read %s: %w", r.src, err)
	}
	return p, nil
}

// Scan calls fn for each entry of src that f selects, oldest first. It
// reads bounded pages in short read transactions and calls fn outside of
// them, so fn may take its time and may call the store (to ack what it
// delivered, say). An error from fn stops the scan and is returned.
func (s *Store) Scan(ctx context.Context, src Source, f Filter, fn func(Record) error) (ScanResult, error) {
	return s.scan(ctx, src, f, true, fn)
}

// Count reports how many entries of src f selects, and their bytes,
// without copying bodies out.
func (s *Store) Count(ctx context.Context, src Source, f Filter) (ScanResult, error) {
	return s.scan(ctx, src, f, false, nil)
}

func (s *Store) scan(ctx context.Context, src Source, f Filter, body bool, fn func(Record) error) (ScanResult, error) {
	var res ScanResult
	req := pageReq{src: src, f: f, maxEntries: scanPageEntries, maxBytes: scanPageBytes, body: body}
	if !body {
		req.maxEntries, req.maxBytes = scanPageKeys, math.MaxInt
	}
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		p, err := s.readPage(req)
		if err != nil {
			return res, err
		}
		res.Skipped += p.skipped
		for _, r := range p.recs {
			if fn != nil {
				if err := fn(r); err != nil {
					return res, err
				}
			}
			res.Entries++
			res.Bytes += int64(r.Size)
		}
		if p.done {
			return res, nil
		}
		req.after = p.last
	}
}

// deadPositions walks the dead letters of queue that f selects, in pages of
// at most moveBatch, and calls fn with each page's positions. Dead letters
// added after the walk started are not visited, so a walk that moves what it
// visits ends even while the list grows.
func (s *Store) deadPositions(ctx context.Context, queue string, f Filter, fn func(seqs []uint64) error) (ScanResult, error) {
	var res ScanResult
	var end uint64
	if err := s.view(func(tx *bolt.Tx) error {
		if dl := tx.Bucket(bucketDead).Bucket([]byte(queue)); dl != nil {
			if k, _ := dl.Cursor().Last(); k != nil {
				end = binary.BigEndian.Uint64(k)
			}
		}
		return nil
	}); err != nil {
		return res, fmt.Errorf("read dead letters of %q: %w", queue, err)
	}
	req := pageReq{src: DeadLetterSource(queue), f: f, maxEntries: moveBatch, maxBytes: math.MaxInt}
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		p, err := s.readPage(req)
		if err != nil {
			return res, err
		}
		res.Skipped += p.skipped
		seqs := make([]uint64, 0, len(p.recs))
		for _, r := range p.recs {
			if r.Pos > end {
				p.done = true
				break
			}
			seqs = append(seqs, r.Pos)
			res.Entries++
			res.Bytes += int64(r.Size)
		}
		if len(seqs) > 0 {
			if err := fn(seqs); err != nil {
				return res, err
			}
		}
		if p.done || (len(p.last) == 8 && binary.BigEndian.Uint64(p.last) >= end) {
			return res, nil
		}
		req.after = p.last
	}
}

// RequeueDeadLetters moves the dead letters of queue that f selects back to
// the end of the queue, oldest first, and wakes its forwarder. The entries
// get new positions; their bytes are not copied. It commits in steps of at
// most moveBatch, so a crash part-way leaves every entry in exactly one of
// the two lists.
func (s *Store) RequeueDeadLetters(ctx context.Context, queue string, f Filter) (ScanResult, error) {
	res, err := s.deadPositions(ctx, queue, f, func(seqs []uint64) error {
		return s.write(ctx, []string{queue}, func(tx *bolt.Tx) error {
			return takeDeadLetters(tx, queue, seqs, func(d *DeadLetter, size uint64, raw []byte) error {
				at, ok := recordReceivedAt(raw)
				if !ok {
					return errKeepDeadLetter
				}
				// The queue takes over the dead letter's reference.
				return appendQueue(tx, queue, queueRef{id: d.EntryID, size: size, receivedAt: at})
			})
		})
	})
	if err != nil {
		return res, fmt.Errorf("requeue dead letters of %q: %w", queue, err)
	}
	return res, nil
}

// PurgeDeadLetters deletes the dead letters of queue that f selects. An
// entry's bytes go with its last reference; a purged entry is never
// archived.
func (s *Store) PurgeDeadLetters(ctx context.Context, queue string, f Filter) (ScanResult, error) {
	res, err := s.deadPositions(ctx, queue, f, func(seqs []uint64) error {
		return s.write(ctx, nil, func(tx *bolt.Tx) error {
			return takeDeadLetters(tx, queue, seqs, func(d *DeadLetter, _ uint64, raw []byte) error {
				at, _ := recordReceivedAt(raw)
				if err := release(tx, d.EntryID); err != nil {
					return err
				}
				return unarchive(tx, d.EntryID, at)
			})
		})
	})
	if err != nil {
		return res, fmt.Errorf("purge dead letters of %q: %w", queue, err)
	}
	return res, nil
}

// errKeepDeadLetter tells takeDeadLetters to leave a dead letter alone.
var errKeepDeadLetter = errors.New("keep dead letter")

// takeDeadLetters removes the dead letters at seqs of queue, after handing
// each to fn with its size and its entry's record (nil if missing). fn
// takes over the dead letter's reference to the entry.
func takeDeadLetters(tx *bolt.Tx, queue string, seqs []uint64, fn func(d *DeadLetter, size uint64, raw []byte) error) error {
	dl := tx.Bucket(bucketDead).Bucket([]byte(queue))
	if dl == nil {
		return nil
	}
	entries := tx.Bucket(bucketEntries)
	for _, seq := range seqs {
		v := dl.Get(u64(seq))
		if v == nil {
			continue // taken by someone else meanwhile
		}
		d, size, err := decodeDeadLetter(seq, v)
		if err != nil {
			continue // unreadable: leave it where an operator can see it
		}
		switch err := fn(d, size, getRecord(entries, d.EntryID)); {
		case errors.Is(err, errKeepDeadLetter):
			continue
		case err != nil:
			return err
		}
		if err := dl.Delete(u64(seq)); err != nil {
			return err
		}
		if err := addStats(tx, statsKey('d', queue), -1, -int64(size)); err != nil {
			return err
		}
	}
	return nil
}

// MoveResult says what MoveQueue moved.
type MoveResult struct {
	Entries     int
	DeadLetters int
}

// MoveQueue appends every entry of queue from to queue to, then its dead
// letters to to's dead-letter list, oldest first, and removes from. It
// commits in steps of at most moveBatch positions, so it can be stopped and
// run again: a crash part-way leaves each entry in one of the two queues.
// It is meant for a store no relay is serving.
func (s *Store) MoveQueue(ctx context.Context, from, to string) (MoveResult, error) {
	var res MoveResult
	if from == "" || to == "" || from == to {
		return res, fmt.Errorf("move queue %q to %q: name two different queues", from, to)
	}
	exists := false
	if err := s.view(func(tx *bolt.Tx) error {
		exists = tx.Bucket(bucketQueues).Bucket([]byte(from)) != nil || tx.Bucket(bucketDead).Bucket([]byte(from)) != nil
		return nil
	}); err != nil {
		return res, fmt.Errorf("move queue %q: %w", from, err)
	}
	if !exists {
		return res, fmt.Errorf("move queue %q: %w", from, ErrNotFound)
	}
	for {
		n := 0
		err := s.write(ctx, []string{to}, func(tx *bolt.Tx) error {
			n = 0
			q := tx.Bucket(bucketQueues).Bucket([]byte(from))
			if q == nil {
				return nil
			}
			var seqs []uint64
			c := q.Cursor()
			for k, v := c.First(); k != nil && len(seqs) < moveBatch; k, v = c.Next() {
				seqs = append(seqs, binary.BigEndian.Uint64(k))
				if ref, ok := decodeQueueRef(v); ok {
					if err := appendQueue(tx, to, ref); err != nil {
						return err
					}
				}
			}
			n = len(seqs)
			// The target took over each reference: no release here.
			return removeFromQueue(tx, from, seqs, false)
		})
		if err != nil {
			return res, fmt.Errorf("move queue %q to %q: %w", from, to, err)
		}
		res.Entries += n
		if n < moveBatch {
			break
		}
	}
	for {
		n := 0
		err := s.write(ctx, nil, func(tx *bolt.Tx) error {
			n = 0
			src := tx.Bucket(bucketDead).Bucket([]byte(from))
			if src == nil {
				return nil
			}
			if k, _ := src.Cursor().First(); k == nil {
				return nil
			}
			dst, err := tx.Bucket(bucketDead).CreateBucketIfNotExists([]byte(to))
			if err != nil {
				return err
			}
			var keys [][]byte
			c := src.Cursor()
			for k, v := c.First(); k != nil && len(keys) < moveBatch; k, v = c.Next() {
				keys = append(keys, append([]byte(nil), k...))
				size := int64(0)
				if len(v) >= 17 {
					size = int64(binary.BigEndian.Uint64(v[9:]))
				}
				seq, err := dst.NextSequence()
				if err != nil {
					return err
				}
				if err := dst.Put(u64(seq), append([]byte(nil), v...)); err != nil {
					return err
				}
				if err := addStats(tx, statsKey('d', to), 1, size); err != nil {
					return err
				}
				if err := addStats(tx, statsKey('d', from), -1, -size); err != nil {
					return err
				}
			}
			for _, k := range keys {
				if err := src.Delete(k); err != nil {
					return err
				}
			}
			n = len(keys)
			return nil
		})
		if err != nil {
			return res, fmt.Errorf("move dead letters of %q to %q: %w", from, to, err)
		}
		res.DeadLetters += n
		if n < moveBatch {
			break
		}
	}
	// Drop the emptied queue, so it no longer shows up as an orphan.
	err := s.write(ctx, nil, func(tx *bolt.Tx) error {
		for _, parent := range [][]byte{bucketQueues, bucketDead} {
			b := tx.Bucket(parent)
			if q := b.Bucket([]byte(from)); q != nil {
				if k, _ := q.Cursor().First(); k != nil {
					continue // something arrived meanwhile: keep it
				}
				if err := b.DeleteBucket([]byte(from)); err != nil {
					return err
				}
			}
		}
		st := tx.Bucket(bucketStats)
		for _, kind := range []byte{'q', 'd'} {
			if n, _ := getStats(tx, statsKey(kind, from)); n == 0 {
				if err := st.Delete(statsKey(kind, from)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("remove moved queue %q: %w", from, err)
	}
	return res, nil
}

// Import stores entries, as they are (receive time included), at the end
// of queue, in order, in one transaction, and wakes the queue's forwarder.
// It sets each entry's ID. Limits do not apply: an import is an operator's
// decision. Callers bound the batch (a few hundred entries, some MiB).
func (s *Store) Import(ctx context.Context, queue string, entries []*Entry) error {
	if queue == "" {
		return errors.New("import: no queue named")
	}
	if len(entries) == 0 {
		return nil
	}
	recs := make([][]byte, len(entries))
	for i, e := range entries {
		recs[i] = encodeRecord(make([]byte, 0, e.Size()), e)
	}
	ids := make([]uint64, len(entries))
	err := s.write(ctx, []string{queue}, func(tx *bolt.Tx) error {
		b, refs := tx.Bucket(bucketEntries), tx.Bucket(bucketRefs)
		for i, rec := range recs {
			id, err := b.NextSequence()
			if err != nil {
				return err
			}
			if err := putRecord(b, id, rec); err != nil {
				return err
			}
			if err := addStats(tx, keyTotal, 1, int64(len(rec))); err != nil {
				return err
			}
			if err := refs.Put(u64(id), u32(1)); err != nil {
				return err
			}
			ref := queueRef{id: id, size: uint64(len(rec)), receivedAt: entries[i].ReceivedAt.UnixNano()}
			if err := appendQueue(tx, queue, ref); err != nil {
				return err
			}
			ids[i] = id
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("import %d entries into queue %q: %w", len(entries), queue, err)
	}
	for i, e := range entries {
		e.ID = ids[i]
	}
	return nil
}

// Summary is everything `queue status` shows.
type Summary struct {
	Queues      map[string]QueueStats
	Archive     ArchiveStats
	Quarantined int
	// FileBytes is the size of the bbolt file; it never shrinks by itself
	// (see Compact).
	FileBytes int64
}

// Summary reads the per-queue counters, the archive and the file size in
// one short read transaction.
func (s *Store) Summary() (Summary, error) {
	queues, err := s.Stats()
	if err != nil {
		return Summary{}, err
	}
	sum := Summary{Queues: queues}
	err = s.view(func(tx *bolt.Tx) error {
		sum.Archive = archiveStats(tx)
		sum.Quarantined = tx.Bucket(bucketQuarantine).Stats().KeyN
		sum.FileBytes = tx.Size()
		return nil
	})
	if err != nil {
		return Summary{}, fmt.Errorf("summary: %w", err)
	}
	sum.Archive.Retention, sum.Archive.MaxBytes = s.opts.ArchiveRetention, s.opts.ArchiveMaxBytes
	return sum, nil
}

// QueueNames lists the queues and dead-letter lists on disk, sorted.
func (sum Summary) QueueNames() []string {
	names := make([]string, 0, len(sum.Queues))
	for n := range sum.Queues {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// OpenReadOnly opens the store in dir for reading only. It takes a shared
// lock, so several readers may look at a stopped relay's data at once, but
// not while a relay holds the file: that returns ErrLocked. Writes through a
// read-only store fail.
func OpenReadOnly(dir string, opts Options) (*Store, error) {
	path := filepath.Join(dir, FileName)
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no pyrorelay store in %s (%s does not exist): check --data-dir: %w", dir, FileName, ErrNotFound)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	opts.ReadOnly = true
	opts.ArchiveRetention, opts.ArchiveMaxBytes = 0, 0
	return Open(dir, opts)
}

// CompactResult is the file size before and after Compact, and the
// leftovers of earlier compacts it removed.
type CompactResult struct {
	Before, After int64
	Removed       []Leftover
}

// compactTxBytes bounds one transaction of the copy, so that compacting a
// large file does not hold it all in memory.
const compactTxBytes = 64 << 20

// Compact rewrites the store in dir into a new file with no free pages and
// puts it in place of the old one. bbolt reuses freed pages but never gives
// them back to the file system, so after a long outage the file stays at
// its high-water mark until compacted. Compact needs the store closed (it
// returns ErrLocked while a relay holds it) and free space for a copy of
// the live data in the same directory. The old file is replaced only once
// the copy is on disk: a crash part-way leaves the old file as it was, and
// a temporary file, which the next compact, or the next Open for writing,
// removes.
func Compact(dir string, lockTimeout time.Duration) (CompactResult, error) {
	var res CompactResult
	path := filepath.Join(dir, FileName)
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return res, fmt.Errorf("no pyrorelay store in %s: check --data-dir: %w", dir, ErrNotFound)
		}
		return res, fmt.Errorf("compact %s: %w", path, err)
	}
	res.Before = fi.Size()
	if lockTimeout <= 0 {
		lockTimeout = time.Second
	}
	// Open for writing: the exclusive lock keeps a relay (or another
	// compact) out until the new file is in place.
	src, err := openBolt(path, Options{LockTimeout: lockTimeout})
	if err != nil {
		return res, err
	}
	defer func() { _ = src.Close() }()
	// Under the lock: leftovers of compacts that were killed.
	if res.Removed, err = removeLeftovers(dir, ""); err != nil {
		return res, err
	}

	tmp, err := os.CreateTemp(dir, compactPattern)
	if err != nil {
		return res, fmt.Errorf("compact: create temporary file in %s: %w", dir, err)
	}
	tmpPath := tmp.Name()
	_ = tmp.Close()
	keep := false
	defer func() {
		if !keep {
			_ = os.Remove(tmpPath)
		}
	}()
	// NoSync while copying: the file is synced once, before the rename.
	dst, err := bolt.Open(tmpPath, 0o600, &bolt.Options{NoSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return res, fmt.Errorf("compact: open %s: %w", tmpPath, err)
	}
	if err := compactGuarded(dst, src, path); err != nil {
		_ = dst.Close()
		return res, fmt.Errorf("compact %s (it needs free space for a copy of the live data in %s): %w", path, dir, err)
	}
	if err := dst.Sync(); err != nil {
		_ = dst.Close()
		return res, fmt.Errorf("compact: sync %s: %w", tmpPath, err)
	}
	if err := dst.Close(); err != nil {
		return res, fmt.Errorf("compact: close %s: %w", tmpPath, err)
	}
	if err := syncFile(tmpPath); err != nil {
		return res, err
	}
	if fi, err := os.Stat(tmpPath); err == nil {
		res.After = fi.Size()
	}
	if err := os.Rename(tmpPath, path); err != nil {
		return res, fmt.Errorf("compact: replace %s: %w", path, err)
	}
	keep = true
	if err := syncFile(dir); err != nil {
		return res, err
	}
	return res, nil
}

// syncFile fsyncs a file or directory.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// IsReadOnly reports whether err comes from writing through a store opened
// with OpenReadOnly.
func IsReadOnly(err error) bool { return errors.Is(err, berrors.ErrDatabaseReadOnly) }

// checkSchema is initBuckets for a read-only open: it creates nothing and
// refuses a file that is not a pyrorelay store, or is newer than this one.
func checkSchema(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return errors.New("not a pyrorelay store: it has no meta bucket")
	}
	if v := meta.Get(keySchema); len(v) != 8 || binary.BigEndian.Uint64(v) > schemaVersion {
		return fmt.Errorf("schema version %x is newer than this pyrorelay understands (%d)", v, schemaVersion)
	}
	return nil
}

// compactGuarded is bolt.Compact with a damaged page of src turned into an
// error that says how to recover, not a crash.
func compactGuarded(dst, src *bolt.DB, path string) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v: %s", ErrDamaged, r, recoverHint(path))
		}
	}()
	return bolt.Compact(dst, src, compactTxBytes)
}
