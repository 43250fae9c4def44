package store

import (
	"context"
	"errors"
	"runtime"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Every write goes through one commit loop that folds the writes waiting
// at that moment into a single fsync'd bbolt transaction (group commit).

// op is one write waiting for the commit loop.
type op struct {
	fn   func(tx *bolt.Tx) error
	wake []string // queues that gain entries when fn commits
	// abort, if set, runs when a transaction that ran fn failed, before
	// the next transaction starts.
	abort func()
	// frees marks a write that only deletes or moves what is stored (an
	// ack, a purge, an eviction): it may use the headroom kept for those.
	frees bool
	// deferred marks a write that may wait for the next one to share its
	// commit (see AckDeferred).
	deferred bool
	// size is the record bytes a put adds, for evictForSpace.
	size int64
	// refused is the write's refusal in the transaction that ran last.
	refused error
	done    chan error
}

// CommitCounts reports how many transactions the store committed and how
// many writes they carried; writes/commits is the group-commit factor.
// Both come from the same moment.
func (s *Store) CommitCounts() (commits, writes uint64) {
	s.counts.Lock()
	defer s.counts.Unlock()
	return s.counts.commits, s.counts.writes
}

// write hands fn to the commit loop and waits until its transaction is
// durable. fn may run more than once (a failed batch is retried write by
// write), so it must do nothing but change tx.
func (s *Store) write(ctx context.Context, wake []string, fn func(tx *bolt.Tx) error) error {
	return s.writeOp(ctx, &op{fn: fn, wake: wake})
}

func (s *Store) writeOp(ctx context.Context, o *op) error {
	o.done = make(chan error, 1)
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	select {
	case s.ops <- o:
		s.closeMu.RUnlock()
	case <-ctx.Done():
		s.closeMu.RUnlock()
		return ctx.Err()
	}
	// Once queued, the write is committed or failed whatever ctx says, so
	// wait for the answer: a caller must never think a committed entry was
	// refused, or the reverse.
	return <-o.done
}

func (s *Store) commitLoop() {
	defer close(s.loopDone)
	// A damaged page may point outside the file: reading it then faults,
	// and the fault must become a panic that run recovers, not a crash.
	debug.SetPanicOnFault(true)
	batch := make([]*op, 0, s.opts.MaxBatch)
	for {
		batch = batch[:0]
		select {
		case o := <-s.ops:
			batch = append(batch, o)
		case <-s.stop:
			// Finish what was queued before Close.
			for {
				select {
				case o := <-s.ops:
					s.commit([]*op{o})
				default:
					return
				}
			}
		}
		if !s.opts.NoGroupCommit {
			batch = s.fill(batch)
			batch = s.awaitCompany(batch)
		}
		s.commit(batch)
		s.noteCommitted(batch)
		if len(s.log.candidates) > 0 {
			s.compactLog()
		}
		// Let the writers this commit just released answer their
		// clients before the next batch is taken: the loop would
		// otherwise run on into the next commit while they wait for a
		// CPU, and the clients' next requests miss that commit.
		runtime.Gosched()
	}
}

// fill adds to batch the writes waiting now, up to MaxBatch.
func (s *Store) fill(batch []*op) []*op {
	for len(batch) < s.opts.MaxBatch {
		select {
		case o := <-s.ops:
			batch = append(batch, o)
		default:
			return batch
		}
	}
	return batch
}

// commit runs batch in one transaction. A write that refuses (see refuse)
// leaves the transaction as it found it and gets its refusal; the others
// commit. If the transaction fails for lack of space, archived entries are
// evicted and the batch runs once more; if it still fails, each write is
// retried alone so that one bad write does not fail the others.
func (s *Store) commit(batch []*op) {
	err := s.run(batch)
	if err != nil && isSpaceErr(err) && s.evictForSpace(batch) {
		err = s.run(batch)
	}
	if err != nil {
		s.abort(batch)
	}
	if err == nil || len(batch) == 1 {
		s.finishAll(batch, err)
		return
	}
	for _, o := range batch {
		one := []*op{o}
		err := s.run(one)
		if err != nil && isSpaceErr(err) && (o.frees || s.evictForSpace(one)) {
			err = s.runWith(one, o.frees)
		}
		if err != nil {
			s.abort(one)
		}
		s.finishAll(one, err)
	}
}

// finishAll answers each write of a batch whose transaction ended with
// err: its refusal, if it refused, when the transaction committed. Writes
// refused for lack of room in the file get one more try once archived
// entries made room.
func (s *Store) finishAll(batch []*op, err error) {
	if err == nil {
		var retry []*op
		for _, o := range batch {
			if o.refused != nil && isSpaceErr(o.refused) {
				retry = append(retry, o)
			}
		}
		if len(retry) > 0 && s.evictForSpace(retry) {
			if rerr := s.run(retry); rerr != nil {
				s.abort(retry)
				for _, o := range retry {
					o.refused = rerr
				}
			}
		}
	}
	// Health says how the puts ended before their writers hear it: a
	// caller that was refused for lack of space must find Health saying
	// so, and one that committed must not find an older refusal.
	s.noteOutcome(batch, err)
	for _, o := range batch {
		switch {
		case err != nil:
			s.finish(o, err)
		default:
			s.finish(o, o.refused)
		}
	}
}

// run runs batch in one transaction and commits it. A panic inside bbolt
// (a damaged page) becomes an error naming the file; see damaged.
func (s *Store) run(batch []*op) error {
	frees := true
	for _, o := range batch {
		frees = frees && o.frees
	}
	// Writes that only delete may use the headroom (see room.go).
	return s.runWith(batch, frees)
}

// runWith is run, with bbolt's size cap raised by the headroom if raised.
func (s *Store) runWith(batch []*op, raised bool) (err error) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			err = s.damaged(r)
		}
		s.observe(start, len(batch))
	}()
	for _, o := range batch {
		o.refused = nil
	}
	if raised {
		defer s.raiseCap()()
	}
	s.txGrowth = 0
	return s.update(func(tx *bolt.Tx) error {
		if err := runOps(tx, batch); err != nil {
			return err
		}
		// See freelist.go. The field is read only inside Commit, and
		// only this loop commits.
		s.db.NoFreelistSync = s.leaveFreelistOff(tx)
		// The records the writes staged go to the log, durably, before
		// bbolt commits the locators that point at them.
		return s.log.flushTx(tx)
	})
}

func runOps(tx *bolt.Tx, batch []*op) error {
	for _, o := range batch {
		if err := o.fn(tx); err != nil {
			var r refusal
			if errors.As(err, &r) {
				o.refused = r.err
				continue
			}
			return err
		}
	}
	return nil
}

// refusal is an error a write returns when it refuses without having
// changed the transaction: the commit loop answers that write with err
// and commits the others.
type refusal struct{ err error }

func (r refusal) Error() string { return r.err.Error() }
func (r refusal) Unwrap() error { return r.err }

// refuse marks err as a refusal; the write must not have changed tx.
func refuse(err error) error { return refusal{err: err} }

func (s *Store) abort(batch []*op) {
	for _, o := range batch {
		if o.abort != nil {
			o.abort()
		}
	}
}

func (s *Store) observe(start time.Time, n int) {
	s.counts.Lock()
	s.counts.commits++
	s.counts.writes += uint64(n)
	s.counts.Unlock()
	if s.opts.OnCommit != nil {
		s.opts.OnCommit(time.Since(start), n)
	}
}

func (s *Store) finish(o *op, err error) {
	if err == nil {
		for _, q := range o.wake {
			s.signal(q)
		}
	}
	o.done <- err
}

// Wake returns a channel that receives a value after new entries were
// committed to queue. Receivers must re-read the queue: several commits may
// fold into one value.
func (s *Store) Wake(queue string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wakeLocked(queue)
}

func (s *Store) wakeLocked(queue string) chan struct{} {
	c, ok := s.wakes[queue]
	if !ok {
		c = make(chan struct{}, 1)
		s.wakes[queue] = c
	}
	return c
}

func (s *Store) signal(queue string) {
	s.mu.Lock()
	c := s.wakeLocked(queue)
	s.mu.Unlock()
	select {
	case c <- struct{}{}:
	default:
	}
}
