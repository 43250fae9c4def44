package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// queueRef is a queue's value: which entry, how big, and when it arrived,
// so that stats and age need no entry read.
type queueRef struct {
	id         uint64
	size       uint64
	receivedAt int64
}

func (r queueRef) encode() []byte {
	b := make([]byte, 24)
	binary.BigEndian.PutUint64(b, r.id)
	binary.BigEndian.PutUint64(b[8:], r.size)
	binary.BigEndian.PutUint64(b[16:], uint64(r.receivedAt))
	return b
}

func decodeQueueRef(b []byte) (queueRef, bool) {
	if len(b) != 24 {
		return queueRef{}, false
	}
	return queueRef{
		id:         binary.BigEndian.Uint64(b),
		size:       binary.BigEndian.Uint64(b[8:]),
		receivedAt: int64(binary.BigEndian.Uint64(b[16:])),
	}, true
}

func appendQueue(tx *bolt.Tx, queue string, ref queueRef) error {
	b, err := tx.Bucket(bucketQueues).CreateBucketIfNotExists([]byte(queue))
	if err != nil {
		return fmt.Errorf("queue %q: %w", queue, err)
	}
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	if err := b.Put(u64(seq), ref.encode()); err != nil {
		return fmt.Errorf("queue %q: %w", queue, err)
	}
	return addStats(tx, statsKey('q', queue), 1, int64(ref.size))
}

// entryRef reads which entry a key and value of a list (a queue, a
// dead-letter list, the archive) point at, and its record's size, without
// decoding the rest.
type entryRef func(k, v []byte) (id, size uint64, ok bool)

func queueEntryRef(_, v []byte) (uint64, uint64, bool) {
	ref, ok := decodeQueueRef(v)
	return ref.id, ref.size, ok
}

// removeFromQueue deletes queue positions. With release set (Store.release),
// the entries they point at lose a reference and go when none is left;
// with nil, the caller takes the references over.
func removeFromQueue(tx *bolt.Tx, queue string, seqs []uint64, release func(tx *bolt.Tx, id uint64) error) error {
	q := tx.Bucket(bucketQueues).Bucket([]byte(queue))
	if q == nil {
		return nil
	}
	for _, seq := range seqs {
		v := q.Get(u64(seq))
		if v == nil {
			continue // already gone: acks are idempotent
		}
		ref, ok := decodeQueueRef(v)
		if err := q.Delete(u64(seq)); err != nil {
			return err
		}
		if !ok {
			continue
		}
		if err := addStats(tx, statsKey('q', queue), -1, -int64(ref.size)); err != nil {
			return err
		}
		if release != nil {
			if err := release(tx, ref.id); err != nil {
				return err
			}
		}
	}
	return nil
}
