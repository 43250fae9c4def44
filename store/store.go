// Package store is pyrorelay's write-ahead queue on disk: one bbolt file
// that holds every accepted request once, a queue of references to it per
// destination, dead letters and quarantined records.
//
// Every write goes through one commit loop that folds the writes waiting at
// that moment into a single fsync'd bbolt transaction (group commit), so
// durability costs one fsync per batch, not one per request. The store knows
// nothing about HTTP or destinations beyond their names.
package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// HoldQueue is the queue that keeps entries when no destination is
// configured (store-only mode). Names starting with "_" are reserved.
const HoldQueue = "_hold"

// FileName is the name of the bbolt file inside the data directory.
const FileName = "pyrorelay.db"

var (
	// ErrLocked means another process holds the data directory open.
	ErrLocked = errors.New("data directory is in use by another process")
	// ErrClosed is returned by writes after Close.
	ErrClosed = errors.New("store is closed")
	// ErrNotFound is returned for a queue or dead letter that does not exist.
	ErrNotFound = errors.New("not found")
)

var (
	bucketEntries    = []byte("entries")
	bucketRefs       = []byte("refs")
	bucketQueues     = []byte("queues")
	bucketDead       = []byte("dead")
	bucketQuarantine = []byte("quarantine")
	bucketStats      = []byte("stats")
	bucketMeta       = []byte("meta")
	keySchema        = []byte("schema")
)

// schemaVersion 2 keeps big records in buckets of their own (entries.go).
const schemaVersion = 2

// Options tune a Store. The zero value is a sound default.
type Options struct {
	// LockTimeout is how long Open waits for another process to release
	// the file before returning ErrLocked. Default 1s.
	LockTimeout time.Duration
	// NoGroupCommit gives every write its own transaction and fsync. It
	// exists to measure what group commit buys; never use it in production.
	NoGroupCommit bool
	// MaxBatch caps the writes folded into one transaction. Default 512.
	MaxBatch int
	// OnCommit, if set, is called after each transaction with its duration
	// (fsync included) and the number of writes it carried.
	OnCommit func(d time.Duration, writes int)
	// MaxFileSize, if positive, is bbolt's hard cap on the file size.
	MaxFileSize int
	// Limits bound what the store holds; see Limits.
	Limits Limits
	// ArchiveRetention and ArchiveMaxBytes, if either is positive, keep an
	// entry after its last queue lets go of it, for replay; SweepArchive
	// drops what is older than the retention or beyond the size.
	ArchiveRetention time.Duration
	ArchiveMaxBytes  int64
	// ReadOnly opens the file with a shared lock and refuses writes; see
	// OpenReadOnly.
	ReadOnly bool
	// RecentBytes is the budget of the cache of entries just committed,
	// from which ReadBatch takes them without reading the file. Default
	// 8 MiB; negative turns the cache off.
	RecentBytes int64

	// freelistSyncMax overrides FreelistSyncMax, for tests.
	freelistSyncMax int
	// willNeed replaces adviseWillNeed, for tests that record what is read ahead.
	willNeed func(addr uintptr, n int64)
	// resident replaces residentPages, for tests of a file not in the page cache.
	resident func(addr uintptr, n int64) []byte
}

// FreelistSyncMax is the largest free-page list, in bytes as bbolt writes
// it, that a commit writes to the file; see Store.commit. 32 KiB lists
// 4,096 free pages (16 MiB of a file with 4 KiB pages).
const FreelistSyncMax = 32 << 10

// Store is a durable set of queues in one bbolt file. It is safe for
// concurrent use.
type Store struct {
	db   *bolt.DB
	opts Options
	path string

	ops      chan *op
	stop     chan struct{}
	loopDone chan struct{}
	closing  sync.Once
	// closeMu orders Close after every send into ops: a write holds it
	// shared while it hands its op to the loop, Close takes it to set
	// closed, so no op can enter ops after the loop's final drain.
	closeMu sync.RWMutex
	closed  bool

	mu    sync.Mutex
	wakes map[string]chan struct{}

	// counts holds the commit and write counters under one lock so that a
	// reader never sees a commit without its writes (or the reverse):
	// writes/commits is a ratio, and two separate atomics could be read
	// between the two additions.
	counts struct {
		sync.Mutex
		commits, writes uint64
	}
	mapped atomic.Int64 // bytes through the memory map since its pages were dropped (see noteMapped)

	recent *recent // nil when off

	// txGrowth is what the puts of the running transaction add to the
	// file (see fileRoom); only the commit loop uses it.
	txGrowth int64
	health   health
	// leftovers are the files of interrupted compacts Open removed.
	leftovers []Leftover

	// willNeed asks the kernel to read [addr, addr+n) of the memory map
	// ahead (adviseWillNeed); tests record the calls instead.
	willNeed func(addr uintptr, n int64)
}

// Open opens or creates the store in dir. A file another process holds
// returns ErrLocked; a file bbolt cannot read is never touched, and the
// error says how to recover.
func Open(dir string, opts Options) (*Store, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 512
	}
	if opts.RecentBytes == 0 {
		opts.RecentBytes = defaultRecentBytes
	}
	if opts.freelistSyncMax == 0 {
		opts.freelistSyncMax = FreelistSyncMax
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir %q: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	if opts.willNeed == nil {
		opts.willNeed = adviseWillNeed
	}
	if opts.resident == nil {
		opts.resident = residentPages
	}
	if !opts.ReadOnly {
		// Opening for writes may walk the whole file (see warmWalk).
		if err := warmWalk(path, opts); err != nil {
			return nil, err
		}
	}
	db, err := openBolt(path, opts)
	if err != nil {
		return nil, err
	}
	s := &Store{
		db:       db,
		opts:     opts,
		path:     path,
		ops:      make(chan *op, opts.MaxBatch),
		stop:     make(chan struct{}),
		loopDone: make(chan struct{}),
		wakes:    make(map[string]chan struct{}),
		recent:   newRecent(opts.RecentBytes),
		willNeed: opts.willNeed,
	}
	initTx := db.Update
	// The first commit writes the free-page list, whatever its length:
	// bbolt rolls back a failed write by reloading the list, from the file
	// when the last commit wrote it there, and otherwise by walking every
	// page, in a goroutine of its own where a damaged page ends the
	// process. The commit loop decides for each commit after this one.
	db.NoFreelistSync = false
	if opts.ReadOnly {
		initTx = db.View // initBuckets then only checks the schema
	}
	if err := s.guard(func() error { return initTx(s.initBuckets) }); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("init %s: %w", path, err)
	}
	if !opts.ReadOnly {
		// The exclusive lock is held: no compact is running.
		if s.leftovers, err = removeLeftovers(dir, ""); err != nil {
			_ = db.Close()
			return nil, err
		}
	}
	s.registerArchive()
	go s.commitLoop()
	return s, nil
}

func openBolt(path string, opts Options) (db *bolt.DB, err error) {
	if err := checkFile(path); err != nil {
		return nil, err
	}
	// bbolt panics on some kinds of damage, and faults on a page number
	// that points outside the map; either must become a refusal to start,
	// never a crash or a deleted file.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	// A panic inside bolt.Open leaves the file mapped, and so its lock
	// held, for the life of the process: checkFile keeps the damage bbolt
	// reads while opening (the meta pages, the free-page list) from
	// getting that far.
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("open %s: %w: %v: %s", path, ErrDamaged, r, recoverHint(path))
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      opts.LockTimeout,
		FreelistType: bolt.FreelistMapType,
		// See syncFreelist.
		NoFreelistSync: !opts.ReadOnly,
		MaxSize:        opts.MaxFileSize,
		ReadOnly:       opts.ReadOnly,
	})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("open %s: %w (stop the relay that uses it, or ask it over its admin API)", path, ErrLocked)
	case err != nil:
		return nil, fmt.Errorf("open %s: %w: %s", path, err, recoverHint(path))
	}
	return db, nil
}

// recoverHint says what to do about a file bbolt cannot open. It does not
// suggest `pyrorelay compact`: compact opens the file with bbolt too, and
// fails the same way.
func recoverHint(path string) string {
	return fmt.Sprintf("the file is left as it is; check it with `bbolt check %s`, "+
		"copy what can still be read into a new store with `pyrorelay salvage --data-dir %s --to NEWDIR`, "+
		"then move it aside (mv %s %s.broken) to start with the salvaged store or an empty one",
		path, filepath.Dir(path), path, path)
}

func (s *Store) initBuckets(tx *bolt.Tx) error {
	if !tx.Writable() {
		return checkSchema(tx)
	}
	for _, name := range [][]byte{bucketEntries, bucketRefs, bucketQueues, bucketDead, bucketQuarantine, bucketStats, bucketMeta} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %q: %w", name, err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	if v := meta.Get(keySchema); v != nil {
		if len(v) != 8 || binary.BigEndian.Uint64(v) > schemaVersion {
			return fmt.Errorf("schema version %x is newer than this pyrorelay understands (%d)", v, schemaVersion)
		}
		if binary.BigEndian.Uint64(v) == schemaVersion {
			return nil
		}
		// Older: readable as it is (see entries.go). The new version is
		// written before any record of the new shape, so that an older
		// pyrorelay refuses the file rather than misread it.
	}
	return meta.Put(keySchema, u64(schemaVersion))
}

// Path is the bbolt file's path.
func (s *Store) Path() string { return s.path }

// Close waits for pending writes, then closes the file. Writes after Close
// return ErrClosed.
func (s *Store) Close() error {
	var err error
	s.closing.Do(func() {
		s.closeMu.Lock()
		s.closed = true
		s.closeMu.Unlock()
		close(s.stop)
		<-s.loopDone
		err = errors.Join(s.syncFreelist(), s.db.Close())
		s.unregisterArchive()
	})
	return err
}

// syncFreelist writes bbolt's list of free pages, once, at Close.
//
// bbolt can write that list in every commit, and then it writes all of
// it: 8 bytes per free page, sorted first. A file that once held a backlog
// keeps its free pages (it never shrinks), so after draining 1 GiB every
// commit wrote and fsync'd 2 MiB of list, and building it took a fifth of
// the relay's CPU while it caught up. Without the list on disk, bbolt
// rebuilds it at open by walking the page tree, which on a 1 GiB backlog
// took 0.7 s with the file in the page cache and 6.6 s without. So a
// commit writes the list only while it is short (see commit), and Close
// writes it whatever its length: a restart after a clean stop loads it and
// is ready at once, and so does one after a crash while the list was
// short; only a crash while it was long walks the tree.
func (s *Store) syncFreelist() error {
	if s.opts.ReadOnly {
		return nil
	}
	// The commit loop has stopped: no transaction reads the field now.
	s.db.NoFreelistSync = false
	if err := s.guard(func() error { return s.db.Update(func(*bolt.Tx) error { return nil }) }); err != nil {
		return fmt.Errorf("write the free-page list of %s: %w", s.path, err)
	}
	return nil
}

// The store keeps e.Body for readers of the queues (see Options.RecentBytes):
// the caller must not change it after Put.
func (s *Store) Put(ctx context.Context, e *Entry, queues []string) error {
	if len(queues) == 0 {
		queues = []string{HoldQueue}
	}
	rec := e.record()
	ref := queueRef{size: uint64(len(rec)), receivedAt: e.ReceivedAt.UnixNano()}
	// A cheap look first, so that a full store refuses without queueing
	// behind commits; the look inside the transaction is the one that counts.
	if err := s.checkRoom(queues, int64(len(rec))); err != nil {
		return err
	}
	var dropped map[string]int
	// The entry goes into the cache of recent entries inside the
	// transaction, before any reader can see its ID in a queue: added after
	// the commit, a reader already running could find the ID first, read
	// the file, and leave the cached copy waiting for it forever.
	cache := !(len(queues) == 1 && queues[0] == HoldQueue) // nothing reads the hold queue
	var cachedID uint64
	o := &op{wake: queues, size: int64(len(rec))}
	o.abort = func() {
		// The transaction rolled back: its IDs will be used again.
		if cachedID != 0 {
			s.recent.remove(cachedID)
			cachedID = 0
		}
	}
	o.fn = func(tx *bolt.Tx) error {
		if err := s.fileRoom(tx, len(rec)); err != nil {
			return err
		}
		var err error
		if dropped, err = s.makeRoom(tx, queues, int64(len(rec))); err != nil {
			return err
		}
		entries := tx.Bucket(bucketEntries)
		id, err := entries.NextSequence()
		if err != nil {
			return err
		}
		if err := putRecord(entries, id, rec); err != nil {
			return err
		}
		if err := addStats(tx, keyTotal, 1, int64(len(rec))); err != nil {
			return err
		}
		if err := tx.Bucket(bucketRefs).Put(u64(id), u32(uint32(len(queues)))); err != nil {
			return err
		}
		ref.id = id
		for _, q := range queues {
			if err := appendQueue(tx, q, ref); err != nil {
				return err
			}
		}
		e.ID = id
		if cache {
			s.recent.add(e, int64(len(rec)), len(queues))
			cachedID = id
		}
		return nil
	}
	err := s.writeOp(ctx, o)
	if err == nil {
		s.noteMapped(len(rec))
	}
	if err == nil && s.opts.Limits.OnDrop != nil {
		for q, n := range dropped {
			s.opts.Limits.OnDrop(q, n)
		}
	}
	return err
}

// queueRef is a queue's value: which entry, how big, and when it arrived,
// so that stats and age need no entry read.
type queueRef struct {
	id         uint64
	size       uint64
	receivedAt int64
}

func (r queueRef) encode() []byte {
	b := make([]byte, 24)
	binary.BigEndian.PutUint64(b, r.id)
	binary.BigEndian.PutUint64(b[8:], r.size)
	binary.BigEndian.PutUint64(b[16:], uint64(r.receivedAt))
	return b
}

func decodeQueueRef(b []byte) (queueRef, bool) {
	if len(b) != 24 {
		return queueRef{}, false
	}
	return queueRef{
		id:         binary.BigEndian.Uint64(b),
		size:       binary.BigEndian.Uint64(b[8:]),
		receivedAt: int64(binary.BigEndian.Uint64(b[16:])),
	}, true
}

func appendQueue(tx *bolt.Tx, queue string, ref queueRef) error {
	b, err := tx.Bucket(bucketQueues).CreateBucketIfNotExists([]byte(queue))
	if err != nil {
		return fmt.Errorf("queue %q: %w", queue, err)
	}
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	if err := b.Put(u64(seq), ref.encode()); err != nil {
		return fmt.Errorf("queue %q: %w", queue, err)
	}
	return addStats(tx, statsKey('q', queue), 1, int64(ref.size))
}

// Item is an entry read from a queue, with its position there.
type Item struct {
	Seq   uint64 // position in the queue; pass it to Ack or DeadLetter
	Entry *Entry
}

// ReadBatch returns up to max entries of queue whose position is after
// after, oldest first, stopping early once maxBytes are read (at least one
// entry is returned if any is queued). The read transaction is closed
// before it returns: entries are the caller's, but their Body may be shared
// with other readers and must not be changed. Records that fail their checksum
// are moved to quarantine and skipped; quarantined reports how many.
func (s *Store) ReadBatch(ctx context.Context, queue string, after uint64, max, maxBytes int) (items []Item, quarantined int, err error) {
	var bad []uint64 // queue positions whose entry is corrupt or gone
	var badIDs []uint64
	touched := 0 // bytes read through the memory map
	err = s.view(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketQueues).Bucket([]byte(queue))
		if q == nil {
			return nil
		}
		entries := tx.Bucket(bucketEntries)
		size := 0
		prefetched := false
		c := q.Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && len(items) < max; k, v = c.Next() {
			seq := binary.BigEndian.Uint64(k)
			ref, ok := decodeQueueRef(v)
			if !ok {
				bad = append(bad, seq)
				continue
			}
			if e := s.recent.take(ref.id); e != nil {
				items = append(items, Item{Seq: seq, Entry: e})
				if size += int(ref.size); size >= maxBytes {
					break
				}
				continue
			}
			if !prefetched {
				prefetched = true
				s.prefetch(tx, q, queueEntryRef, k, max-len(items), maxBytes-size)
			}
			raw := getRecord(entries, ref.id)
			if raw == nil {
				bad = append(bad, seq)
				continue
			}
			touched += len(raw)
			e, err := decodeRecord(append([]byte(nil), raw...))
			if err != nil {
				bad = append(bad, seq)
				badIDs = append(badIDs, ref.id)
				continue
			}
			e.ID = ref.id
			items = append(items, Item{Seq: seq, Entry: e})
			size += len(raw)
			if size >= maxBytes {
				break
			}
		}
		return nil
	})
	s.noteMapped(touched)
	if err != nil {
		return nil, 0, fmt.Errorf("read queue %q: %w", queue, err)
	}
	if len(bad) > 0 {
		if err := s.quarantine(ctx, queue, bad, badIDs); err != nil {
			return items, 0, err
		}
	}
	return items, len(bad), nil
}

// entryRef reads which entry a key and value of a list (a queue, a
// dead-letter list, the archive) point at, and its record's size, without
// decoding the rest.
type entryRef func(k, v []byte) (id, size uint64, ok bool)

func queueEntryRef(_, v []byte) (uint64, uint64, bool) {
	ref, ok := decodeQueueRef(v)
	return ref.id, ref.size, ok
}

// prefetch asks the kernel to start reading the big records that list b
// points at from key from on, up to n of them or maxBytes, which the
// caller is about to copy out of the file.
//
// bbolt maps the file with MADV_RANDOM, so each page a reader touches that
// is not in the page cache is one synchronous 4 KiB read: a 16 KiB record
// took five in a row, and a backlog read from a cold disk (after a reboot,
// or once the page cache let it go) drained at a quarter of the rate it
// was built. MADV_WILLNEED over the records' pages has the kernel read them
// all at once, in the background, while the copying starts on the first.
// Only the entries bucket's leaves are read here, never a record's pages.
func (s *Store) prefetch(tx *bolt.Tx, b *bolt.Bucket, ref entryRef, from []byte, n, maxBytes int) {
	entries := tx.Bucket(bucketEntries)
	info := tx.DB().Info()
	ps, limit := uint64(info.PageSize), uint64(tx.Size())
	var start, end uint64 // pending span of file offsets, merged while contiguous
	flush := func() {
		if end > start {
			s.willNeed(info.Data+uintptr(start), int64(end-start))
		}
	}
	c := b.Cursor()
	for k, v := c.Seek(from); k != nil && n > 0 && maxBytes > 0; k, v = c.Next() {
		id, size, ok := ref(k, v)
		if !ok {
			continue
		}
		n--
		maxBytes -= int(size)
		rb := entries.Bucket(u64(id))
		if rb == nil || rb.Root() == 0 {
			continue // a small record in a shared leaf, or none
		}
		// A record's bucket is one leaf: a page header and one element
		// (recordLeafOverhead) followed by the record, over as many pages
		// as that takes.
		off := uint64(rb.Root()) * ps
		stop := min(off+(size+recordLeafOverhead+ps-1)/ps*ps, limit)
		if off >= stop {
			continue
		}
		if off != end {
			flush()
			start = off
		}
		end = stop
	}
	flush()
}

// quarantine moves corrupt entries out of the way, keeping their bytes, and
// removes queue positions that point at them.
func (s *Store) quarantine(ctx context.Context, queue string, seqs, ids []uint64) error {
	return s.write(ctx, nil, func(tx *bolt.Tx) error {
		entries, refs, qb := tx.Bucket(bucketEntries), tx.Bucket(bucketRefs), tx.Bucket(bucketQuarantine)
		for _, id := range ids {
			raw := getRecord(entries, id)
			if raw == nil {
				continue
			}
			if err := qb.Put(u64(id), append([]byte(nil), raw...)); err != nil {
				return err
			}
			if err := addStats(tx, keyTotal, -1, -int64(len(raw))); err != nil {
				return err
			}
			if err := deleteRecord(entries, id); err != nil {
				return err
			}
			if err := refs.Delete(u64(id)); err != nil {
				return err
			}
		}
		return removeFromQueue(tx, queue, seqs, false)
	})
}

// removeFromQueue deletes queue positions; with decref, the entries they
// point at lose a reference and go when none is left.
func removeFromQueue(tx *bolt.Tx, queue string, seqs []uint64, decref bool) error {
	q := tx.Bucket(bucketQueues).Bucket([]byte(queue))
	if q == nil {
		return nil
	}
	for _, seq := range seqs {
		v := q.Get(u64(seq))
		if v == nil {
			continue // already gone: acks are idempotent
		}
		ref, ok := decodeQueueRef(v)
		if err := q.Delete(u64(seq)); err != nil {
			return err
		}
		if !ok {
			continue
		}
		if err := addStats(tx, statsKey('q', queue), -1, -int64(ref.size)); err != nil {
			return err
		}
		if decref {
			if err := release(tx, ref.id); err != nil {
				return err
			}
		}
	}
	return nil
}

// release drops one reference to an entry and deletes it with the last.
func release(tx *bolt.Tx, id uint64) error {
	refs := tx.Bucket(bucketRefs)
	v := refs.Get(u64(id))
	if len(v) != 4 || binary.BigEndian.Uint32(v) <= 1 {
		if err := refs.Delete(u64(id)); err != nil {
			return err
		}
		entries := tx.Bucket(bucketEntries)
		if raw := getRecord(entries, id); raw != nil {
			if err := addStats(tx, keyTotal, -1, -int64(len(raw))); err != nil {
				return err
			}
		}
		if archived, err := archiveRetired(tx, id); archived || err != nil {
			return err
		}
		return deleteRecord(entries, id)
	}
	return refs.Put(u64(id), u32(binary.BigEndian.Uint32(v)-1))
}

// Ack removes delivered positions from queue. Acks of several callers share
// one commit; acking a position twice is harmless.
func (s *Store) Ack(ctx context.Context, queue string, seqs ...uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	err := s.writeOp(ctx, &op{frees: true, fn: func(tx *bolt.Tx) error { return removeFromQueue(tx, queue, seqs, true) }})
	if err != nil {
		return fmt.Errorf("ack %d entries of queue %q: %w", len(seqs), queue, err)
	}
	return nil
}

// QueueStats describes one queue.
type QueueStats struct {
	Entries     int64
	Bytes       int64
	Oldest      time.Time // zero when empty
	Newest      time.Time // zero when empty
	DeadEntries int64
	DeadBytes   int64
}

// Stats reports every queue that has, or ever had, entries or dead letters.
// It reads counters kept beside the queues, never the entries.
func (s *Store) Stats() (map[string]QueueStats, error) {
	out := make(map[string]QueueStats)
	err := s.view(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketQueues).ForEachBucket(func(name []byte) error {
			q := tx.Bucket(bucketQueues).Bucket(name)
			st := out[string(name)]
			st.Entries, st.Bytes = getStats(tx, statsKey('q', string(name)))
			c := q.Cursor()
			if _, v := c.First(); v != nil {
				if ref, ok := decodeQueueRef(v); ok {
					st.Oldest = time.Unix(0, ref.receivedAt)
				}
			}
			if _, v := c.Last(); v != nil {
				if ref, ok := decodeQueueRef(v); ok {
					st.Newest = time.Unix(0, ref.receivedAt)
				}
			}
			out[string(name)] = st
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketDead).ForEachBucket(func(name []byte) error {
			st := out[string(name)]
			st.DeadEntries, st.DeadBytes = getStats(tx, statsKey('d', string(name)))
			out[string(name)] = st
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	return out, nil
}

// Queues lists the names of all queues, sorted.
func (s *Store) Queues() ([]string, error) {
	st, err := s.Stats()
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(st))
	for n := range st {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// Quarantined reports how many records were moved to quarantine.
func (s *Store) Quarantined() (int, error) {
	n := 0
	err := s.view(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketQuarantine).Stats().KeyN
		return nil
	})
	return n, err
}

func statsKey(kind byte, queue string) []byte {
	return append([]byte{kind, '/'}, queue...)
}

func getStats(tx *bolt.Tx, key []byte) (count, bytes int64) {
	v := tx.Bucket(bucketStats).Get(key)
	if len(v) != 16 {
		return 0, 0
	}
	return int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:]))
}

func addStats(tx *bolt.Tx, key []byte, dCount, dBytes int64) error {
	count, bytes := getStats(tx, key)
	count, bytes = max(count+dCount, 0), max(bytes+dBytes, 0)
	v := make([]byte, 16)
	binary.BigEndian.PutUint64(v, uint64(count))
	binary.BigEndian.PutUint64(v[8:], uint64(bytes))
	return tx.Bucket(bucketStats).Put(key, v)
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func u32(v uint32) []byte {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, v)
	return b
}
