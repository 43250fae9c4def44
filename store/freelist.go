package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// bbolt can write its list of free pages in every commit, and then it
// writes all of it: 8 bytes per free page, sorted first, on a page of its
// own. Without the list on disk, bbolt rebuilds it by walking every page
// of the tree: at the open after a crash (see warmWalk), and when a write
// transaction rolls back. So a commit leaves the list off the disk when
// the walk is cheap or the list is costly, and writes it otherwise:
//
//   - a file of at most FreelistWalkMax is walked quickly even from a
//     cold disk: its commits leave the list off, which spares each of
//     them a page write. With the records in the log (schema 3) the file
//     holds only locators, queues and counters, and stays this small.
//   - on a bigger file (records in bbolt's pages, schema 2) a restart
//     after a crash would walk every page the queues hold, slow from a
//     cold disk: its commits write the list while it is at most
//     FreelistSyncMax. A long list, though, costs every commit its
//     sorting and writing (a file that drained a big backlog keeps its
//     free pages: it never shrinks), so it is left off then. The two are
//     rarely large together: a backlog builds on few free pages, and a
//     file that drained has many free pages and few held ones.
//
// Close writes the list whatever its length (syncFreelist): a restart
// after a clean stop loads it and is ready at once.

// FreelistSyncMax is the largest free-page list, in bytes as bbolt writes
// it, that a commit to a file bigger than FreelistWalkMax writes. 32 KiB
// lists 4,096 free pages (16 MiB of a file with 4 KiB pages).
const FreelistSyncMax = 32 << 10

// FreelistWalkMax is the largest bbolt file whose commits leave the
// free-page list off the disk whatever its length.
const FreelistWalkMax = 64 << 20

// leaveFreelistOff reports whether the commit of tx leaves the free-page
// list off the disk.
func (s *Store) leaveFreelistOff(tx *bolt.Tx) bool {
	if tx.Size() <= s.opts.freelistWalkMax {
		return true
	}
	return s.db.Stats().FreelistInuse > s.opts.freelistSyncMax
}

// syncFreelist writes bbolt's list of free pages, once, at Close.
func (s *Store) syncFreelist() error {
	if s.opts.ReadOnly {
		return nil
	}
	// The commit loop has stopped: no transaction reads the field now.
	s.db.NoFreelistSync = false
	if err := s.update(func(*bolt.Tx) error { return nil }); err != nil {
		return fmt.Errorf("write the free-page list of %s: %w", s.path, err)
	}
	return nil
}
