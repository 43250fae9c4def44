package store

import (
	"fmt"
	"os"
	"path/filepath"
)

// Leftover is a temporary file of a compact that did not finish (killed,
// or the machine went down), removed when the store was next opened for
// writing or compacted.
type Leftover struct {
	Path  string
	Bytes int64
}

// compactPattern names Compact's temporary files in the data directory.
const compactPattern = FileName + ".compact-*"

// removeLeftovers deletes the temporary files of interrupted compacts in
// dir except keep, and returns them. Call it only while holding the
// store's exclusive lock: a compact in progress holds it too, so every
// file it finds is an orphan.
func removeLeftovers(dir, keep string) ([]Leftover, error) {
	paths, err := filepath.Glob(filepath.Join(dir, compactPattern))
	if err != nil {
		return nil, err
	}
	var out []Leftover
	for _, p := range paths {
		if p == keep {
			continue
		}
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if err := os.Remove(p); err != nil {
			return out, fmt.Errorf("remove the leftover of an interrupted compact %s: %w", p, err)
		}
		out = append(out, Leftover{Path: p, Bytes: fi.Size()})
	}
	return out, nil
}

// RemovedLeftovers lists the temporary files of interrupted compacts that
// Open removed.
func (s *Store) RemovedLeftovers() []Leftover { return s.leftovers }
