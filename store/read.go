package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

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
	badSizes := map[uint64]uint64{} // what the queue says a corrupt record's size is
	touched := 0                    // bytes read through the memory map
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
			raw, fresh, rerr := s.log.getRecord(entries, ref.id)
			if rerr != nil && !errors.Is(rerr, ErrCorrupt) {
				// The log could not be read: the queue waits, nothing
				// is dropped.
				return rerr
			}
			if raw == nil && rerr == nil {
				bad = append(bad, seq)
				continue
			}
			if rerr != nil || uint64(len(raw)) != ref.size {
				// A damaged page can give a record any length: never
				// copy one whose size is not the one its queue recorded.
				bad = append(bad, seq)
				badIDs, badSizes[ref.id] = append(badIDs, ref.id), ref.size
				continue
			}
			if !fresh {
				touched += len(raw)
			}
			e, err := decodeRecord(ownRecord(raw, fresh))
			if err != nil {
				bad = append(bad, seq)
				badIDs, badSizes[ref.id] = append(badIDs, ref.id), ref.size
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
		if err := s.quarantine(ctx, queue, bad, badIDs, badSizes); err != nil {
			return items, 0, err
		}
	}
	return items, len(bad), nil
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

// quarantine moves corrupt entries out of the way, keeping their bytes (no
// more than sizes says the record had), and removes queue positions that
// point at them.
func (s *Store) quarantine(ctx context.Context, queue string, seqs, ids []uint64, sizes map[uint64]uint64) error {
	return s.write(ctx, nil, func(tx *bolt.Tx) error {
		entries, refs, qb := tx.Bucket(bucketEntries), tx.Bucket(bucketRefs), tx.Bucket(bucketQuarantine)
		for _, id := range ids {
			raw, _, err := s.log.getRecord(entries, id)
			if err != nil && !errors.Is(err, ErrCorrupt) {
				return err
			}
			if raw == nil {
				continue
			}
			if n, ok := sizes[id]; ok && uint64(len(raw)) > n {
				raw = raw[:n]
			}
			// The store counted the record at its full size; a frame cut
			// short gives fewer bytes.
			counted := int64(len(raw))
			if loc, ok := decodeLocator(entries.Get(u64(id))); ok {
				counted = int64(loc.size)
			}
			if err := qb.Put(u64(id), append([]byte(nil), raw...)); err != nil {
				return err
			}
			if err := addStats(tx, keyTotal, -1, -counted); err != nil {
				return err
			}
			if err := s.log.deleteRecord(tx, entries, id); err != nil {
				return err
			}
			if err := refs.Delete(u64(id)); err != nil {
				return err
			}
		}
		return removeFromQueue(tx, queue, seqs, nil)
	})
}
