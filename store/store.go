// Package store is pyrorelay's write-ahead queue on disk: one bbolt file
// that holds every accepted request once, a queue of references to it per
// destination, dead letters, an archive of delivered entries and
// quarantined records, and beside it a record log, the segment files that
// hold the big records themselves.
//
// Every write goes through one commit loop that folds the writes waiting at
// that moment into a single fsync'd bbolt transaction (group commit), so
// durability costs one fsync per batch, not one per request. The records of
// a batch are appended to the log's active segment in one write and synced
// before the transaction that points at them commits; a client is answered
// only after both. The store knows nothing about HTTP or destinations
// beyond their names.
//
// The types: Store (Open, Put, ReadBatch, Ack, Stats, Health), Entry (one
// request as stored) and Item (an entry with its queue position), DeadLetter,
// Limits and Options; Source, Filter, Record and Scan for operator tools;
// Summary, Compact and Salvage for a stopped relay's data.
//
// The file, bucket by bucket (record.go, entries.go, locator.go and dead.go
// give the value layouts):
//
//	entries     entry ID → a locator into the log (records over half a page),
//	            the record (smaller ones), or, written by schema 2, a bucket
//	            holding the record under "r"
//	refs        entry ID → how many queues and dead-letter lists hold it (4 bytes)
//	queues/NAME position → queueRef: entry ID, record size, receive time (24 bytes)
//	dead/NAME   position → dead letter: entry ID, size, reason (JSON)
//	archive     receive time + entry ID → record size (archive.go)
//	quarantine  entry ID → the bytes of a record that failed its checksum
//	stats       q/NAME, d/NAME, e/total, a/archive → count and bytes (16 bytes)
//	meta        schema → version (8 bytes); log → the record log's ID (8 bytes)
//
// The record log, like Prometheus' tsdb/wlog, is a directory of numbered
// segment files (here the data directory: pyrorelay-LOGID-00000001.seg,
// ..., LOGID the 16 hex digits of the log's ID, kept in the meta bucket),
// appended to and never rewritten; one store appends to one segment at a
// time, sealing it at a size (64 MiB, at most a sixteenth of
// MaxFileSize) and starting a new one at every Open. A segment is a
// sequence of frames with no padding between them:
//
//	┌──────────────┬──────────────┬──────────────┬──────────────┬─────────────────┐
//	│ magic (4B)   │ length (4B)  │ CRC-32C (4B) │ entry ID (8B)│ record (length) │
//	└──────────────┴──────────────┴──────────────┴──────────────┴─────────────────┘
//
// big endian, magic 0x70726c67 ("prlg"), the checksum over the entry ID
// and the record (record.go's layout, which carries a checksum of its
// own). A frame is live while its entry's locator points at it; the store
// counts live frames per segment in memory (counted from the locators at
// Open, changed by the transactions that add and delete locators), and a
// segment is removed after the commit that left nothing live in it. Open removes segments nothing points into
// (frames of a transaction that never committed) and refuses a data dir
// whose entries point into a segment that is missing or cut short.
//
// Where the code is: commit.go (the commit loop), deferred.go (acks that
// share the next commit), segment.go and segsync_*.go (the segment files:
// appending, reading, removing), segframe.go (their names and frames), locator.go
// (locators and the live frames per segment), logrecover.go (the log at Open),
// logcompact.go (copying the live records of mostly dead segments
// forward), put.go, read.go,
// refcount.go (an entry goes with its last reference), queueref.go,
// stats.go, limits.go and room.go (what bounds the store), freelist.go and
// warm.go (bbolt's free-page list), mmap.go (its memory map and page
// cache), archive.go, dead.go, expire.go, scan.go,
// move.go, summary.go, compact.go, salvage.go and salvageput.go,
// filecheck.go and treecheck.go (what is checked before bbolt maps the
// file) and health.go (damage met while running).
package store

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
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
	// keyLogID names the record log's segments (segment.go), 8 bytes.
	keyLogID = []byte("log")
)

// schemaVersion 3 keeps big records in the record log (entries.go); a file
// is marked 3 by the first commit that writes a locator.
const schemaVersion = 3

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
	// 4 MiB; negative turns the cache off.
	RecentBytes int64

	// segmentSize overrides defaultSegmentSize, for tests.
	segmentSize int64
	// compactIdle overrides defaultCompactIdle, for tests; negative is none.
	compactIdle time.Duration
	// segmentFault, if set, is asked before each write ("write") and sync
	// ("sync") of a segment; an error fails that call, for tests.
	segmentFault func(call string) error
	// deferredWait overrides defaultDeferredWait, for tests.
	deferredWait time.Duration
	// freelistSyncMax overrides FreelistSyncMax, for tests.
	freelistSyncMax int
	// freelistWalkMax overrides FreelistWalkMax, for tests; negative is none.
	freelistWalkMax int64
	// willNeed replaces adviseWillNeed, for tests that record what is read ahead.
	willNeed func(addr uintptr, n int64)
	// resident replaces residentPages, for tests of a file not in the page cache.
	resident func(addr uintptr, n int64) []byte
}

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
	// log is the record log: the segment files beside the bbolt file.
	log *segmentLog

	// lastPrompt is when the commit loop last committed a write that
	// would not wait (see awaitCompany); only the loop uses it.
	lastPrompt time.Time
	// deferredHeld is how many deferred writes the loop holds while it
	// waits for company, for tests.
	deferredHeld atomic.Int64

	// txGrowth is what the puts of the running transaction add to the
	// file (see fileRoom); only the commit loop uses it.
	txGrowth int64
	health   health
	// leftovers are the files of interrupted compacts Open removed.
	leftovers []Leftover
	// archive is the archive's policy; nil when the store does not archive.
	archive *archivePolicy

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
	if opts.deferredWait == 0 {
		opts.deferredWait = defaultDeferredWait
	}
	if opts.freelistSyncMax == 0 {
		opts.freelistSyncMax = FreelistSyncMax
	}
	if opts.freelistWalkMax == 0 {
		opts.freelistWalkMax = FreelistWalkMax
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
	if !opts.ReadOnly {
		pageFolios(db, path)
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
		archive:  newArchivePolicy(opts),
		willNeed: opts.willNeed,
		log:      newSegmentLog(dir, opts.ReadOnly, segmentSize(opts)),
	}
	s.log.fault = opts.segmentFault
	initTx := s.update
	// The first commit writes the free-page list, whatever its length:
	// bbolt rolls back a failed write by reloading the list, from the file
	// when the last commit wrote it there, and otherwise by walking every
	// page, in a goroutine of its own where a damaged page ends the
	// process. The commit loop decides for each commit after this one.
	db.NoFreelistSync = false
	if opts.ReadOnly {
		initTx = s.view // initBuckets then only checks the schema
	}
	if err := initTx(s.initBuckets); err != nil {
		if s.health.stuck.Load() == nil {
			_ = db.Close()
		}
		s.log.close()
		if de := (*damageError)(nil); errors.As(err, &de) {
			// Met before the relay ran: the file is as it was.
			de.hint = recoverHint(path)
		}
		return nil, fmt.Errorf("init %s: %w", path, err)
	}
	if !opts.ReadOnly {
		// The exclusive lock is held: no compact is running.
		if s.leftovers, err = removeLeftovers(dir, ""); err != nil {
			_ = db.Close()
			s.log.close()
			return nil, err
		}
	}
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
		// See freelist.go.
		NoFreelistSync: !opts.ReadOnly,
		MaxSize:        opts.MaxFileSize,
		ReadOnly:       opts.ReadOnly,
	})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("open %s: %w (stop the relay that uses it, or ask it over its admin API)", path, ErrLocked)
	case errors.Is(err, os.ErrPermission):
		return nil, fmt.Errorf("open %s: %w: %s", path, err, permissionHint(path))
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
		if err := checkSchema(tx); err != nil {
			return err
		}
		s.log.id = logID(tx)
		return nil
	}
	for _, name := range [][]byte{bucketEntries, bucketRefs, bucketQueues, bucketDead, bucketQuarantine, bucketStats, bucketMeta} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %q: %w", name, err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	if v := meta.Get(keySchema); v != nil {
		if len(v) != 8 || binary.BigEndian.Uint64(v) > schemaVersion {
			return fmt.Errorf("schema version %s is newer than this pyrorelay understands (%d)", schemaText(v), schemaVersion)
		}
		// An older file is readable as it is (see entries.go), and
		// stays marked with its version until the first commit that
		// writes a locator (segmentLog.flushTx): an older pyrorelay
		// then refuses it rather than misread it, and can still open a
		// file this one only looked at.
		s.log.upgraded = binary.BigEndian.Uint64(v) == schemaVersion
	} else {
		if err := meta.Put(keySchema, u64(schemaVersion)); err != nil {
			return err
		}
		s.log.upgraded = true
	}
	if s.log.id = logID(tx); s.log.id == 0 {
		var b [8]byte
		for s.log.id == 0 {
			if _, err := rand.Read(b[:]); err != nil {
				return fmt.Errorf("log ID: %w", err)
			}
			s.log.id = binary.BigEndian.Uint64(b[:])
		}
		if err := meta.Put(keyLogID, u64(s.log.id)); err != nil {
			return err
		}
	}
	return s.log.recover(tx)
}

// logID is the record log's ID kept in the file, 0 if none.
func logID(tx *bolt.Tx) uint64 {
	if v := tx.Bucket(bucketMeta).Get(keyLogID); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
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
		if p := s.health.stuck.Load(); p != nil {
			// Closing would wait for bbolt's writer lock forever: the
			// file stays open, and locked, until the process exits.
			err = fmt.Errorf("close %s: %w", s.path, *p)
			return
		}
		err = errors.Join(s.syncFreelist(), s.db.Close())
		s.log.close()
	})
	return err
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

// schemaText is a stored schema version as a person reads it.
func schemaText(v []byte) string {
	if len(v) != 8 {
		return fmt.Sprintf("%x (not 8 bytes)", v)
	}
	return strconv.FormatUint(binary.BigEndian.Uint64(v), 10)
}

// checkSchema is initBuckets for a read-only open: it creates nothing and
// refuses a file that is not a pyrorelay store, or is newer than this one.
func checkSchema(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return errors.New("not a pyrorelay store: it has no meta bucket")
	}
	if v := meta.Get(keySchema); len(v) != 8 || binary.BigEndian.Uint64(v) > schemaVersion {
		return fmt.Errorf("schema version %s is newer than this pyrorelay understands (%d)", schemaText(v), schemaVersion)
	}
	return nil
}
