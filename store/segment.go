package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The record log's files: segment.go keeps them open, appends to the
// active one, reads frames and removes segments; segframe.go has their
// names and the frame layout.

// segmentFile is one segment open for reading (and, the active one, for
// appending). refs counts reads in progress; a retired file was removed
// from the directory and is closed once no reader can need it (see
// readtxs.go).
type segmentFile struct {
	f         *os.File
	refs      int
	retiredAt time.Time // zero while the file is in the directory
	retiredTx int       // the commit that let its last entry go
}

// segmentLog is the record log of one data directory. Reads may come from
// any goroutine; appends, rotation and removal only from the commit loop
// (inside or right after a write transaction), and from Open.
type segmentLog struct {
	dir      string
	id       uint64 // the log's ID, in its segments' names; 0 until known
	readOnly bool
	maxSize  int64

	mu    sync.Mutex
	files map[uint64]*segmentFile
	// physical is the bytes of the segment files in the directory.
	physical int64

	// The rest belongs to the commit loop.
	active     uint64 // number of the segment appended to; 0 until the first append
	activeFile *os.File
	activeSize int64  // bytes written to the active segment
	next       uint64 // number of the next segment to start
	broken     bool   // a write or sync of the active segment failed: start another
	pending    []byte // frames of the running transaction, written before its commit
	// emptied are segments whose last live entry the running transaction
	// deleted: removed after its commit unless still active.
	emptied map[uint64]bool
	// touched are the segments the running transaction deleted from;
	// candidates those that committed transactions did, for compact.go.
	touched, candidates map[uint64]bool
	// lastTouch is when a committed transaction last deleted from a
	// candidate.
	lastTouch map[uint64]time.Time
	// firstOfRun is the first segment this store started: older ones get
	// no more in-flight entries deleted soon.
	firstOfRun uint64
	// sizes are the bytes of the segment files in the directory.
	sizes map[uint64]int64
	// fault is Options.segmentFault.
	fault func(call string) error
	// sealed is the segment the last rotate sealed, 0 if none.
	sealed uint64
	// upgraded is true once the file's schema says it may hold locators;
	// upgrading while the running transaction says so.
	upgraded, upgrading bool
	// counts are what is live in each segment as committed; txCounts the
	// running transaction's changes to them (see locator.go).
	counts, txCounts map[uint64]segmentCount
	// readers are the store's read transactions, and txid the ID of the
	// running (then last committed) write transaction.
	readers readTxs
	txid    int
	// closing runs the closes of removed segments' files.
	closing sync.WaitGroup
}

// segmentSize is the size at which a store with opts seals a segment: a
// sixteenth of the size cap at most, so that what the segments hold dead
// (see fileRoom) is a small part of the cap.
func segmentSize(opts Options) int64 {
	size := opts.segmentSize
	if size <= 0 {
		size = defaultSegmentSize
	}
	if opts.MaxFileSize > 0 {
		size = max(min(size, int64(opts.MaxFileSize)/16), 16<<10)
	}
	return size
}

func newSegmentLog(dir string, readOnly bool, maxSize int64) *segmentLog {
	if maxSize <= 0 {
		maxSize = defaultSegmentSize
	}
	return &segmentLog{dir: dir, readOnly: readOnly, maxSize: maxSize, files: map[uint64]*segmentFile{}, emptied: map[uint64]bool{},
		touched: map[uint64]bool{}, candidates: map[uint64]bool{}, sizes: map[uint64]int64{},
		lastTouch: map[uint64]time.Time{}, counts: map[uint64]segmentCount{}, txCounts: map[uint64]segmentCount{}}
}

func (l *segmentLog) path(n uint64) string { return filepath.Join(l.dir, segmentName(l.id, n)) }

// acquire returns segment n open for reading; release it after the read.
func (l *segmentLog) acquire(n uint64) (*segmentFile, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sf, ok := l.files[n]; ok {
		sf.refs++
		return sf, nil
	}
	f, err := os.Open(l.path(n))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read segment %s: %w", l.path(n), errSegmentMissing)
	}
	if err != nil {
		return nil, fmt.Errorf("read segment %s: %w", l.path(n), err)
	}
	sf := &segmentFile{f: f, refs: 1}
	l.files[n] = sf
	return sf, nil
}

func (l *segmentLog) release(sf *segmentFile) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sf.refs--
}

// read returns the record loc points at, for entry id, in a buffer of its
// own. A frame that fails its check returns the bytes where the record
// should be (for quarantine) and an error wrapping ErrCorrupt.
func (l *segmentLog) read(loc locator, id uint64) ([]byte, error) {
	sf, err := l.acquire(loc.seg)
	if err != nil {
		return nil, err
	}
	defer l.release(sf)
	b := make([]byte, frameLen(int(loc.size)))
	n, err := sf.f.ReadAt(b, int64(loc.off))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read entry %d from segment %s at %d: %w", id, l.path(loc.seg), loc.off, err)
	}
	b = b[:n]
	if err := checkFrame(b, id, int(loc.size)); err != nil {
		rec := b[min(len(b), frameHeaderLen):]
		return rec, fmt.Errorf("entry %d in segment %s at %d: %w", id, l.path(loc.seg), loc.off, err)
	}
	return b[frameHeaderLen:], nil
}

// stage adds the frame of record rec of entry id to the running
// transaction's write and returns where it will be. The first frame of a
// transaction starts a new segment when the active one is full, broken or
// not started yet.
func (l *segmentLog) stage(id uint64, rec []byte) (locator, error) {
	if l.readOnly {
		return locator{}, errors.New("the record log is open read-only")
	}
	if len(l.pending) == 0 && (l.activeFile == nil || l.broken || l.activeSize >= l.maxSize) {
		if err := l.rotate(); err != nil {
			return locator{}, err
		}
	}
	loc := locator{seg: l.active, off: uint64(l.activeSize) + uint64(len(l.pending)), size: uint32(len(rec))}
	l.pending = appendFrame(l.pending, id, rec)
	// A delete earlier in this transaction may have emptied the segment:
	// it holds this frame now, and must not be removed at the commit.
	delete(l.emptied, loc.seg)
	return loc, nil
}

// rotate seals the active segment and starts the next one. The sealed
// segment's number is left in sealed for the caller, which knows whether
// anything lives in it.
func (l *segmentLog) rotate() error {
	n := l.next
	l.next = n + 1 // a failed start must not leave its number to the next try
	path := l.path(n)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("start segment %s: %w", path, err)
	}
	// The name must be durable before any commit points into the file.
	if err := syncFile(l.dir); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("start segment %s: %w", path, err)
	}
	l.sealed = l.active
	l.mu.Lock()
	l.files[n] = &segmentFile{f: f}
	l.mu.Unlock()
	l.active, l.activeFile, l.activeSize, l.broken = n, f, 0, false
	l.sizes[n] = 0
	return nil
}

// flush writes the running transaction's frames to the active segment in
// one write and syncs it; the transaction may commit only after it
// returned nil. A failed write is cut off again where it can be; either
// way the segment is not appended to again.
func (l *segmentLog) flush() error {
	if len(l.pending) == 0 {
		return nil
	}
	path := l.path(l.active)
	if err := l.injected("write", func() error { _, err := l.activeFile.WriteAt(l.pending, l.activeSize); return err }); err != nil {
		l.broken = true
		_ = l.activeFile.Truncate(l.activeSize)
		return fmt.Errorf("append %d bytes to segment %s: %w", len(l.pending), path, err)
	}
	l.activeSize += int64(len(l.pending))
	l.sizes[l.active] = l.activeSize
	l.mu.Lock()
	l.physical += int64(len(l.pending))
	l.mu.Unlock()
	l.pending = l.pending[:0]
	if cap(l.pending) > maxPendingKept {
		l.pending = nil // a rare big batch: its buffer is not kept for the next
	}
	if err := l.injected("sync", func() error { return syncData(l.activeFile) }); err != nil {
		// What the kernel kept of the write is unknown after a failed
		// sync: nothing is appended to this file again.
		l.broken = true
		return fmt.Errorf("sync segment %s: %w", path, err)
	}
	return nil
}

// injected runs call unless the test hook fails it first.
func (l *segmentLog) injected(name string, call func() error) error {
	if l.fault != nil {
		if err := l.fault(name); err != nil {
			return err
		}
	}
	return call()
}

// pendingBytes is what the running transaction will append.
func (l *segmentLog) pendingBytes() int64 { return int64(len(l.pending)) }

// bytes is the size of this log's segment files, listed now.
func (l *segmentLog) bytes() (int64, error) {
	var n int64
	if l.id == 0 {
		return 0, nil
	}
	_, sizes, err := listSegments(l.dir, l.id)
	for _, size := range sizes {
		n += size
	}
	return n, err
}

// physicalBytes is the bytes of the segment files in the directory.
func (l *segmentLog) physicalBytes() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.physical
}

// begin starts a write transaction's use of the log.
func (l *segmentLog) begin() {
	l.pending = l.pending[:0]
	clear(l.emptied)
	clear(l.touched)
	clear(l.txCounts)
}

// rolledBack forgets what a failed transaction staged: its frames, if
// written, are dead bytes of the segment.
func (l *segmentLog) rolledBack() {
	l.pending = l.pending[:0]
	l.upgrading = false
	clear(l.emptied)
	clear(l.touched)
	clear(l.txCounts)
}

// committed removes the segments the committed transaction emptied. The
// active one goes too once it is a quarter full: the next write starts a
// new one. A smaller one stays, so that a relay whose destinations keep
// up, and whose active segment empties again and again, does not create
// and remove a file each time.
func (l *segmentLog) committed() error {
	l.pending = l.pending[:0]
	l.upgraded = l.upgraded || l.upgrading
	l.upgrading = false
	l.commitCounts()
	var errs []error
	removed := false
	for n := range l.emptied {
		if n == l.active {
			if l.activeSize < l.maxSize/4 {
				continue
			}
			l.active, l.activeFile, l.activeSize = 0, nil, 0
		}
		if err := l.remove(n); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = true
	}
	clear(l.emptied)
	for n := range l.touched {
		if _, ok := l.sizes[n]; ok && n != l.active {
			l.candidates[n] = true
			l.lastTouch[n] = time.Now()
		}
	}
	clear(l.touched)
	if removed {
		if err := syncFile(l.dir); err != nil {
			errs = append(errs, err)
		}
	}
	l.closeRetired(false)
	return errors.Join(errs...)
}

// remove deletes segment n's file; an open file stays open for the reads
// of older transactions until its grace is over.
func (l *segmentLog) remove(n uint64) error {
	path := l.path(n)
	fi, statErr := os.Stat(path)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove segment %s: %w", path, err)
	}
	delete(l.sizes, n)
	delete(l.candidates, n)
	delete(l.lastTouch, n)
	l.mu.Lock()
	defer l.mu.Unlock()
	if statErr == nil {
		l.physical -= fi.Size()
	}
	if sf, ok := l.files[n]; ok {
		sf.retiredAt, sf.retiredTx = time.Now(), l.txid
	}
	return nil
}

// closeRetired closes the files of removed segments that no reader can
// need any more (all of them at Close).
//
// Closing the last descriptor of a removed file frees its blocks, which
// can take the file system many milliseconds: retired files are closed in
// a goroutine of their own, not in the commit loop that calls this.
func (l *segmentLog) closeRetired(all bool) {
	l.mu.Lock()
	var done []*os.File
	for n, sf := range l.files {
		if all || (!sf.retiredAt.IsZero() && sf.refs == 0 &&
			(l.readers.allSee(sf.retiredTx) || time.Since(sf.retiredAt) > retireGrace)) {
			done = append(done, sf.f)
			delete(l.files, n)
		}
	}
	l.mu.Unlock()
	if len(done) == 0 {
		return
	}
	l.closing.Go(func() {
		for _, f := range done {
			_ = f.Close()
		}
	})
}

// close closes every segment file, and waits for the closes of removed
// ones to finish.
func (l *segmentLog) close() {
	l.closeRetired(true)
	l.closing.Wait()
	l.activeFile = nil
}

// flushTx writes what the running transaction staged (see flush), and
// marks the file schema 3 in the transaction that first points into the
// log.
func (l *segmentLog) flushTx(tx *bolt.Tx) error {
	if len(l.pending) == 0 {
		return nil
	}
	if !l.upgraded {
		if err := tx.Bucket(bucketMeta).Put(keySchema, u64(schemaVersion)); err != nil {
			return fmt.Errorf("mark schema %d: %w", schemaVersion, err)
		}
		l.upgrading = true
	}
	return l.flush()
}
