package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
)

// CompactResult is the file size before and after Compact, and the
// leftovers of earlier compacts it removed.
type CompactResult struct {
	Before, After int64
	Removed       []Leftover
}

// compactTxBytes bounds one transaction of the copy, so that compacting a
// large file does not hold it all in memory.
const compactTxBytes = 64 << 20

// Compact rewrites the store in dir into a new file with no free pages and
// puts it in place of the old one. bbolt reuses freed pages but never gives
// them back to the file system, so after a long outage the file stays at
// its high-water mark until compacted. Compact needs the store closed (it
// returns ErrLocked while a relay holds it) and free space for a copy of
// the live data in the same directory. The old file is replaced only once
// the copy is on disk: a crash part-way leaves the old file as it was, and
// a temporary file, which the next compact, or the next Open for writing,
// removes.
func Compact(dir string, lockTimeout time.Duration) (CompactResult, error) {
	var res CompactResult
	path := filepath.Join(dir, FileName)
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return res, fmt.Errorf("no pyrorelay store in %s: check --data-dir: %w", dir, ErrNotFound)
		}
		return res, fmt.Errorf("compact %s: %w", path, err)
	}
	res.Before = fi.Size()
	if lockTimeout <= 0 {
		lockTimeout = time.Second
	}
	// Open for writing: the exclusive lock keeps a relay (or another
	// compact) out until the new file is in place.
	src, err := openBolt(path, Options{LockTimeout: lockTimeout})
	if err != nil {
		return res, err
	}
	defer func() { _ = src.Close() }()
	// Under the lock: leftovers of compacts that were killed.
	if res.Removed, err = removeLeftovers(dir, ""); err != nil {
		return res, err
	}

	tmp, err := os.CreateTemp(dir, compactPattern)
	if err != nil {
		return res, fmt.Errorf("compact: create temporary file in %s: %w", dir, err)
	}
	tmpPath := tmp.Name()
	_ = tmp.Close()
	keep := false
	defer func() {
		if !keep {
			_ = os.Remove(tmpPath)
		}
	}()
	// The new file replaces the old one: it gets its owner and mode.
	if err := keepOwnerAndMode(tmpPath, fi); err != nil {
		return res, fmt.Errorf("compact: %w", err)
	}
	// NoSync while copying: the file is synced once, before the rename.
	dst, err := bolt.Open(tmpPath, 0o600, &bolt.Options{NoSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return res, fmt.Errorf("compact: open %s: %w", tmpPath, err)
	}
	if err := compactGuarded(dst, src, path); err != nil {
		_ = dst.Close()
		return res, fmt.Errorf("compact %s (it needs free space for a copy of the live data in %s): %w", path, dir, err)
	}
	if err := dst.Sync(); err != nil {
		_ = dst.Close()
		return res, fmt.Errorf("compact: sync %s: %w", tmpPath, err)
	}
	if err := dst.Close(); err != nil {
		return res, fmt.Errorf("compact: close %s: %w", tmpPath, err)
	}
	if err := syncFile(tmpPath); err != nil {
		return res, err
	}
	if fi, err := os.Stat(tmpPath); err == nil {
		res.After = fi.Size()
	}
	if err := os.Rename(tmpPath, path); err != nil {
		return res, fmt.Errorf("compact: replace %s: %w", path, err)
	}
	keep = true
	if err := syncFile(dir); err != nil {
		return res, err
	}
	return res, nil
}

// syncFile fsyncs a file or directory.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// compactGuarded is bolt.Compact with a damaged page of src turned into an
// error that says how to recover, not a crash.
func compactGuarded(dst, src *bolt.DB, path string) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v: %s", ErrDamaged, r, recoverHint(path))
		}
	}()
	return bolt.Compact(dst, src, compactTxBytes)
}
