package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// ErrFull is wrapped by the error Put returns when a limit leaves no room
// and the policy is to refuse. Callers answer "try later" (HTTP 429).
var ErrFull = errors.New("store is full")

// Limits bound the bytes the store holds. Sizes count record bytes, the
// unit of every byte count the store reports; zero means no limit.
type Limits struct {
	// MaxQueueBytes bounds each queue's bytes.
	MaxQueueBytes int64
	// MaxTotalBytes bounds the bytes of all stored entries (each stored
	// once, however many queues hold it; dead letters included).
	MaxTotalBytes int64
	// DropOldest makes room by dropping the oldest entries of the full
	// queue instead of refusing the new one.
	DropOldest bool
	// OnDrop, if set, is told how many entries a committed Put dropped
	// from a queue to make room.
	OnDrop func(queue string, n int)
}

// keyTotal holds the count and bytes of all stored entries.
var keyTotal = []byte("e/total")

func (l Limits) none() bool {
	return l.MaxQueueBytes == 0 && l.MaxTotalBytes == 0
}

// TotalBytes reports the count and bytes of all stored entries.
func (s *Store) TotalBytes() (entries, bytes int64, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		entries, bytes = getStats(tx, keyTotal)
		return nil
	})
	return entries, bytes, err
}

// checkRoom refuses early, outside the commit loop, when a limit leaves
// no room that the policy could make.
func (s *Store) checkRoom(queues []string, size int64) error {
	if s.opts.Limits.none() {
		return nil
	}
	return s.view(func(tx *bolt.Tx) error { return s.roomPossible(tx, queues, size) })
}

// roomPossible refuses, without changing anything, an entry of size bytes
// going to queues for which no room can be made: under DropOldest, only a
// queue's entries can be dropped and archived entries evicted, never dead
// letters; otherwise only archived entries can be evicted.
func (s *Store) roomPossible(tx *bolt.Tx, queues []string, size int64) error {
	l := s.opts.Limits
	for _, q := range queues {
		limit := l.MaxQueueBytes
		if limit <= 0 {
			continue
		}
		if size > limit {
			return fmt.Errorf("%w: entry of %d bytes is larger than queue %q's limit of %d bytes", ErrFull, size, q, limit)
		}
		if _, used := getStats(tx, statsKey('q', q)); !l.DropOldest && used+size > limit {
			return fmt.Errorf("%w: queue %q holds %d of %d bytes", ErrFull, q, used, limit)
		}
	}
	if l.MaxTotalBytes <= 0 {
		return nil
	}
	_, used := getStats(tx, keyTotal)
	if !l.DropOldest {
		if used+size > l.MaxTotalBytes {
			return fmt.Errorf("%w: the store holds %d of %d bytes", ErrFull, used, l.MaxTotalBytes)
		}
		return nil
	}
	// What no drop can free: entries held by dead letters. Summed over the
	// lists, an entry dead in two counts twice; at worst that refuses an
	// entry dropping could have made room for, never the other way.
	var dead int64
	_ = tx.Bucket(bucketDead).ForEachBucket(func(name []byte) error {
		_, b := getStats(tx, statsKey('d', string(name)))
		dead += b
		return nil
	})
	if kept := min(dead, used); kept+size > l.MaxTotalBytes {
		return fmt.Errorf("%w: dead letters hold %d of %d bytes, which dropping the oldest queued entries cannot free: requeue or purge them (`pyrorelay dead-letter`)",
			ErrFull, kept, l.MaxTotalBytes)
	}
	return nil
}

// makeRoom checks the limits for an entry of size bytes going to queues
// and makes room. When no room can be made it refuses before changing
// anything (see refuse). Archived entries are evicted first, oldest first:
// they count toward MaxTotalBytes with what the queues hold. Under
// DropOldest it then deletes the oldest entries of a full queue and reports
// how many per queue.
func (s *Store) makeRoom(tx *bolt.Tx, queues []string, size int64) (map[string]int, error) {
	l := s.opts.Limits
	if l.none() {
		return nil, nil
	}
	if err := s.roomPossible(tx, queues, size); err != nil {
		return nil, refuse(err)
	}
	var dropped map[string]int
	drop := func(q string) bool {
		ok, err := s.dropHead(tx, q)
		if err != nil || !ok {
			return false
		}
		if dropped == nil {
			dropped = make(map[string]int)
		}
		dropped[q]++
		return true
	}
	for _, q := range queues {
		limit := l.MaxQueueBytes
		if limit <= 0 {
			continue
		}
		for {
			_, used := getStats(tx, statsKey('q', q))
			if used+size <= limit {
				break
			}
			if !drop(q) {
				return nil, fmt.Errorf("%w: queue %q holds %d of %d bytes", ErrFull, q, used, limit)
			}
		}
	}
	if l.MaxTotalBytes > 0 {
		for {
			_, used := getStats(tx, keyTotal)
			_, archived := getStats(tx, keyArchive)
			over := used + archived + size - l.MaxTotalBytes
			if over <= 0 {
				break
			}
			if archived > 0 {
				res, err := trimArchive(s.log, tx, noCutoff, max(archived-over, 0), sweepBatch)
				if err != nil {
					return nil, err
				}
				if _, left := getStats(tx, keyArchive); res.Entries > 0 || left != archived {
					continue
				}
			}
			// An entry's bytes go only when every queue has dropped it, so
			// drop from the queue whose head is the oldest entry of all.
			q := oldestHead(tx, queues)
			if !l.DropOldest || q == "" || !drop(q) {
				return nil, fmt.Errorf("%w: the store holds %d of %d bytes", ErrFull, used, l.MaxTotalBytes)
			}
		}
	}
	return dropped, nil
}

// dropHead deletes the oldest position of queue and releases its entry.
func (s *Store) dropHead(tx *bolt.Tx, queue string) (bool, error) {
	q := tx.Bucket(bucketQueues).Bucket([]byte(queue))
	if q == nil {
		return false, nil
	}
	k, _ := q.Cursor().First()
	if k == nil {
		return false, nil
	}
	return true, removeFromQueue(tx, queue, []uint64{binary.BigEndian.Uint64(k)}, s.release)
}

// oldestHead names the queue, among all queues, whose first position is
// the oldest entry; queues that gain the new entry are preferred on ties.
func oldestHead(tx *bolt.Tx, prefer []string) string {
	best, bestID := "", uint64(0)
	consider := func(name string) {
		q := tx.Bucket(bucketQueues).Bucket([]byte(name))
		if q == nil {
			return
		}
		_, v := q.Cursor().First()
		ref, ok := decodeQueueRef(v)
		if !ok {
			return
		}
		if best == "" || ref.id < bestID {
			best, bestID = name, ref.id
		}
	}
	for _, name := range prefer {
		consider(name)
	}
	_ = tx.Bucket(bucketQueues).ForEachBucket(func(name []byte) error {
		consider(string(name))
		return nil
	})
	return best
}
