package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// FreelistSyncMax is the largest free-page list, in bytes as bbolt writes
// it, that a commit writes to the file; see Store.commit. 32 KiB lists
// 4,096 free pages (16 MiB of a file with 4 KiB pages).
const FreelistSyncMax = 32 << 10

// syncFreelist writes bbolt's list of free pages, once, at Close.
//
// bbolt can write that list in every commit, and then it writes all of
// it: 8 bytes per free page, sorted first. A file that once held a backlog
// keeps its free pages (it never shrinks), so after a big drain every
// commit would write and fsync a long list, and sort it first. Without the
// list on disk, bbolt rebuilds it at open by walking the page tree, which
// is slow on a big file read from a cold disk. So a commit writes the list
// only while it is short (see commit), and Close
// writes it whatever its length: a restart after a clean stop loads it and
// is ready at once, and so does one after a crash while the list was
// short; only a crash while it was long walks the tree.
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
