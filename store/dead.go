package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DeadLetter says why an entry left its queue without being delivered.
type DeadLetter struct {
	Seq      uint64    `json:"-"` // position in the dead-letter list
	EntryID  uint64    `json:"-"`
	At       time.Time `json:"at"`
	Reason   string    `json:"reason"`           // one line: what the destination said
	Status   int       `json:"status,omitempty"` // HTTP status, 0 when there was none
	Attempts int       `json:"attempts"`
}

// Dead-letter value: [0] version, [1:9] entry id, [9:17] size, then JSON.
const deadVersion1 = 1

func (d *DeadLetter) encode(size uint64) ([]byte, error) {
	js, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 17, 17+len(js))
	b[0] = deadVersion1
	binary.BigEndian.PutUint64(b[1:], d.EntryID)
	binary.BigEndian.PutUint64(b[9:], size)
	return append(b, js...), nil
}

func decodeDeadLetter(seq uint64, v []byte) (*DeadLetter, uint64, error) {
	id, size, ok := deadEntryRef(nil, v)
	if !ok {
		return nil, 0, fmt.Errorf("%w: dead letter %d", ErrCorrupt, seq)
	}
	d := &DeadLetter{Seq: seq, EntryID: id}
	if err := json.Unmarshal(v[17:], d); err != nil {
		return nil, 0, fmt.Errorf("%w: dead letter %d: %v", ErrCorrupt, seq, err)
	}
	return d, size, nil
}

// deadEntryRef is an entryRef for dead-letter lists: it reads the entry and
// its size, not the reason.
func deadEntryRef(_, v []byte) (uint64, uint64, bool) {
	if len(v) < 17 || v[0] != deadVersion1 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(v[1:]), binary.BigEndian.Uint64(v[9:]), true
}

// MoveToDeadLetter takes position seq out of queue and keeps its entry in
// the queue's dead-letter list with d's reason. The entry is never deleted.
func (s *Store) MoveToDeadLetter(ctx context.Context, queue string, seq uint64, d DeadLetter) error {
	if d.At.IsZero() {
		d.At = time.Now()
	}
	err := s.write(ctx, nil, func(tx *bolt.Tx) error { return deadLetterTx(tx, queue, seq, d) })
	if err != nil {
		return fmt.Errorf("dead-letter entry %d of queue %q: %w", seq, queue, err)
	}
	return nil
}

func deadLetterTx(tx *bolt.Tx, queue string, seq uint64, d DeadLetter) error {
	q := tx.Bucket(bucketQueues).Bucket([]byte(queue))
	if q == nil {
		return nil
	}
	ref, ok := decodeQueueRef(q.Get(u64(seq)))
	if !ok {
		return nil // gone already, or never there
	}
	dl, err := tx.Bucket(bucketDead).CreateBucketIfNotExists([]byte(queue))
	if err != nil {
		return err
	}
	dseq, err := dl.NextSequence()
	if err != nil {
		return err
	}
	d.EntryID = ref.id
	v, err := d.encode(ref.size)
	if err != nil {
		return err
	}
	if err := dl.Put(u64(dseq), v); err != nil {
		return err
	}
	if err := addStats(tx, statsKey('d', queue), 1, int64(ref.size)); err != nil {
		return err
	}
	// The dead letter takes over the queue's reference to the entry.
	return removeFromQueue(tx, queue, []uint64{seq}, false)
}

// DeadLetters calls fn for each dead letter of queue, oldest first, with its
// entry (nil if the entry is unreadable). fn must not call the store.
func (s *Store) DeadLetters(queue string, fn func(d *DeadLetter, e *Entry) error) error {
	return s.view(func(tx *bolt.Tx) error {
		dl := tx.Bucket(bucketDead).Bucket([]byte(queue))
		if dl == nil {
			return nil
		}
		entries := tx.Bucket(bucketEntries)
		return dl.ForEach(func(k, v []byte) error {
			d, _, err := decodeDeadLetter(binary.BigEndian.Uint64(k), v)
			if err != nil {
				return err
			}
			var e *Entry
			if raw := getRecord(entries, d.EntryID); raw != nil {
				if e, err = decodeRecord(append([]byte(nil), raw...)); err == nil {
					e.ID = d.EntryID
				}
			}
			return fn(d, e)
		})
	})
}
