package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

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
			return removeFromQueue(tx, from, seqs, nil)
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
				_, sz, _ := deadEntryRef(nil, v)
				size := int64(sz)
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
			if err := s.log.putRecord(tx, b, id, rec); err != nil {
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
