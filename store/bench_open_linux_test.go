package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkOpenAfterCrash times Open on a file left by a crash while the
// free-page list was long (half of a backlog drained): bbolt rebuilds the
// list by walking every page the queue still holds. "cold" evicts the
// file from the page cache first (posix_fadvise DONTNEED), as after a
// power cut; "warm" leaves it there, as after a crash of the process
// alone. read-ahead=off replaces warmWalk's requests with nothing.
// -benchtime as a count: each op copies the file (not timed).
func BenchmarkOpenAfterCrash(b *testing.B) {
	const n = 8192 // of 16 KiB: a 140 MiB file, half of it still held
	src := b.TempDir()
	s, err := Open(src, Options{freelistSyncMax: 16, RecentBytes: -1})
	if err != nil {
		b.Fatal(err)
	}
	putConcurrently(b, s, 64, n, []string{"a"})
	ctx := context.Background()
	var after uint64
	for acked := 0; acked < n/2; {
		items, _, err := s.ReadBatch(ctx, "a", after, 256, 64<<20)
		if err != nil {
			b.Fatal(err)
		}
		var seqs []uint64
		for _, it := range items {
			seqs = append(seqs, it.Seq)
			after = it.Seq
		}
		if err := s.Ack(ctx, "a", seqs...); err != nil {
			b.Fatal(err)
		}
		acked += len(items)
	}
	// What the walk reads are bbolt's pages: the records must be in them
	// (schema 2), as in a file that held a big backlog before the log.
	toSchema2(b, s)
	image, err := os.ReadFile(s.Path())
	if err != nil {
		b.Fatal(err)
	}
	_ = s.Close()
	check := filepath.Join(b.TempDir(), FileName)
	if err := writeSynced(check, image); err != nil {
		b.Fatal(err)
	}
	if page, err := freelistPage(check); err != nil || page != noFreelist {
		b.Fatalf("the crash image has its free-page list on disk (%v): nothing to walk", err)
	}

	for _, cache := range []string{"cold", "warm"} {
		for _, ahead := range []bool{false, true} {
			b.Run(fmt.Sprintf("cache=%s/read-ahead=%v", cache, map[bool]string{true: "on", false: "off"}[ahead]), func(b *testing.B) {
				opts := Options{}
				if !ahead {
					opts.willNeed = func(uintptr, int64) {}
				}
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					dir := b.TempDir()
					path := filepath.Join(dir, FileName)
					if err := writeSynced(path, image); err != nil {
						b.Fatal(err)
					}
					if cache == "cold" {
						if err := evict(path); err != nil {
							b.Skipf("cannot evict the file from the page cache: %v", err)
						}
					}
					b.StartTimer()
					s, err := Open(dir, opts)
					if err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					_ = s.Close()
					b.StartTimer()
				}
			})
		}
	}
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// evict drops the file's clean pages from the page cache.
func evict(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}
