package store

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"os"
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
	metaFreelistAt = 32
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
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	// The first meta page says how far away the second one is.
	pageSize := os.Getpagesize()
	first := make([]byte, metaOffset+metaSumAt+8)
	if _, err := f.ReadAt(first, 0); err != nil {
		return 0, fmt.Errorf("read the meta pages of %s: %w", path, err)
	}
	if m, ok := validMeta(first); ok {
		pageSize = int(binary.NativeEndian.Uint32(m[metaPageSizeAt:]))
	}
	second := make([]byte, len(first))
	if _, err := f.ReadAt(second, int64(pageSize)); err != nil {
		return 0, fmt.Errorf("read the meta pages of %s: %w", path, err)
	}
	var page, txid uint64
	found := false
	for _, p := range [][]byte{first, second} {
		m, ok := validMeta(p)
		if !ok {
			continue // torn by a crash: bbolt uses the other one
		}
		if t := binary.NativeEndian.Uint64(m[metaTxidAt:]); !found || t > txid {
			page, txid, found = binary.NativeEndian.Uint64(m[metaFreelistAt:]), t, true
		}
	}
	if !found {
		return 0, fmt.Errorf("%s: no valid meta page", path)
	}
	return page, nil
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
// commit left the list off the disk (see commit: after a crash while the
// list was long), it rebuilds it by walking the page tree. The walk reads
// the first page of every big record, one page fault after another: half
// of a 1.3 GiB file still held (32,768 records) took 3.5 s from a cold
// disk, nearly all of it waiting for reads a disk serves many at a time.
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
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("open %s: %v: %s", path, r, recoverHint(path))
		}
	}()
	_ = db.View(func(tx *bolt.Tx) error {
		entries := tx.Bucket(bucketEntries)
		if entries == nil {
			return nil
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
		return nil
	})
	return nil
}
