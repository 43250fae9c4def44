package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrDamaged is wrapped by the errors of reads and writes that met a
// damaged page of the file.
var ErrDamaged = errors.New("store file is damaged")

// refusalHold is how long Health reports a put refused for lack of space:
// long enough to span the retries of clients, short enough that a relay a
// load balancer took out of rotation (and so gets no puts to show it has
// room again) comes back by itself.
const refusalHold = 30 * time.Second

// health is what Health reports besides a closed store.
type health struct {
	damage   atomic.Pointer[error] // the first damage met; sticks
	stuck    atomic.Pointer[error] // set when bbolt's writer lock was left held
	refusing atomic.Pointer[refusalAt]
}

type refusalAt struct {
	err error
	at  time.Time
}

// Health reports why the store cannot take writes, or nil: it is closed,
// a damaged page of the file was met, or puts were refused lately because
// the file is at its size cap or the disk is full.
func (s *Store) Health() error {
	if d := s.health.stuck.Load(); d != nil {
		return *d
	}
	s.closeMu.RLock()
	closed := s.closed
	s.closeMu.RUnlock()
	if closed {
		return ErrClosed
	}
	if d := s.health.damage.Load(); d != nil {
		return *d
	}
	if r := s.health.refusing.Load(); r != nil && time.Since(r.at) < refusalHold {
		return fmt.Errorf("store refuses writes: %w", r.err)
	}
	return nil
}

// noteOutcome records how the puts of a batch ended, for Health.
func (s *Store) noteOutcome(batch []*op, err error) {
	for _, o := range batch {
		if o.size == 0 {
			continue // not a put
		}
		e := err
		if e == nil {
			e = o.refused
		}
		switch {
		case e == nil:
			s.health.refusing.Store(nil)
		case isSpaceErr(e):
			s.health.refusing.Store(&refusalAt{err: e, at: time.Now()})
		}
	}
}

// damaged turns a panic from bbolt into an error that names the file and
// the way out, and remembers it for Health.
func (s *Store) damaged(r any) error {
	var err error = &damageError{path: s.path, cause: fmt.Sprint(r), hint: damageHint(s.path)}
	s.health.damage.CompareAndSwap(nil, &err)
	return err
}

// damageError is ErrDamaged with the file, what bbolt said, and the way
// out, which depends on whether the relay was running.
type damageError struct {
	path, cause, hint string
}

func (e *damageError) Error() string {
	return fmt.Sprintf("%v: %s: %s: %s", ErrDamaged, e.path, e.cause, e.hint)
}

func (e *damageError) Unwrap() error { return ErrDamaged }

// damageHint says what to do about a file damaged in use.
func damageHint(path string) string {
	return fmt.Sprintf("stop the relay, copy what can still be read into a new store with "+
		"`pyrorelay salvage --data-dir %s --to NEWDIR`, then move the file aside (mv %s %s.broken) "+
		"and start on the new store", filepath.Dir(path), path, path)
}

// guard runs fn, turning a panic from bbolt, or a memory fault reading a
// damaged page of the map, into an error that says how to recover.
func (s *Store) guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = s.damaged(r)
		}
	}()
	return fn()
}

// view is db.View under guard, counted as a reader of the record log.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	return s.guard(func() error { return s.log.readers.view(s.db, fn) })
}

// update runs fn in a write transaction, like guard. bbolt's own rollback
// can panic on a damaged file too, and then leaves its writer lock held:
// every later write, and closing the file, would wait for it forever. So
// after a panic update checks that a write can still begin; if not, the
// store takes no more writes and Close leaves the file to the process's
// exit.
func (s *Store) update(fn func(tx *bolt.Tx) error) (err error) {
	if p := s.health.stuck.Load(); p != nil {
		return *p
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	s.log.begin()
	defer func() {
		if r := recover(); r != nil {
			s.log.rolledBack()
			err = s.damaged(r)
			if !s.writerFree() {
				stuck := fmt.Errorf("%w (bbolt was left unable to write: the store takes no more writes until the relay is restarted)", err)
				s.health.stuck.CompareAndSwap(nil, &stuck)
				err = stuck
			}
		}
	}()
	err = s.db.Update(func(tx *bolt.Tx) error {
		s.log.txid = tx.ID()
		return fn(tx)
	})
	if err != nil {
		s.log.rolledBack()
	} else {
		// A segment that could not be removed is an orphan the next
		// Open removes; the commit stands.
		_ = s.log.committed()
	}
	if errors.Is(err, berrors.ErrIncompatibleValue) {
		// A bucket where a value belongs, or the reverse: the store
		// never writes that, so a damaged page says it.
		err = s.damaged(err)
	}
	return err
}

// writerStuckWait is how long writerFree waits for a write transaction to
// begin: generous, since it runs only after a panic.
const writerStuckWait = 5 * time.Second

// writerFree reports whether a write transaction can begin and roll back.
// If bbolt's writer lock is held for good, the goroutine trying stays
// blocked on it: a one-time cost of finding out, on a store that is done.
func (s *Store) writerFree() bool {
	done := make(chan bool, 1)
	go func() {
		ok := false
		defer func() {
			_ = recover()
			done <- ok
		}()
		tx, err := s.db.Begin(true)
		if err != nil {
			ok = true // not a lock left held
			return
		}
		ok = tx.Rollback() == nil
	}()
	select {
	case ok := <-done:
		return ok
	case <-time.After(writerStuckWait):
		return false
	}
}
