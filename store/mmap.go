package store

import bolt "go.etcd.io/bbolt"

// dropMappedEvery is how many bytes may pass through bbolt's memory map
// between two drops of its pages from this process. The count understates
// what gets mapped: a page fault maps the rest of the page cache's folio
// around the page (several pages, where the kernel caches the file in large
// folios), and bbolt touches pages the count never sees (a record's first
// page when its bucket is deleted, the leaves a commit rewrites). So the
// drops come often; each costs one madvise and the faults of the few pages
// read again.
const dropMappedEvery = 2 << 20

// noteMapped counts n bytes read from or written to the file, and past
// dropMappedEvery drops the memory map's pages from this process.
//
// bbolt reads through a shared memory map. Every page a reader or the
// writer touches stays mapped, and counts in the process's RSS, until bbolt
// remaps the file, which it does only when the file grows. Draining a 1 GiB
// backlog touched every page: RSS reached 1.3 GiB while the heap stayed
// under 50 MiB. The pages are the kernel's page cache, clean and shared;
// dropping them from this process changes no data and costs a page fault
// when one is read again.
func (s *Store) noteMapped(n int) {
	if s.mapped.Add(int64(n)) < dropMappedEvery || s.mapped.Swap(0) < dropMappedEvery {
		return
	}
	// Inside a read transaction bbolt cannot remap, so the mapping is the
	// one Info describes, and it covers at least the transaction's size.
	_ = s.view(func(tx *bolt.Tx) error {
		dropMapped(tx.DB().Info().Data, tx.Size())
		return nil
	})
}

// The kernel counts a page-cache folio as dirtied as a whole when any
// byte of it is written: a page bbolt rewrites inside a folio of several
// pages counts as the whole folio in what the process writes to the disk
// (write_bytes). Folios of several pages come from writes of several pages
// at once and from the read-ahead of plain reads. bbolt's page faults
// bring in a page at a time (it maps the file with MADV_RANDOM), and it
// writes a page at a time, but for the first pages of a new file (the
// meta pages, which every commit rewrites, the free-page list and the
// root) and the rare node bigger than a page. So the checks before bbolt
// maps the file read without read-ahead (filecheck.go), and pageFolios
// drops the first pages from the page cache once bbolt has opened the
// file: the faults that read them back bring them in a page at a time.

// bboltInitPages is how many pages bbolt writes at once to start a file.
const bboltInitPages = 4

// pageFolios drops db's first pages from this process's mapping and from
// the page cache. db must have no transaction open.
func pageFolios(db *bolt.DB, path string) {
	n := int64(bboltInitPages * db.Info().PageSize)
	dropMapped(db.Info().Data, n)
	dropCached(path, 0, n)
}
