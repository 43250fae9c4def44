package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrTruncated is wrapped by the error Open returns for a file shorter
// than its own meta page says it is.
var ErrTruncated = errors.New("store file is truncated")

// fileMeta is what the newest valid meta page of a bbolt file says.
type fileMeta struct {
	pageSize int64
	freelist uint64 // page of the free-page list, or noFreelist
	pgid     uint64 // high-water mark: pages in use, meta pages included
	txid     uint64
	root     uint64 // page of the root bucket
}

// newestMeta reads the meta page bbolt would use: the valid one with the
// higher transaction ID.
func newestMeta(path string) (fileMeta, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileMeta{}, err
	}
	defer f.Close()
	readWithoutReadAhead(f) // see pageFolios
	// The first meta page says how far away the second one is.
	pageSize := int64(os.Getpagesize())
	first := make([]byte, metaOffset+metaSumAt+8)
	if _, err := f.ReadAt(first, 0); err != nil {
		return fileMeta{}, fmt.Errorf("read the meta pages of %s: %w", path, err)
	}
	if m, ok := validMeta(first); ok {
		pageSize = int64(binary.NativeEndian.Uint32(m[metaPageSizeAt:]))
	}
	second := make([]byte, len(first))
	if _, err := f.ReadAt(second, pageSize); err != nil && !errors.Is(err, io.EOF) {
		return fileMeta{}, fmt.Errorf("read the meta pages of %s: %w", path, err)
	}
	var best fileMeta
	found := false
	for _, p := range [][]byte{first, second} {
		m, ok := validMeta(p)
		if !ok {
			continue // torn by a crash: bbolt uses the other one
		}
		ne := binary.NativeEndian
		if t := ne.Uint64(m[metaTxidAt:]); !found || t > best.txid {
			best = fileMeta{pageSize: int64(ne.Uint32(m[metaPageSizeAt:])), freelist: ne.Uint64(m[metaFreelistAt:]),
				pgid: ne.Uint64(m[metaPgidAt:]), txid: t, root: ne.Uint64(m[metaRootAt:])}
			found = true
		}
	}
	if !found {
		return fileMeta{}, fmt.Errorf("%s: no valid meta page", path)
	}
	return best, nil
}

// checkFile refuses, before bbolt maps it, a file whose damage bbolt would
// meet while opening it: a file shorter than the pages its newest meta
// page says are in use (bbolt would map it whole and fault, SIGBUS, on the
// first page past the end, which no recover catches), and a free-page list
// that is not one (bbolt panics reading it, with the file mapped and
// locked). A new file, or one without a valid meta page (bbolt refuses
// that on its own), passes.
func checkFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil || fi.Size() == 0 {
		return nil // missing or new: bbolt creates it
	}
	m, err := newestMeta(path)
	if err != nil {
		return nil
	}
	if want := int64(m.pgid) * m.pageSize; m.pgid > 0 && fi.Size() < want {
		return fmt.Errorf("open %s: %w: it has %d bytes, its meta page says %d are in use: %s",
			path, ErrTruncated, fi.Size(), want, recoverHint(path))
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	readWithoutReadAhead(f) // see pageFolios
	if m.freelist != noFreelist {
		if err := checkFreelistPage(f, m); err != nil {
			return fmt.Errorf("open %s: %w: %v: %s", path, ErrDamaged, err, recoverHint(path))
		}
	}
	if err := checkTrees(f, m); err != nil {
		return fmt.Errorf("open %s: %w: %v: %s", path, ErrDamaged, err, recoverHint(path))
	}
	return nil
}

// bbolt's page header: page ID (8 bytes), flags (2), count (2), overflow
// pages (4); a free-page list whose count does not fit in the header holds
// 0xFFFF there and the count in its first 8 bytes.
const (
	pageHeaderLen    = 16
	freelistPageFlag = 0x10
)

// checkFreelistPage checks that the free-page list of m is a free-page
// list, and that the page IDs it lists lie inside its pages.
func checkFreelistPage(f *os.File, m fileMeta) error {
	if m.freelist < 2 || m.freelist >= m.pgid {
		return fmt.Errorf("free-page list at page %d, outside the %d pages in use", m.freelist, m.pgid)
	}
	h := make([]byte, pageHeaderLen+8)
	if _, err := f.ReadAt(h, int64(m.freelist)*m.pageSize); err != nil {
		return fmt.Errorf("read the free-page list: %w", err)
	}
	ne := binary.NativeEndian
	if flags := ne.Uint16(h[8:]); flags&freelistPageFlag == 0 {
		return fmt.Errorf("page %d should hold the free-page list, its flags are %#x", m.freelist, flags)
	}
	count, at := uint64(ne.Uint16(h[10:])), int64(pageHeaderLen)
	if count == 0xFFFF {
		count, at = ne.Uint64(h[pageHeaderLen:]), pageHeaderLen+8
	}
	span := (int64(ne.Uint32(h[12:])) + 1) * m.pageSize
	if count > uint64(span) || at+int64(count)*8 > span || int64(m.freelist)*m.pageSize+span > int64(m.pgid)*m.pageSize {
		return fmt.Errorf("free-page list at page %d lists %d pages, more than its %d bytes hold", m.freelist, count, span)
	}
	// bbolt writes the list sorted; a list that is not, or that names a
	// page outside the file, would hand out pages that hold data.
	ids := make([]byte, count*8)
	if _, err := f.ReadAt(ids, int64(m.freelist)*m.pageSize+at); err != nil {
		return fmt.Errorf("read the free-page list: %w", err)
	}
	prev := uint64(1)
	for i := 0; i < len(ids); i += 8 {
		id := ne.Uint64(ids[i:])
		if id <= prev || id >= m.pgid {
			return fmt.Errorf("free-page list at page %d is damaged: entry %d is page %d", m.freelist, i/8, id)
		}
		prev = id
	}
	return nil
}
