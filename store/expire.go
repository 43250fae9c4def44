package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ReasonExpired is the dead-letter reason of entries that waited longer
// than their queue's maximum age.
const ReasonExpired = "expired"

// expireBatch bounds one expiry transaction, so that a long backlog is
// moved in steps that do not hold the writer for long.
const expireBatch = 1000

// Expire moves the entries of queue received before cutoff to its
// dead-letter list with reason "expired", oldest first, and reports how
// many it moved. Entries are never deleted: the operator decides.
func (s *Store) Expire(ctx context.Context, queue string, cutoff time.Time) (int, error) {
	total := 0
	for {
		n := 0
		err := s.write(ctx, nil, func(tx *bolt.Tx) error {
			n = 0
			q := tx.Bucket(bucketQueues).Bucket([]byte(queue))
			if q == nil {
				return nil
			}
			var seqs []uint64
			c := q.Cursor()
			for k, v := c.First(); k != nil && len(seqs) < expireBatch; k, v = c.Next() {
				ref, ok := decodeQueueRef(v)
				if !ok || ref.receivedAt >= cutoff.UnixNano() {
					// Positions are in arrival order, so the first young
					// one ends the scan (requeued entries may break the
					// order; they are caught on a later pass).
					break
				}
				seqs = append(seqs, binary.BigEndian.Uint64(k))
			}
			now := time.Now()
			for _, seq := range seqs {
				if err := deadLetterTx(tx, queue, seq, DeadLetter{At: now, Reason: ReasonExpired}); err != nil {
					return err
				}
			}
			n = len(seqs)
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("expire queue %q: %w", queue, err)
		}
		total += n
		if n < expireBatch {
			return total, nil
		}
	}
}
