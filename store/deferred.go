package store

import (
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// defaultDeferredWait is how long a batch of deferred writes waits for a
// write that must commit now, and how recent the last such write must be
// for the wait to start (see awaitCompany).
const defaultDeferredWait = 20 * time.Millisecond

// AckDeferred is Ack for a caller that does not need the positions gone
// at once: its commit may wait a short while for the next write that
// does (a Put, mostly) and share that write's transaction and fsyncs,
// instead of taking two fsyncs and a rewrite of the queue's pages and the
// meta page of its own. It waits only while such writes are coming in; on
// a relay that only drains, or at Close, it commits at once. It returns,
// as Ack does, once the positions are durably gone.
//
// An ack only says an entry was delivered: until it commits, a crash
// sends the entry again (at-least-once), as it would an entry delivered
// just before the crash. What the store acknowledged to clients is never
// waited on.
func (s *Store) AckDeferred(ctx context.Context, queue string, seqs ...uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	err := s.writeOp(ctx, &op{frees: true, deferred: true, fn: func(tx *bolt.Tx) error { return removeFromQueue(tx, queue, seqs, s.release) }})
	if err != nil {
		return fmt.Errorf("ack %d entries of queue %q: %w", len(seqs), queue, err)
	}
	return nil
}

// awaitCompany holds a batch of deferred writes only until a write that
// must commit now arrives, up to the deferred wait, and only when one
// committed within that wait before: the writes come in steadily then, and
// the next is likely to come soon. It returns the batch with what arrived.
// Only the commit loop calls it.
func (s *Store) awaitCompany(batch []*op) []*op {
	wait := s.opts.deferredWait
	if !onlyDeferred(batch) || time.Since(s.lastPrompt) > wait {
		return batch
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	s.deferredHeld.Store(int64(len(batch)))
	defer s.deferredHeld.Store(0)
	for onlyDeferred(batch) && len(batch) < s.opts.MaxBatch {
		select {
		case o := <-s.ops:
			batch = s.fill(append(batch, o))
			s.deferredHeld.Store(int64(len(batch)))
		case <-timer.C:
			return batch
		case <-s.stop:
			// Close commits what is queued; this batch goes first.
			return batch
		}
	}
	return batch
}

// noteCommitted records when a batch with a write that would not wait
// ran; only the commit loop calls it.
func (s *Store) noteCommitted(batch []*op) {
	if !onlyDeferred(batch) {
		s.lastPrompt = time.Now()
	}
}

func onlyDeferred(batch []*op) bool {
	for _, o := range batch {
		if !o.deferred {
			return false
		}
	}
	return true
}
