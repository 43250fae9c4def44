package powercut

import (
	"errors"
	"io"
	"os"
)

// pageSize is the unit in which unsynced data is kept.
const pageSize = 4096

// pending is a file's data written since its last fsync: whole pages, each
// the file's page as the process last wrote it, and the file's size as the
// process sees it. The real file is not touched until apply.
type pending struct {
	size int64 // as the process sees it
	// valid is where the real file's bytes stop counting: a truncate
	// since the last fsync cut them off there, and they read as zeros
	// if the file grows again.
	valid int64
	pages map[int64][]byte // by page index
}

func newPending(realSize int64) *pending {
	return &pending{size: realSize, valid: realSize, pages: map[int64][]byte{}}
}

// page returns page idx: the written one, or a copy of the real file's.
func (f *pending) page(real *os.File, idx int64) ([]byte, error) {
	if pg, ok := f.pages[idx]; ok {
		return pg, nil
	}
	pg := make([]byte, pageSize)
	start := idx * pageSize
	if start < f.valid {
		n, err := real.ReadAt(pg[:min(pageSize, f.valid-start)], start)
		if err != nil && !isEOF(err) {
			return nil, err
		}
		clear(pg[n:])
	}
	return pg, nil
}

func (f *pending) read(real *os.File, dest []byte, off int64) (int, error) {
	if off >= f.size {
		return 0, nil
	}
	end := min(off+int64(len(dest)), f.size)
	n := 0
	for pos := off; pos < end; {
		idx := pos / pageSize
		pg, err := f.page(real, idx)
		if err != nil {
			return n, err
		}
		c := copy(dest[n:end-off], pg[pos-idx*pageSize:])
		n += c
		pos += int64(c)
	}
	return n, nil
}

func (f *pending) write(real *os.File, data []byte, off int64) error {
	for done := 0; done < len(data); {
		pos := off + int64(done)
		idx := pos / pageSize
		pg, err := f.page(real, idx)
		if err != nil {
			return err
		}
		done += copy(pg[pos-idx*pageSize:], data[done:])
		f.pages[idx] = pg
	}
	f.size = max(f.size, off+int64(len(data)))
	return nil
}

func (f *pending) truncate(size int64) {
	if size < f.size {
		for idx, pg := range f.pages {
			start := idx * pageSize
			switch {
			case start >= size:
				delete(f.pages, idx)
			case start+pageSize > size:
				clear(pg[size-start:])
			}
		}
		f.valid = min(f.valid, size)
	}
	f.size = size
}

// apply writes the pending data to the real file (not synced).
func (f *pending) apply(real *os.File) error {
	fi, err := real.Stat()
	if err != nil {
		return err
	}
	if f.valid < fi.Size() {
		if err := real.Truncate(f.valid); err != nil {
			return err
		}
	}
	for idx, pg := range f.pages {
		start := idx * pageSize
		if start >= f.size {
			continue
		}
		if _, err := real.WriteAt(pg[:min(pageSize, f.size-start)], start); err != nil {
			return err
		}
	}
	return real.Truncate(f.size)
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }
