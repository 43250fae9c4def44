package store

import (
	"errors"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
)

// What Open does with the record log, inside its first transaction:
// every segment a committed locator points into must be there and long
// enough (else the store is damaged, and Open refuses it); every other
// segment file is an orphan (frames of a transaction that never
// committed, or a segment whose last entry went just before a crash) and
// is removed; the per-segment counts are taken from the locators.
// Nothing is ever appended to a segment of an earlier run: the next write
// starts a new one, so a torn frame at the end of the last one is never
// written after.

// errMissingSegment is wrapped by Open's refusal of a data dir whose
// entries point into a segment file that is gone or cut short.
var errMissingSegment = errors.New("segment file is missing or cut short")

// recover checks the segments against the committed locators, removes
// orphans and counts what is live in each segment. A read-only store changes nothing: it
// only learns where the numbering stands.
func (l *segmentLog) recover(tx *bolt.Tx) error {
	if l.id == 0 {
		return nil // a read-only open of a file that never had a log
	}
	nums, sizes, err := listSegments(l.dir, l.id)
	if err != nil {
		return err
	}
	for _, n := range nums {
		l.next = max(l.next, n+1)
	}
	l.next = max(l.next, 1)
	if !tx.Writable() {
		return nil
	}
	live, ends := liveSegments(tx)
	for seg, end := range ends {
		l.next = max(l.next, seg+1)
		size, ok := sizes[seg]
		if ok && size >= end {
			continue
		}
		what := "is missing"
		if ok {
			what = fmt.Sprintf("holds %d bytes, and entries point up to byte %d", size, end)
		}
		return fmt.Errorf("%w: %s %s (%d entries point into it): the data dir is left as it is; "+
			"put the file back if it was moved, or copy what can still be read into a new store with "+
			"`pyrorelay salvage --data-dir %s --to NEWDIR`: %w",
			ErrDamaged, l.path(seg), what, live[seg].count, l.dir, errMissingSegment)
	}
	removed := false
	l.firstOfRun = l.next
	for _, n := range nums {
		if c, ok := live[n]; ok {
			l.physical += sizes[n]
			l.sizes[n] = sizes[n]
			if c.bytes*compactRatio <= sizes[n] {
				l.candidates[n] = true
			}
			continue
		}
		if err := os.Remove(l.path(n)); err != nil {
			return fmt.Errorf("remove orphan segment %s: %w", l.path(n), err)
		}
		removed = true
	}
	if removed {
		if err := syncFile(l.dir); err != nil {
			return err
		}
	}
	l.counts = live
	if tx.Bucket(bucketSegments) != nil {
		if err := tx.DeleteBucket(bucketSegments); err != nil {
			return fmt.Errorf("drop the segments bucket: %w", err)
		}
	}
	return nil
}
