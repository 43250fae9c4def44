package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
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
			var want uint64 // the record's size, as the list recorded it
			switch r.src.Kind {
			case SourceQueue:
				var ref queueRef
				if ref, ok = decodeQueueRef(v); ok {
					rec.Pos, id, at, want = binary.BigEndian.Uint64(k), ref.id, ref.receivedAt, ref.size
				}
			case SourceDeadLetters:
				var d *DeadLetter
				var err error
				if d, want, err = decodeDeadLetter(binary.BigEndian.Uint64(k), v); err == nil {
					rec.Pos, rec.Dead, id, haveAt = d.Seq, d, d.EntryID, false
				} else {
					ok = false
				}
			case SourceArchive:
				if ok = len(k) == 16 && len(v) == 8; ok {
					at, id, want = int64(binary.BigEndian.Uint64(k)), binary.BigEndian.Uint64(k[8:]), binary.BigEndian.Uint64(v)
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
			raw, fresh, rerr := s.log.getRecord(entries, id)
			if rerr != nil || raw == nil || uint64(len(raw)) != want {
				p.skipped++ // gone, unreadable, or of a length a damaged page made up
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
			switch {
			case !r.body:
				e.Body = nil
			case !fresh:
				e.Body = bytes.Clone(e.Body) // out of the memory map
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
		if !advanced(req.after, p.last) {
			return res, nil // keys out of order: a damaged page; see advanced
		}
		req.after = p.last
	}
}

// advanced reports whether a page of a scan ended past where it started.
// Keys come in order from an intact file; a damaged leaf can hand them out
// of order, and a scan that went on from a key it already passed would go
// round forever.
func advanced(after, last []byte) bool {
	return after == nil || bytes.Compare(last, after) > 0
}
