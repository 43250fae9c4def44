package store_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/store"
)

// BenchmarkPutLayout compares the two ways to keep one request for two
// destinations, 16 KiB bodies, 64 concurrent writers:
//
//   - shared: the store's layout, one Put naming both queues; the body is
//     written once and each queue holds a 24-byte reference to it.
//   - copy-per-queue: one Put per queue, as a relay that keeps a copy per
//     destination would; both Puts are in flight at once, as they would be
//     in one transaction, so they share group commits.
//
// One op is one request. write-B/op is what the process passed to write
// syscalls (bbolt writes pages with pwrite), file-B/op the growth of the
// file; commits/op and fdatasyncs/op (two per bbolt commit: data pages,
// then the meta page) say what the disk was asked to flush.
func BenchmarkPutLayout(b *testing.B) {
	const writers = 64
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<10)
	for _, layout := range []string{"shared", "copy-per-queue"} {
		b.Run(layout, func(b *testing.B) {
			s, err := store.Open(b.TempDir(), store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			put := func(queues ...string) error {
				e := &store.Entry{Kind: store.KindIngest, ReceivedAt: time.Now(), Query: "name=bench.cpu", ContentType: "application/octet-stream", Body: body}
				return s.Put(context.Background(), e, queues)
			}
			request := func() error {
				if layout == "shared" {
					return put("a", "b")
				}
				errs := make(chan error, 2)
				go func() { errs <- put("a") }()
				go func() { errs <- put("b") }()
				return errors2(<-errs, <-errs)
			}
			size0 := layoutFileSize(b, s.Path())
			wchar0 := layoutWchar(b)
			c0, _ := s.CommitCounts()
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			err = fromWriters(writers, b.N, request)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			c1, _ := s.CommitCounts()
			n := float64(b.N)
			b.ReportMetric(float64(c1-c0)/n, "commits/op")
			b.ReportMetric(2*float64(c1-c0)/n, "fdatasyncs/op")
			b.ReportMetric(float64(layoutWchar(b)-wchar0)/n, "write-B/op")
			b.ReportMetric(float64(layoutFileSize(b, s.Path())-size0)/n, "file-B/op")
		})
	}
}

// fromWriters makes n requests from writers goroutines, each taking the
// next request until n are taken; it returns once all are done, with the
// first error (a writer stops at its first).
func fromWriters(writers, n int, request func() error) error {
	var next atomic.Int64
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if err := request(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs // nil when closed empty
}

func errors2(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func layoutFileSize(b *testing.B, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}

// layoutWchar is the bytes this process passed to write syscalls so far
// (/proc/self/io), or 0 where that is not available.
func layoutWchar(b *testing.B) int64 { return procIO(b, "wchar: ") }

// layoutDiskWrites is write_bytes of /proc/self/io: the bytes of page cache
// this process dirtied, which the kernel writes to the disk. It counts
// whole pages (whole folios, where the kernel caches the file in larger
// ones), so it exceeds what was passed to pwrite.
func layoutDiskWrites(b *testing.B) int64 { return procIO(b, "write_bytes: ") }

// procIO reads one counter of /proc/self/io; 0 where there is none.
func procIO(b *testing.B, prefix string) int64 {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	return 0
}
