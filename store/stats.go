package store

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// QueueStats describes one queue.
type QueueStats struct {
	Entries     int64
	Bytes       int64
	Oldest      time.Time // zero when empty
	Newest      time.Time // zero when empty
	DeadEntries int64
	DeadBytes   int64
}

// Stats reports every queue that has, or ever had, entries or dead letters.
// It reads counters kept beside the queues, never the entries.
func (s *Store) Stats() (map[string]QueueStats, error) {
	out := make(map[string]QueueStats)
	err := s.view(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketQueues).ForEachBucket(func(name []byte) error {
			q := tx.Bucket(bucketQueues).Bucket(name)
			st := out[string(name)]
			st.Entries, st.Bytes = getStats(tx, statsKey('q', string(name)))
			c := q.Cursor()
			if _, v := c.First(); v != nil {
				if ref, ok := decodeQueueRef(v); ok {
					st.Oldest = time.Unix(0, ref.receivedAt)
				}
			}
			if _, v := c.Last(); v != nil {
				if ref, ok := decodeQueueRef(v); ok {
					st.Newest = time.Unix(0, ref.receivedAt)
				}
			}
			out[string(name)] = st
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketDead).ForEachBucket(func(name []byte) error {
			st := out[string(name)]
			st.DeadEntries, st.DeadBytes = getStats(tx, statsKey('d', string(name)))
			out[string(name)] = st
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	return out, nil
}

func statsKey(kind byte, queue string) []byte {
	return append([]byte{kind, '/'}, queue...)
}

func getStats(tx *bolt.Tx, key []byte) (count, bytes int64) {
	v := tx.Bucket(bucketStats).Get(key)
	if len(v) != 16 {
		return 0, 0
	}
	return int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:]))
}

func addStats(tx *bolt.Tx, key []byte, dCount, dBytes int64) error {
	count, bytes := getStats(tx, key)
	count, bytes = max(count+dCount, 0), max(bytes+dBytes, 0)
	v := make([]byte, 16)
	binary.BigEndian.PutUint64(v, uint64(count))
	binary.BigEndian.PutUint64(v[8:], uint64(bytes))
	return tx.Bucket(bucketStats).Put(key, v)
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func u32(v uint32) []byte {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, v)
	return b
}
