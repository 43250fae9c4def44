package store

import (
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// release drops one reference to an entry and deletes it with the last,
// or archives it if the store archives.
func (s *Store) release(tx *bolt.Tx, id uint64) error {
	refs := tx.Bucket(bucketRefs)
	v := refs.Get(u64(id))
	if len(v) != 4 || binary.BigEndian.Uint32(v) <= 1 {
		if err := refs.Delete(u64(id)); err != nil {
			return err
		}
		entries := tx.Bucket(bucketEntries)
		if size, _, ok := s.log.recordInfo(entries, id); ok {
			if err := addStats(tx, keyTotal, -1, -int64(size)); err != nil {
				return err
			}
		}
		if archived, err := archiveRetired(s.log, tx, id, s.archive); archived || err != nil {
			return err
		}
		return s.log.deleteRecord(tx, entries, id)
	}
	return refs.Put(u64(id), u32(binary.BigEndian.Uint32(v)-1))
}

// Ack removes delivered positions from queue. Acks of several callers share
// one commit; acking a position twice is harmless.
func (s *Store) Ack(ctx context.Context, queue string, seqs ...uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	err := s.writeOp(ctx, &op{frees: true, fn: func(tx *bolt.Tx) error { return removeFromQueue(tx, queue, seqs, s.release) }})
	if err != nil {
		return fmt.Errorf("ack %d entries of queue %q: %w", len(seqs), queue, err)
	}
	return nil
}
