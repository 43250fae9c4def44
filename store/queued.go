package store

import bolt "go.etcd.io/bbolt"

// Queued reports whether queue still holds the entry at position seq. An
// entry can leave a queue while a forwarder holds it in memory for a retry:
// dropped to make room, expired, or moved by an operator; the forwarder
// asks before it sends such an entry again.
func (s *Store) Queued(queue string, seq uint64) (bool, error) {
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketQueues).Bucket([]byte(queue))
		ok = q != nil && q.Get(u64(seq)) != nil
		return nil
	})
	return ok, err
}
