package store

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	bolt "go.etcd.io/bbolt"
)

// Summary is everything `queue status` shows.
type Summary struct {
	Queues      map[string]QueueStats
	Archive     ArchiveStats
	Quarantined int
	// FileBytes is the size of the bbolt file; it never shrinks by itself
	// (see Compact).
	FileBytes int64
	// LogBytes is the size of the record log's segment files; a segment
	// goes once nothing in it is live.
	LogBytes int64
}

// Summary reads the per-queue counters, the archive and the file size in
// one short read transaction.
func (s *Store) Summary() (Summary, error) {
	queues, err := s.Stats()
	if err != nil {
		return Summary{}, err
	}
	sum := Summary{Queues: queues}
	err = s.view(func(tx *bolt.Tx) error {
		sum.Archive = archiveStats(tx)
		sum.Quarantined = tx.Bucket(bucketQuarantine).Stats().KeyN
		sum.FileBytes = tx.Size()
		return nil
	})
	if err != nil {
		return Summary{}, fmt.Errorf("summary: %w", err)
	}
	sum.Archive.Retention, sum.Archive.MaxBytes = s.opts.ArchiveRetention, s.opts.ArchiveMaxBytes
	if sum.LogBytes, err = s.log.bytes(); err != nil {
		return Summary{}, fmt.Errorf("summary: %w", err)
	}
	return sum, nil
}

// LogBytes is the size of the record log's segment files in data dir dir
// (those of every bbolt file there: see segmentPrefix).
func LogBytes(dir string) (int64, error) {
	paths, err := filepath.Glob(filepath.Join(dir, segmentPrefix+"*"+segmentSuffix))
	var n int64
	for _, p := range paths {
		if _, _, ok := parseSegmentName(filepath.Base(p)); !ok {
			continue
		}
		if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
	}
	return n, err
}

// QueueNames lists the queues and dead-letter lists on disk, sorted.
func (sum Summary) QueueNames() []string {
	names := make([]string, 0, len(sum.Queues))
	for n := range sum.Queues {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
