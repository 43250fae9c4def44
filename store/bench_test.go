package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const benchBodySize = 16 << 10

func benchEntry() *Entry {
	body := make([]byte, benchBodySize)
	for i := range body {
		body[i] = byte(i * 7)
	}
	return &Entry{
		Kind:        KindIngest,
		ReceivedAt:  time.Unix(1_700_000_000, 0),
		Query:       "name=bench.cpu{env=bench}&from=1700000000&until=1700000010",
		ContentType: "application/octet-stream",
		Body:        body,
	}
}

// putConcurrently makes n puts of e's shape to queues from writers
// goroutines, each Put with its own Entry as the store sets e.ID.
func putConcurrently(b *testing.B, s *Store, writers, n int, queues []string) {
	proto := benchEntry()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				e := *proto
				if err := s.Put(context.Background(), &e, queues); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatalf("put: %v", err)
	}
}

// BenchmarkPut measures durable puts of 16 KiB to two queues, with and
// without group commit. fsyncs/op is commits per put: 1 without group
// commit, 1/(writes per commit) with it.
func BenchmarkPut(b *testing.B) {
	for _, writers := range []int{1, 16, 64} {
		for _, group := range []bool{true, false} {
			name := fmt.Sprintf("writers=%d/groupcommit=%s", writers, map[bool]string{true: "on", false: "off"}[group])
			b.Run(name, func(b *testing.B) {
				s, err := Open(b.TempDir(), Options{NoGroupCommit: !group})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				b.SetBytes(int64(benchEntry().Size()))
				b.ResetTimer()
				putConcurrently(b, s, writers, b.N, []string{"a", "b"})
				b.StopTimer()
				commits, writes := s.CommitCounts()
				if writes != uint64(b.N) {
					b.Fatalf("%d writes for %d puts", writes, b.N)
				}
				b.ReportMetric(float64(commits)/float64(b.N), "fsyncs/op")
			})
		}
	}
}

// BenchmarkReadAck measures draining a queue the way a forwarder does:
// read a batch of 64, ack it, repeat. One op is one entry.
func BenchmarkReadAck(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	putConcurrently(b, s, 64, b.N, []string{"a"})
	ctx := context.Background()
	b.SetBytes(int64(benchEntry().Size()))
	b.ResetTimer()
	var after uint64
	done := 0
	for done < b.N {
		items, _, err := s.ReadBatch(ctx, "a", after, 64, 4<<20)
		if err != nil {
			b.Fatal(err)
		}
		if len(items) == 0 {
			b.Fatalf("queue empty after %d of %d entries", done, b.N)
		}
		seqs := make([]uint64, len(items))
		for i, it := range items {
			seqs[i] = it.Seq
		}
		if err := s.Ack(ctx, "a", seqs...); err != nil {
			b.Fatal(err)
		}
		after = seqs[len(seqs)-1]
		done += len(items)
	}
}
