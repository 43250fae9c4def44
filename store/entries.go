package store

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// An entry's value in the entries bucket takes one of three forms:
//
//   - schema 3: a record bigger than half a bbolt page is appended to the
//     record log (segment.go) and the value is its locator (locator.go).
//     In bbolt's own pages such a record took whole pages of its own, and
//     each commit wrote them besides the tree pages; in the log it is
//     written once, as it is, with the other records of its commit.
//   - small records are plain values, sharing leaves: a frame of their
//     own would save nothing, the leaf is written anyway for the key.
//   - schema 2 (written by earlier versions): a big record alone in a
//     bucket of its own under recordKey, so that a Put or Ack did not
//     rewrite the records beside it in a shared leaf.
//
// Schema 1 kept every record as a plain value. Records of every schema are
// read and deleted as they are, so a data dir keeps working across an
// upgrade with no migration.

// recordKey is the key of the record inside an entry's bucket (schema 2).
var recordKey = []byte{'r'}

// recordLeafOverhead is what precedes a big record in its bucket's leaf:
// bbolt's page header (16 bytes), the leaf element (16) and recordKey.
const recordLeafOverhead = 16 + 16 + 1

// getRecord returns entry id's record, or nil if there is none. With fresh
// false the bytes are bbolt's, valid only during the transaction; with
// fresh true (a record read from the log) they are the caller's. A frame
// of the log that fails its check returns the bytes found where the record
// should be and an error wrapping ErrCorrupt; a segment that cannot be
// read returns only an error.
func (l *segmentLog) getRecord(entries *bolt.Bucket, id uint64) (raw []byte, fresh bool, err error) {
	k := u64(id)
	v := entries.Get(k)
	if v == nil {
		// Schema 2: a bucket of its own, or nothing.
		if b := entries.Bucket(k); b != nil {
			return b.Get(recordKey), false, nil
		}
		return nil, false, nil
	}
	if loc, ok := decodeLocator(v); ok {
		raw, err := l.read(loc, id)
		return raw, true, err
	}
	return v, false, nil
}

// recordInfo returns the size and receive time of entry id's record, or
// ok false when it has none (or none readable). A locator says both: the
// log is not read.
func (l *segmentLog) recordInfo(entries *bolt.Bucket, id uint64) (size int, at int64, ok bool) {
	if loc, isLoc := decodeLocator(entries.Get(u64(id))); isLoc {
		return int(loc.size), loc.at, true
	}
	raw, _, err := l.getRecord(entries, id)
	if raw == nil || err != nil {
		return 0, 0, false
	}
	at, ok = recordReceivedAt(raw)
	return len(raw), at, ok
}

// putRecord stores rec as entry id, which must be new: a big record in the
// log, staged for the running transaction's write (see segmentLog.flush),
// a small one as a plain value.
func (l *segmentLog) putRecord(tx *bolt.Tx, entries *bolt.Bucket, id uint64, rec []byte) error {
	k := u64(id)
	if len(rec) <= tx.DB().Info().PageSize/2 {
		if err := entries.Put(k, rec); err != nil {
			return fmt.Errorf("put entry %d: %w", id, err)
		}
		return nil
	}
	at, ok := recordReceivedAt(rec)
	if !ok {
		return fmt.Errorf("put entry %d: %w", id, errors.New("record shorter than its header"))
	}
	loc, err := l.stage(id, rec)
	if err != nil {
		return fmt.Errorf("put entry %d: %w", id, err)
	}
	if sealed := l.sealed; sealed != 0 {
		l.sealed = 0
		if n, _ := l.segmentStats(sealed); n == 0 {
			l.emptied[sealed] = true // sealed with nothing live in it
		}
	}
	loc.at = at
	if err := entries.Put(k, loc.encode()); err != nil {
		return fmt.Errorf("put entry %d: %w", id, err)
	}
	l.addSegmentStats(loc.seg, 1, loc.frameBytes())
	return nil
}

// deleteRecord removes entry id; removing one that is not there is not
// an error. A record in the log leaves its frame behind: the segment goes
// once nothing in it is live (segmentLog.committed).
func (l *segmentLog) deleteRecord(tx *bolt.Tx, entries *bolt.Bucket, id uint64) error {
	k := u64(id)
	v := entries.Get(k)
	if v == nil {
		if entries.Bucket(k) != nil {
			return entries.DeleteBucket(k)
		}
		return nil
	}
	loc, isLoc := decodeLocator(v)
	if err := entries.Delete(k); err != nil {
		return err
	}
	if isLoc {
		if l.addSegmentStats(loc.seg, -1, -loc.frameBytes()) == 0 {
			l.emptied[loc.seg] = true
		}
		l.touched[loc.seg] = true
	}
	return nil
}

// ownRecord returns raw as bytes the caller owns.
func ownRecord(raw []byte, fresh bool) []byte {
	if fresh {
		return raw
	}
	return append([]byte(nil), raw...)
}
