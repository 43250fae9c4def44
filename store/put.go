package store

import (
	"context"

	bolt "go.etcd.io/bbolt"
)

// Put stores e once and appends it to each named queue, durably, before it
// returns. It sets e.ID. With no queue named, the entry goes to HoldQueue.
// The store keeps e.Body for readers of the queues (see Options.RecentBytes):
// the caller must not change it after Put.
func (s *Store) Put(ctx context.Context, e *Entry, queues []string) error {
	if len(queues) == 0 {
		queues = []string{HoldQueue}
	}
	rec := e.record()
	ref := queueRef{size: uint64(len(rec)), receivedAt: e.ReceivedAt.UnixNano()}
	// A cheap look first, so that a full store refuses without queueing
	// behind commits; the look inside the transaction is the one that counts.
	if err := s.checkRoom(queues, int64(len(rec))); err != nil {
		return err
	}
	var dropped map[string]int
	// The entry goes into the cache of recent entries inside the
	// transaction, before any reader can see its ID in a queue: added after
	// the commit, a reader already running could find the ID first, read
	// the file, and leave the cached copy waiting for it forever.
	cache := !(len(queues) == 1 && queues[0] == HoldQueue) // nothing reads the hold queue
	var cachedID uint64
	o := &op{wake: queues, size: int64(len(rec))}
	o.abort = func() {
		// The transaction rolled back: its IDs will be used again.
		if cachedID != 0 {
			s.recent.remove(cachedID)
			cachedID = 0
		}
	}
	o.fn = func(tx *bolt.Tx) error {
		if err := s.fileRoom(tx, len(rec)); err != nil {
			return err
		}
		var err error
		if dropped, err = s.makeRoom(tx, queues, int64(len(rec))); err != nil {
			return err
		}
		entries := tx.Bucket(bucketEntries)
		id, err := entries.NextSequence()
		if err != nil {
			return err
		}
		if err := s.log.putRecord(tx, entries, id, rec); err != nil {
			return err
		}
		if err := addStats(tx, keyTotal, 1, int64(len(rec))); err != nil {
			return err
		}
		if err := tx.Bucket(bucketRefs).Put(u64(id), u32(uint32(len(queues)))); err != nil {
			return err
		}
		ref.id = id
		for _, q := range queues {
			if err := appendQueue(tx, q, ref); err != nil {
				return err
			}
		}
		e.ID = id
		if cache {
			s.recent.add(e, int64(len(rec)), len(queues))
			cachedID = id
		}
		return nil
	}
	err := s.writeOp(ctx, o)
	if err == nil {
		s.noteMapped(len(rec))
	}
	if err == nil && s.opts.Limits.OnDrop != nil {
		for q, n := range dropped {
			s.opts.Limits.OnDrop(q, n)
		}
	}
	return err
}
