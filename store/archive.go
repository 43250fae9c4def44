package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The archive keeps entries after their last queue let go of them, so that
// delivered profiles can be replayed later. An archived entry stays where it
// is in the "entries" bucket (stored once, however many destinations it
// went to); the "archive" bucket only indexes it by age:
//
//	key:   received-at (8 bytes, unix nanoseconds, big endian) + entry id (8)
//	value: record size (8)
//
// so a sweep walks oldest first and stops at the first young entry. The
// archive's count and bytes are kept under keyArchive in "stats"; they are
// not part of the store's total (e/total), which counts what is still
// waiting somewhere: the archive has its own budget.
var (
	bucketArchive = []byte("archive")
	keyArchive    = []byte("a/archive")
)

// sweepBatch bounds one sweep transaction, so that a large archive is
// trimmed in steps that never hold the writer for long.
const sweepBatch = 1000

// archivePolicy bounds the archive as entries enter it. A Store that
// archives holds one (Store.archive); release consults it.
type archivePolicy struct {
	// maxBytes bounds the archive's bytes; 0 is no bound of its own.
	maxBytes int64
}

// newArchivePolicy is the policy of a store with opts, or nil when it does
// not archive.
func newArchivePolicy(opts Options) *archivePolicy {
	if opts.ArchiveRetention <= 0 && opts.ArchiveMaxBytes <= 0 {
		return nil
	}
	return &archivePolicy{maxBytes: archiveCap(opts)}
}

// archiveCap is the most the archive may hold: its own bound, and never
// more than the store's total bound, which it shares with the queues
// (see makeRoom).
func archiveCap(opts Options) int64 {
	c, total := opts.ArchiveMaxBytes, opts.Limits.MaxTotalBytes
	if total > 0 && (c <= 0 || c > total) {
		c = total
	}
	return c
}

func (s *Store) archiving() bool { return s.archive != nil }

func archiveKey(receivedAt int64, id uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, uint64(receivedAt))
	binary.BigEndian.PutUint64(k[8:], id)
	return k
}

// archiveEntryRef is an entryRef for the archive: receive time and entry
// in the key, the record's size as the value.
func archiveEntryRef(k, v []byte) (uint64, uint64, bool) {
	if len(k) != 16 || len(v) != 8 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(k[8:]), binary.BigEndian.Uint64(v), true
}

// recordReceivedAt reads the receive time out of a record's header without
// decoding the rest.
func recordReceivedAt(raw []byte) (int64, bool) {
	if len(raw) < recordHeaderLen {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(raw[6:14])), true
}

// archiveRetired is called by release when the last reference to entry id
// is gone. If the store archives, it indexes the entry in the archive and
// reports true: the caller must then keep the entry. Otherwise it reports
// false and the caller deletes it.
//
// The archive's size is bounded here, as the entry enters it: the oldest
// archived entries beyond the bound go in the same transaction, so the
// archive never outgrows it between sweeps. The retention is a matter of
// time and is left to SweepArchive.
func archiveRetired(l *segmentLog, tx *bolt.Tx, id uint64, policy *archivePolicy) (bool, error) {
	if policy == nil {
		return false, nil
	}
	size, at, ok := l.recordInfo(tx.Bucket(bucketEntries), id)
	if !ok {
		return false, nil // nothing readable to keep
	}
	ab, err := tx.CreateBucketIfNotExists(bucketArchive)
	if err != nil {
		return false, fmt.Errorf("archive bucket: %w", err)
	}
	if policy.maxBytes > 0 && int64(size) > policy.maxBytes {
		return false, nil // larger than the whole archive may be
	}
	if err := ab.Put(archiveKey(at, id), u64(uint64(size))); err != nil {
		return false, fmt.Errorf("archive entry %d: %w", id, err)
	}
	if err := addStats(tx, keyArchive, 1, int64(size)); err != nil {
		return false, err
	}
	if policy.maxBytes > 0 {
		if _, err := trimArchive(l, tx, noCutoff, policy.maxBytes, sweepBatch); err != nil {
			return false, fmt.Errorf("bound the archive: %w", err)
		}
	}
	// The entry itself may have been the oldest: trimArchive deleted it
	// then, and the caller must not delete it again.
	return true, nil
}

// noCutoff is a receive time older than every entry's.
const noCutoff = int64(-1 << 63)

// trimArchive deletes archived entries, oldest first, while they were
// received before cutoff or the archive holds more than keep bytes (keep
// < 0: no size bound), at most limit of them.
func trimArchive(l *segmentLog, tx *bolt.Tx, cutoff, keep int64, limit int) (SweepResult, error) {
	var res SweepResult
	ab := tx.Bucket(bucketArchive)
	if ab == nil {
		return res, nil
	}
	_, bytes := getStats(tx, keyArchive)
	var keys [][]byte
	c := ab.Cursor()
	k, v := c.First()
	if k == nil && bytes != 0 {
		// Counters that drifted from an empty archive would hold room
		// that is not there.
		return res, tx.Bucket(bucketStats).Delete(keyArchive)
	}
	for ; k != nil && len(keys) < limit; k, v = c.Next() {
		if len(k) != 16 || len(v) != 8 {
			keys = append(keys, append([]byte(nil), k...)) // unreadable index: drop it
			continue
		}
		old := int64(binary.BigEndian.Uint64(k)) < cutoff
		over := keep >= 0 && bytes > keep
		if !old && !over {
			break // oldest first: nothing after this one qualifies
		}
		size := int64(binary.BigEndian.Uint64(v))
		bytes -= size
		res.Bytes += size
		keys = append(keys, append([]byte(nil), k...))
	}
	refs, entries := tx.Bucket(bucketRefs), tx.Bucket(bucketEntries)
	for _, k := range keys {
		if err := ab.Delete(k); err != nil {
			return res, err
		}
		if len(k) == 16 {
			id := k[8:]
			if refs.Get(id) == nil {
				if err := l.deleteRecord(tx, entries, binary.BigEndian.Uint64(id)); err != nil {
					return res, err
				}
			}
		}
	}
	res.Entries = len(keys)
	return res, addStats(tx, keyArchive, -int64(len(keys)), -res.Bytes)
}

// unarchive removes entry id from the archive, and the entry with it, if it
// is archived. Purges use it: what an operator deletes must not stay behind
// in the archive.
func unarchive(l *segmentLog, tx *bolt.Tx, id uint64, receivedAt int64) error {
	ab := tx.Bucket(bucketArchive)
	if ab == nil {
		return nil
	}
	k := archiveKey(receivedAt, id)
	v := ab.Get(k)
	if v == nil {
		return nil
	}
	if err := ab.Delete(k); err != nil {
		return err
	}
	size := int64(0)
	if len(v) == 8 {
		size = int64(binary.BigEndian.Uint64(v))
	}
	if err := addStats(tx, keyArchive, -1, -size); err != nil {
		return err
	}
	if tx.Bucket(bucketRefs).Get(u64(id)) != nil {
		return nil // referenced again: keep the entry
	}
	return l.deleteRecord(tx, tx.Bucket(bucketEntries), id)
}

// ArchiveStats describes the archive.
type ArchiveStats struct {
	// Retention and MaxBytes are this store's settings (zero when it does
	// not archive, or was opened read-only by a tool).
	Retention time.Duration
	MaxBytes  int64
	Entries   int64
	Bytes     int64
	Oldest    time.Time // zero when empty
	Newest    time.Time // zero when empty
}

func archiveStats(tx *bolt.Tx) ArchiveStats {
	var st ArchiveStats
	st.Entries, st.Bytes = getStats(tx, keyArchive)
	ab := tx.Bucket(bucketArchive)
	if ab == nil {
		return st
	}
	c := ab.Cursor()
	if k, _ := c.First(); len(k) == 16 {
		st.Oldest = time.Unix(0, int64(binary.BigEndian.Uint64(k)))
	}
	if k, _ := c.Last(); len(k) == 16 {
		st.Newest = time.Unix(0, int64(binary.BigEndian.Uint64(k)))
	}
	return st
}

// SweepResult says what a sweep removed.
type SweepResult struct {
	Entries int
	Bytes   int64
}

// SweepArchive deletes archived entries received before now minus the
// retention and then, oldest first, those beyond the archive's size cap.
// It commits in steps of sweepBatch entries. A store that does not archive
// sweeps nothing: entries archived by an earlier run stay until a run with
// an archive setting sweeps them.
func (s *Store) SweepArchive(ctx context.Context, now time.Time) (SweepResult, error) {
	if !s.archiving() {
		return SweepResult{}, nil
	}
	cutoff, keep := noCutoff, int64(-1)
	if s.opts.ArchiveRetention > 0 {
		cutoff = now.Add(-s.opts.ArchiveRetention).UnixNano()
	}
	if c := archiveCap(s.opts); c > 0 {
		keep = c
	}
	res, err := s.trimArchiveSteps(ctx, cutoff, keep)
	if err != nil {
		return res, fmt.Errorf("sweep archive: %w", err)
	}
	return res, nil
}

// PurgeArchive deletes every archived entry received before until (all of
// them when until is zero), oldest first, in steps of sweepBatch. It works
// whatever the store's archive settings, and on a file at its size cap:
// its writes may use the headroom kept for deletes.
func (s *Store) PurgeArchive(ctx context.Context, until time.Time) (SweepResult, error) {
	cutoff := int64(math.MaxInt64)
	if !until.IsZero() {
		cutoff = until.UnixNano()
	}
	keep := int64(-1)
	res, err := s.trimArchiveSteps(ctx, cutoff, keep)
	if err != nil {
		return res, fmt.Errorf("purge archive: %w", err)
	}
	return res, nil
}

func (s *Store) trimArchiveSteps(ctx context.Context, cutoff, keep int64) (SweepResult, error) {
	var total SweepResult
	for {
		var step SweepResult
		err := s.writeOp(ctx, &op{frees: true, fn: func(tx *bolt.Tx) error {
			var err error
			step, err = trimArchive(s.log, tx, cutoff, keep, sweepBatch)
			return err
		}})
		if err != nil {
			return total, err
		}
		total.Entries += step.Entries
		total.Bytes += step.Bytes
		if step.Entries < sweepBatch {
			return total, nil
		}
	}
}
