package store_test

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/store"
)

// BenchmarkSteady runs the store as a healthy relay does: 32 writers put
// 16 KiB requests for two destinations while one reader per destination
// reads each batch as it commits and acks it. One op is one request,
// stored, read twice and acked twice; the queues are empty at the end.
// write-B/op is what the store passed to pwrite per request (bbolt's
// pages and the record log's frames), commits/op how many commits it took
// (two fdatasyncs of bbolt's each, and one of the log's when it carried
// records), disk-B/body-B the bytes the process had the kernel write
// (write_bytes) per body byte.
func BenchmarkSteady(b *testing.B) {
	const writers = 32
	queues := []string{"a", "b"}
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<10)
	target := int64(len(queues) * b.N)
	allAcked := make(chan struct{})
	s, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var acked atomic.Int64
	var readers sync.WaitGroup
	var failed atomic.Value
	for _, q := range queues {
		readers.Add(1)
		go func() {
			defer readers.Done()
			wake := s.Wake(q)
			var after uint64
			for {
				items, _, err := s.ReadBatch(ctx, q, after, 256, 8<<20)
				if err != nil {
					failed.Store(err)
					return
				}
				if len(items) == 0 {
					select {
					case <-wake:
						continue
					case <-ctx.Done():
						return
					}
				}
				seqs := make([]uint64, len(items))
				for i, it := range items {
					seqs[i] = it.Seq
				}
				after = seqs[len(seqs)-1]
				if err := s.AckDeferred(context.Background(), q, seqs...); err != nil {
					failed.Store(err)
					return
				}
				if acked.Add(int64(len(seqs))) == target {
					close(allAcked)
				}
			}
		}()
	}

	wchar0, disk0 := layoutWchar(b), layoutDiskWrites(b)
	cpu0 := processCPU(b)
	c0, _ := s.CommitCounts()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	err = fromWriters(writers, b.N, func() error {
		e := &store.Entry{Kind: store.KindIngest, ReceivedAt: time.Now(), Query: "name=bench.cpu", ContentType: "application/octet-stream", Body: body}
		return s.Put(ctx, e, queues)
	})
	if err != nil {
		failed.Store(err)
	}
	if err, _ := failed.Load().(error); err == nil {
		<-allAcked
	}
	b.StopTimer()
	cpu := processCPU(b) - cpu0
	cancel()
	readers.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	c1, _ := s.CommitCounts()
	n := float64(b.N)
	b.ReportMetric(float64(c1-c0)/n, "commits/op")
	b.ReportMetric(float64(layoutWchar(b)-wchar0)/n, "write-B/op")
	b.ReportMetric(float64(layoutDiskWrites(b)-disk0)/n/float64(len(body)), "disk-B/body-B")
	b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-us/op")
}

// processCPU is the user and system CPU this process has used: the
// store's cost per request on a machine whose CPU is the limit.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
