package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
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
	err := fmt.Errorf("%w: %s: %v: %s", ErrDamaged, s.path, r, damageHint(s.path))
	s.health.damage.CompareAndSwap(nil, &err)
	return err
}

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

// view is db.View under guard.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	return s.guard(func() error { return s.db.View(fn) })
}
