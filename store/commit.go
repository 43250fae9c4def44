package store

import (
	"context"
	"runtime"
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
	done  chan error
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
		fill:
			for len(batch) < s.opts.MaxBatch {
				select {
				case o := <-s.ops:
					batch = append(batch, o)
				default:
					break fill
				}
			}
		}
		s.commit(batch)
		// Let the writers this commit just released answer their
		// clients before the next batch is taken: the loop would
		// otherwise run on into the next commit while they wait for a
		// CPU, and the clients' next requests miss that commit.
		runtime.Gosched()
	}
}

// commit runs batch in one transaction. If it fails, each write is retried
// alone so that one bad write does not fail the others.
func (s *Store) commit(batch []*op) {
	start := time.Now()
	// Write bbolt's free-page list in this commit only while it is short.
	// A commit without the list leaves none on disk, and a restart after a
	// crash then rebuilds it by walking every page the queues hold: 6.9 s
	// on a 1 GiB backlog read from a cold disk. A long list, though, costs
	// every commit its sorting and writing (a file that drained 1 GiB
	// lists 2 MiB). The two are rarely large together: a backlog builds on
	// few free pages, and a file that drained has many free pages and few
	// held ones. A healthy relay's list stays at a page or two. The field
	// is read only inside Commit, and only this loop commits.
	s.db.NoFreelistSync = s.db.Stats().FreelistInuse > s.opts.freelistSyncMax
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, o := range batch {
			if err := o.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	s.observe(start, len(batch))
	if err != nil {
		s.abort(batch)
	}
	if err == nil || len(batch) == 1 {
		for _, o := range batch {
			s.finish(o, err)
		}
		return
	}
	for _, o := range batch {
		start := time.Now()
		err := s.db.Update(o.fn)
		s.observe(start, 1)
		if err != nil {
			s.abort([]*op{o})
		}
		s.finish(o, err)
	}
}

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

// Put stores e once and appends it to each named queue, durably, before it
// returns. It sets e.ID. With no queue named, the entry goes to HoldQueue.
