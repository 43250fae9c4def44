package store

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"os"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bbolt's meta page, as its file format lays it out after the 16-byte page
// header: magic, version, page size and flags (4 bytes each), the root
// bucket (16), then the free-page list's page, the high-water page, the
// transaction ID and a checksum of what precedes it (8 each), in the
// machine's byte order.
const (
	metaOffset     = 16
	metaMagic      = 0xED0CDAED
	metaVersion    = 2
	metaPageSizeAt = 8
	metaRootAt     = 16
	metaFreelistAt = 32
	metaPgidAt     = 40
	metaTxidAt     = 48
	metaSumAt      = 56
	// noFreelist is the free-list page of a meta page whose commit left
	// the list off the disk.
	noFreelist = ^uint64(0)
)

// freelistPage returns which page holds bbolt's list of free pages,
// according to the newest valid meta page of the file at path, or
// noFreelist when the last commit left the list off the disk.
func freelistPage(path string) (uint64, error) {
	m, err := newestMeta(path)
	if err != nil {
		return 0, err
	}
	return m.freelist, nil
}

// validMeta returns the meta of page p if its magic, version and checksum
// are bbolt's.
func validMeta(p []byte) ([]byte, bool) {
	m := p[metaOffset:]
	ne := binary.NativeEndian
	if ne.Uint32(m) != metaMagic || ne.Uint32(m[4:]) != metaVersion {
		return nil, false
	}
	h := fnv.New64a()
	h.Write(m[:metaSumAt])
	return m, h.Sum64() == ne.Uint64(m[metaSumAt:])
}

// warmWalk asks the kernel to read, all at once, the pages that opening
// the file at path for writes is about to read one at a time.
//
// bbolt opened for writes loads its free-page list, and when the last
// commit left the list off the disk (see freelist.go: after a crash), it
// rebuilds it by walking the page tree. The walk reads
// the first page of every big record, one page fault after another, nearly
// all of its time waiting for reads a disk would serve many at a time.
// A read-only open does not walk; it lists those pages in the entries
// bucket (a record's bucket header holds its page), so the walk that
// follows finds them read or on their way. Reading ahead only helps:
// anything that goes wrong here leaves the walk to its page faults.
//
// It returns an error only for damage it met: bbolt panics on some kinds,
// and the walk runs in a goroutine of bbolt's own, where a panic cannot be
// recovered and ends the process. Met here first, the damage becomes a
// refusal to start that says how to recover.
func warmWalk(path string, opts Options) (err error) {
	if page, err := freelistPage(path); err != nil || page != noFreelist {
		return nil
	}
	// One try for the lock: if another process holds the file, the open
	// that follows waits for it and says so.
	db, err := openBolt(path, Options{ReadOnly: true, LockTimeout: time.Nanosecond})
	if err != nil {
		return nil
	}
	defer db.Close()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("open %s: %w: %v: %s", path, ErrDamaged, r, recoverHint(path))
		}
	}()
	return db.View(func(tx *bolt.Tx) error {
		prefetchRecords(tx, opts)
		// Then read every page bbolt's walk reads, here, where damage
		// can be met safely.
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			walkBucket(b)
			return nil
		})
	})
}

// walkBucket reads every key of b and of the buckets inside it.
func walkBucket(b *bolt.Bucket) {
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil {
			if child := b.Bucket(k); child != nil {
				walkBucket(child)
			}
		}
	}
}

// prefetchRecords asks the kernel for the first page of every big record
// not in the page cache yet.
func prefetchRecords(tx *bolt.Tx, opts Options) {
	entries := tx.Bucket(bucketEntries)
	if entries == nil {
		return
	}
	// The transaction holds the memory map in place.
	info := tx.DB().Info()
	base, ps := info.Data, int64(info.PageSize)
	// After a crash of the process alone the file is still in the page
	// cache, and asking for 32,768 cached pages one call at a time added
	// 0.12 s to a walk it could not speed up: ask only for the others.
	resident := opts.resident(base, tx.Size())
	osPage := int64(os.Getpagesize())
	c := entries.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v != nil {
			continue // a small record, in the entries bucket's own pages
		}
		root := int64(entries.Bucket(k).Root())
		if root == 0 {
			continue
		}
		if i := root * ps / osPage; i < int64(len(resident)) && resident[i]&1 != 0 {
			continue
		}
		opts.willNeed(base+uintptr(root*ps), ps)
	}
}
