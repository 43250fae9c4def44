package relay

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/store"
)

// BenchmarkForward measures a forwarder draining its queue to a sink on
// loopback: one op is one 16 KiB /ingest entry delivered and acked. Run it
// with a count (-benchtime 5000x): the entries are stored before the timer
// starts, so the count bounds the disk it fills.
//
// Reported besides time: cpu-us/op, the CPU of the whole process (the
// forwarder, its acks' commits and the sink) per delivered entry, which is
// what competes with ingest on a loaded machine.
func BenchmarkForward(b *testing.B) {
	var delivered atomic.Int64
	done := make(chan struct{})
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if delivered.Add(1) == int64(b.N) {
			close(done)
		}
	}))
	defer sink.Close()
	st, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	body := make([]byte, 16<<10)
	for i := 0; i < b.N; i++ {
		e := &store.Entry{Kind: store.KindIngest, ReceivedAt: time.Now(), Query: "name=bench.cpu%7Benv%3Dbench%7D&format=pprof", ContentType: "application/octet-stream", Body: body}
		if err := st.Put(context.Background(), e, []string{"sink"}); err != nil {
			b.Fatal(err)
		}
	}
	f, err := NewForwarder(Destination{Name: "sink", URL: sink.URL}, st, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	b.ReportAllocs()
	cpu0 := processCPU(b)
	b.ResetTimer()
	go func() {
		defer close(ran)
		f.Run(ctx)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("%d of %d entries delivered in 5 minutes", delivered.Load(), b.N)
	}
	// Run returns once the last acks are durable.
	cancel()
	<-ran
	b.StopTimer()
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
	stats, err := st.Stats()
	if err != nil {
		b.Fatal(err)
	}
	if n := stats["sink"].Entries; n != 0 {
		b.Fatalf("%d entries still queued after all were delivered", n)
	}
}

// processCPU is the user and system CPU this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
