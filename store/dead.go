package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
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
	return removeFromQueue(tx, queue, []uint64{seq}, nil)
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
			d, size, err := decodeDeadLetter(binary.BigEndian.Uint64(k), v)
			if err != nil {
				return err
			}
			var e *Entry
			if raw, fresh, rerr := s.log.getRecord(entries, d.EntryID); rerr == nil && raw != nil && uint64(len(raw)) == size {
				if e, err = decodeRecord(ownRecord(raw, fresh)); err == nil {
					e.ID = d.EntryID
				}
			}
			return fn(d, e)
		})
	})
}

// deadPositions walks the dead letters of queue that f selects, in pages of
// at most moveBatch, and calls fn with each page's positions. Dead letters
// added after the walk started are not visited, so a walk that moves what it
// visits ends even while the list grows.
func (s *Store) deadPositions(ctx context.Context, queue string, f Filter, fn func(seqs []uint64) error) (ScanResult, error) {
	var res ScanResult
	var end uint64
	if err := s.view(func(tx *bolt.Tx) error {
		if dl := tx.Bucket(bucketDead).Bucket([]byte(queue)); dl != nil {
			if k, _ := dl.Cursor().Last(); k != nil {
				end = binary.BigEndian.Uint64(k)
			}
		}
		return nil
	}); err != nil {
		return res, fmt.Errorf("read dead letters of %q: %w", queue, err)
	}
	req := pageReq{src: DeadLetterSource(queue), f: f, maxEntries: moveBatch, maxBytes: math.MaxInt}
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		p, err := s.readPage(req)
		if err != nil {
			return res, err
		}
		res.Skipped += p.skipped
		seqs := make([]uint64, 0, len(p.recs))
		for _, r := range p.recs {
			if r.Pos > end {
				p.done = true
				break
			}
			seqs = append(seqs, r.Pos)
			res.Entries++
			res.Bytes += int64(r.Size)
		}
		if len(seqs) > 0 {
			if err := fn(seqs); err != nil {
				return res, err
			}
		}
		if p.done || (len(p.last) == 8 && binary.BigEndian.Uint64(p.last) >= end) {
			return res, nil
		}
		if !advanced(req.after, p.last) {
			return res, nil // keys out of order: a damaged page; see advanced
		}
		req.after = p.last
	}
}

// RequeueDeadLetters moves the dead letters of queue that f selects back to
// the end of the queue, oldest first, and wakes its forwarder. The entries
// get new positions; their bytes are not copied. It commits in steps of at
// most moveBatch, so a crash part-way leaves every entry in exactly one of
// the two lists.
func (s *Store) RequeueDeadLetters(ctx context.Context, queue string, f Filter) (ScanResult, error) {
	res, err := s.deadPositions(ctx, queue, f, func(seqs []uint64) error {
		return s.write(ctx, []string{queue}, func(tx *bolt.Tx) error {
			return takeDeadLetters(s.log, tx, queue, seqs, func(d *DeadLetter, size uint64, at int64, ok bool) error {
				if !ok {
					return errKeepDeadLetter
				}
				// The queue takes over the dead letter's reference.
				return appendQueue(tx, queue, queueRef{id: d.EntryID, size: size, receivedAt: at})
			})
		})
	})
	if err != nil {
		return res, fmt.Errorf("requeue dead letters of %q: %w", queue, err)
	}
	return res, nil
}

// PurgeDeadLetters deletes the dead letters of queue that f selects. An
// entry's bytes go with its last reference; a purged entry is never
// archived.
func (s *Store) PurgeDeadLetters(ctx context.Context, queue string, f Filter) (ScanResult, error) {
	res, err := s.deadPositions(ctx, queue, f, func(seqs []uint64) error {
		return s.write(ctx, nil, func(tx *bolt.Tx) error {
			return takeDeadLetters(s.log, tx, queue, seqs, func(d *DeadLetter, _ uint64, at int64, _ bool) error {
				if err := s.release(tx, d.EntryID); err != nil {
					return err
				}
				return unarchive(s.log, tx, d.EntryID, at)
			})
		})
	})
	if err != nil {
		return res, fmt.Errorf("purge dead letters of %q: %w", queue, err)
	}
	return res, nil
}

// errKeepDeadLetter tells takeDeadLetters to leave a dead letter alone.
var errKeepDeadLetter = errors.New("keep dead letter")

// takeDeadLetters removes the dead letters at seqs of queue, after handing
// each to fn with its size and its entry's receive time (ok false if the
// entry is missing). fn takes over the dead letter's reference to the
// entry.
func takeDeadLetters(l *segmentLog, tx *bolt.Tx, queue string, seqs []uint64, fn func(d *DeadLetter, size uint64, at int64, ok bool) error) error {
	dl := tx.Bucket(bucketDead).Bucket([]byte(queue))
	if dl == nil {
		return nil
	}
	entries := tx.Bucket(bucketEntries)
	for _, seq := range seqs {
		v := dl.Get(u64(seq))
		if v == nil {
			continue // taken by someone else meanwhile
		}
		d, size, err := decodeDeadLetter(seq, v)
		if err != nil {
			continue // unreadable: leave it where an operator can see it
		}
		_, at, ok := l.recordInfo(entries, d.EntryID)
		switch err := fn(d, size, at, ok); {
		case errors.Is(err, errKeepDeadLetter):
			continue
		case err != nil:
			return err
		}
		if err := dl.Delete(u64(seq)); err != nil {
			return err
		}
		if err := addStats(tx, statsKey('d', queue), -1, -int64(size)); err != nil {
			return err
		}
	}
	return nil
}
