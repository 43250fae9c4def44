package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A segment is removed only once nothing in it is live, so a few entries
// that stay (dead letters, archived entries, entries a destination keeps
// refusing) would pin whole segments of dead frames, which count against
// the size cap (see fileRoom). So a sealed segment whose live frames are
// at most a 1/compactRatio of its bytes has them copied forward: appended
// to the active segment, and their locators changed, in one transaction of
// the commit loop per compactBatch bytes. The segment then empties and goes
// like any other. A segment just sealed is left alone, and so is one whose
// entries were deleted within the last defaultCompactIdle: the entries
// still in it are then on their way to being acked (a backlog draining
// oldest first empties its segments one after the other, and copying the
// last quarter of each forward would only write it twice). Until a copy
// commits, readers find the old frame, which stays until the commit that
// empties its segment (and a grace after it for older read transactions).

const (
	compactRatio       = 4
	compactBatch       = 4 << 20
	defaultCompactIdle = 10 * time.Second
)

// compactLog copies forward one batch of the first segment that needs it.
// Only the commit loop calls it, between transactions.
func (s *Store) compactLog() {
	l := s.log
	for seg := range l.candidates {
		if seg == l.active || (seg >= l.firstOfRun && seg+2 >= l.next) || time.Since(l.lastTouch[seg]) < s.compactIdle() {
			continue // the active segment, the one just sealed, or one still draining
		}
		if _, live := l.segmentStats(seg); live*compactRatio > l.sizes[seg] {
			delete(l.candidates, seg)
			continue
		}
		moved := 0
		o := &op{frees: true, fn: func(tx *bolt.Tx) error {
			var err error
			moved, err = s.copyForward(tx, seg)
			return err
		}}
		if err := s.runWith([]*op{o}, true); err != nil || moved == 0 {
			// Unreadable frames stay where they are, for quarantine
			// when their entries are read; the copy is tried again
			// when the segment's count next changes.
			delete(l.candidates, seg)
		}
		return
	}
}

func (s *Store) compactIdle() time.Duration {
	switch d := s.opts.compactIdle; {
	case d < 0:
		return 0
	case d == 0:
		return defaultCompactIdle
	default:
		return d
	}
}

// copyForward moves up to compactBatch bytes of the live records of
// segment seg to the active segment, and reports how many it moved.
func (s *Store) copyForward(tx *bolt.Tx, seg uint64) (int, error) {
	entries := tx.Bucket(bucketEntries)
	type live struct {
		id  uint64
		loc locator
	}
	var found []live
	var bytes int64
	c := entries.Cursor()
	for k, v := c.First(); k != nil && bytes < compactBatch; k, v = c.Next() {
		if loc, ok := decodeLocator(v); ok && loc.seg == seg {
			found = append(found, live{binary.BigEndian.Uint64(k), loc})
			bytes += loc.frameBytes()
		}
	}
	moved := 0
	for _, f := range found {
		rec, err := s.log.read(f.loc, f.id)
		if errors.Is(err, ErrCorrupt) {
			continue
		}
		if err != nil {
			return moved, err
		}
		err = s.log.deleteRecord(tx, entries, f.id)
		if err == nil {
			err = s.log.putRecord(tx, entries, f.id, rec)
		}
		if err != nil {
			return moved, fmt.Errorf("copy entry %d out of segment %d: %w", f.id, seg, err)
		}
		moved++
	}
	return moved, nil
}
