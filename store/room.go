package store

import (
	"errors"
	"fmt"
	"syscall"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Room in the file. With Options.MaxFileSize set, bbolt refuses any
// transaction that would grow the file past it, deletes included: a delete
// rewrites the pages it changes, and a file with no free page left cannot
// commit one. So puts stop short of the cap by a headroom that only writes
// which delete (acks, purges, evictions) may use, and a deleting write that
// still meets the cap runs once more with the cap raised by the headroom.
// Before a put is refused for lack of room, archived entries are evicted,
// oldest first: the archive is the least important data the store holds.

// isSpaceErr reports whether err says the file or the disk is full.
func isSpaceErr(err error) bool {
	return errors.Is(err, berrors.ErrMaxSizeReached) || errors.Is(err, syscall.ENOSPC)
}

// headroom is the file room kept for deleting writes.
func (s *Store) headroom() int64 {
	if s.opts.MaxFileSize <= 0 {
		return 0
	}
	return max(int64(s.opts.MaxFileSize)/8, 64*int64(s.db.Info().PageSize))
}

// raiseCap raises bbolt's cap on the file by the headroom and returns what
// lowers it again. Only the commit loop calls it, between transactions.
func (s *Store) raiseCap() (restore func()) {
	if s.opts.MaxFileSize <= 0 {
		return func() {}
	}
	s.db.MaxSize = s.opts.MaxFileSize + int(s.headroom())
	return func() { s.db.MaxSize = s.opts.MaxFileSize }
}

// growthWall is the highest the used part of the file (bbolt's high-water
// mark) can grow under MaxFileSize: bbolt grows the file by its allocation
// step past its mapping once the mapping is over that step, and refuses a
// growth that would take the file past the cap.
func (s *Store) growthWall() int64 {
	m, step := int64(s.opts.MaxFileSize), int64(s.db.AllocSize)
	if step <= 0 {
		step = 16 << 20 // bbolt's default
	}
	pow := int64(0)
	for i := 15; i <= 30 && int64(1)<<i <= m; i++ {
		pow = int64(1) << i
	}
	return max(min(pow, step), m-step) - int64(s.db.Info().PageSize)
}

// fileRoom refuses a put of n record bytes when, counting the free pages
// inside the file and what this transaction's puts already take, it would
// grow the file into the headroom, or the file and the record log together
// past the cap less the headroom: MaxFileSize bounds all the store's bytes
// on disk. A segment's dead frames count until the segment is removed.
// Called from Put's transaction, in the commit loop.
func (s *Store) fileRoom(tx *bolt.Tx, n int) error {
	if s.opts.MaxFileSize <= 0 {
		return nil
	}
	ps := int64(tx.DB().Info().PageSize)
	need, logNeed := ps, int64(0) // a leaf, and the record's frame in the log
	if int64(n) <= ps/2 {
		need += (int64(n) + ps - 1) / ps * ps
	} else {
		logNeed = frameLen(n)
	}
	st := s.db.Stats()
	free := int64(st.FreePageN+st.PendingPageN) * ps
	used := tx.Size() + s.txGrowth - free
	logged := s.log.physicalBytes() + s.log.pendingBytes()
	if used+need > s.growthWall()-s.headroom() ||
		used+logged+need+logNeed > int64(s.opts.MaxFileSize)-s.headroom() {
		return refuse(fmt.Errorf("%w: %s and its record log are at their size cap of %d bytes; the rest is kept for deletes",
			berrors.ErrMaxSizeReached, s.path, s.opts.MaxFileSize))
	}
	s.txGrowth += need
	return nil
}

// evictForSpace evicts archived entries, oldest first, to make room for
// the puts of batch and some more, in a transaction of its own that may
// use the headroom. It reports whether it evicted anything. Only the
// commit loop calls it.
func (s *Store) evictForSpace(batch []*op) bool {
	need := max(s.headroom()/4, 1<<20)
	for _, o := range batch {
		need += 2 * o.size
	}
	var archived int64
	if err := s.view(func(tx *bolt.Tx) error {
		_, archived = getStats(tx, keyArchive)
		return nil
	}); err != nil || archived == 0 {
		return false // nothing to evict: spare the commit
	}
	evicted := 0
	err := func() error {
		defer s.raiseCap()()
		return s.update(func(tx *bolt.Tx) error {
			_, archived := getStats(tx, keyArchive)
			res, err := trimArchive(s.log, tx, noCutoff, max(archived-need, 0), sweepBatch)
			evicted = res.Entries
			return err
		})
	}()
	return err == nil && evicted > 0
}
