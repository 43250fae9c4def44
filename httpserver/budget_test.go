package httpserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyrorelay/pyrorelay/internal/syncbuf"
	"github.com/pyrorelay/pyrorelay/store"
)

// TestBudgetReserveForSmall: a request past its first MiB cannot take the
// last eighth of the budget, so a small request finds room while large ones
// hold all they may; a large request that finds no room is refused after
// the wait.
func TestBudgetReserveForSmall(t *testing.T) {
	const limit = 8 << 20
	b := NewBudget(limit, 50*time.Millisecond)
	ctx := context.Background()
	large := b.newHold()
	if err := large.grow(ctx, limit-limit/8); err != nil {
		t.Fatalf("large request up to the reserve: %v", err)
	}
	other := b.newHold()
	if err := other.grow(ctx, 2<<20); !errors.Is(err, ErrBusy) {
		t.Fatalf("second large request into the reserve: %v, want ErrBusy", err)
	}
	small := b.newHold()
	if err := small.grow(ctx, 256<<10); err != nil {
		t.Fatalf("small request with large ones at their bound: %v", err)
	}
	if got, want := b.Held(), int64(limit-limit/8+256<<10); got != want {
		t.Errorf("Held = %d, want %d", got, want)
	}
	// Room given back wakes a waiter at once.
	done := make(chan error, 1)
	waiter := NewBudget(1<<20, pollDeadline)
	first := waiter.newHold()
	if err := first.grow(ctx, 1<<20); err != nil {
		t.Fatal(err)
	}
	go func() { done <- waiter.newHold().grow(ctx, 512<<10) }()
	first.release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("waiter: %v", err)
		}
	case <-time.After(pollDeadline):
		t.Fatal("a waiter was not woken when room came free")
	}
	large.release()
	small.release()
	other.release()
	if got := b.Held(); got != 0 {
		t.Errorf("Held after every release = %d, want 0", got)
	}
}

// stalledBody opens a connection that declares a body of declared bytes,
// sends the headers and sent bytes of it, then stalls. The connection is
// closed at the end of the test.
func stalledBody(t *testing.T, addr, path string, declared, sent int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: relay\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n", path, declared)
	if _, err := c.Write(make([]byte, sent)); err != nil {
		t.Fatalf("write body: %v", err)
	}
	return c
}

// TestDeclaredLengthNotAllocated is the memory test against a real server:
// many connections that each declare 64 MiB and send 3 bytes hold one first
// buffer each, not what they declare, and a normal request still gets in.
func TestDeclaredLengthNotAllocated(t *testing.T) {
	const conns = 60
	budget := NewBudget(DefaultMaxRequestMemory, time.Second)
	reg := prometheus.NewRegistry()
	budget.Register(reg)
	s := New(Config{MaxBodySize: 64 << 20, MaxConnections: conns + 10, MinBodyRate: -1},
		Options{Store: &fakeStore{}, Registry: reg, Budget: budget})
	base := serve(t, s)
	addr := strings.TrimPrefix(base, "http://")
	for range conns {
		stalledBody(t, addr, "/ingest?name=app.cpu", 64<<20, 3)
	}
	// Every request is reading its body once it holds its first buffer.
	waitFor(t, "every request to read its body", func() bool { return budget.Held() >= conns*chunkSize })
	if got, bound := budget.Held(), int64(conns*chunkSize); got > bound {
		t.Fatalf("%d stalled requests declaring 64 MiB hold %d bytes, want at most %d", conns, got, bound)
	}
	resp, err := http.Post(base+"/ingest?name=app.cpu", "text/plain", strings.NewReader("a;b 1\n"))
	if err != nil {
		t.Fatalf("normal request: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("normal request beside stalled ones = %d, want 200", resp.StatusCode)
	}
}

// readAnswer reads the answer to the request sent on c.
func readAnswer(t *testing.T, c net.Conn) (*http.Response, string) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(pollDeadline)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// TestBudgetFullAnswers503: a request that cannot get room waits briefly,
// then is answered 503 with Retry-After; one that needs more than the
// budget ever gives a request is answered 413 at once; a small request
// still gets in beside a large stalled one.
func TestBudgetFullAnswers503(t *testing.T) {
	budget := NewBudget(2<<20, 200*time.Millisecond)
	s := New(Config{MaxBodySize: 16 << 20, MinBodyRate: -1},
		Options{Store: &fakeStore{}, Registry: prometheus.NewRegistry(), Budget: budget})
	base := serve(t, s)
	addr := strings.TrimPrefix(base, "http://")

	// A large request stalls holding 1.2 MiB; a second one's 1 MiB does
	// not fit beside it in what large requests may take (7/8 of 2 MiB).
	first := stalledBody(t, addr, "/ingest?name=app.cpu", 8<<20, 1200<<10)
	waitFor(t, "the first request to hold what it sent", func() bool { return budget.Held() >= 1200<<10 })
	second := stalledBody(t, addr, "/ingest?name=app.cpu", 8<<20, 1000<<10)
	resp, b := readAnswer(t, second)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("request beside a full budget = %d (Retry-After %q): %s; want 503 with Retry-After",
			resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	if !strings.Contains(b, "--max-request-memory") {
		t.Errorf("503 reason %s does not name --max-request-memory", b)
	}
	first.Close()
	waitFor(t, "the room to be given back", func() bool { return budget.Held() == 0 })

	// More than one request may ever hold: no use waiting.
	resp, b = readAnswer(t, stalledBody(t, addr, "/ingest?name=app.cpu", 8<<20, 1900<<10))
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("request over what the budget gives one = %d: %s; want 413", resp.StatusCode, b)
	}

	// A large request stalled at the most it may hold leaves room for a
	// small one.
	stalledBody(t, addr, "/ingest?name=app.cpu", 8<<20, 1700<<10)
	waitFor(t, "the large request to hold what it sent", func() bool { return budget.Held() >= 1700<<10 })
	post, err := http.Post(base+"/ingest?name=app.cpu", "text/plain", strings.NewReader(strings.Repeat("a;b 1\n", 10000)))
	if err != nil {
		t.Fatalf("small request: %v", err)
	}
	post.Body.Close()
	if post.StatusCode != http.StatusOK {
		t.Fatalf("small request beside a stalled large one = %d, want 200", post.StatusCode)
	}
}

// TestMinBodyRate: a body trickling in slower than MinBodyRate is answered
// 408 and its connection closed long before ReadTimeout.
func TestMinBodyRate(t *testing.T) {
	ts := newServer(t, Config{MinBodyRate: 1 << 10, BodyRateGrace: 300 * time.Millisecond, ReadTimeout: 10 * time.Minute})
	addr := strings.TrimPrefix(serve(t, ts.Server), "http://")
	c := stalledBody(t, addr, "/ingest?name=app.cpu", 1000, 3)
	if err := c.SetReadDeadline(time.Now().Add(pollDeadline)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read answer: %v (a trickling body held its connection)", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), "--min-body-rate") {
		t.Fatalf("trickling body = %d %s, want 408 naming --min-body-rate", resp.StatusCode, b)
	}
	if attempts, _ := ts.store.counts(); attempts != 0 {
		t.Errorf("store saw %d Puts from a body that never arrived", attempts)
	}
}

// gatedStore blocks every Put until its gate closes.
type gatedStore struct {
	fakeStore
	entered chan struct{}
	gate    chan struct{}
}

func (g *gatedStore) Put(ctx context.Context, e *store.Entry, queues []string) error {
	g.entered <- struct{}{}
	<-g.gate
	return g.fakeStore.Put(ctx, e, queues)
}

// TestH2StreamsCountAgainstConnections: one h2c connection cannot carry
// more requests at once than MaxConnections; the one over is answered
// unavailable (503) after the wait.
func TestH2StreamsCountAgainstConnections(t *testing.T) {
	gs := &gatedStore{entered: make(chan struct{}, 8), gate: make(chan struct{})}
	s := New(Config{MaxConnections: 2},
		Options{Store: gs, Registry: prometheus.NewRegistry(), Budget: NewBudget(0, 300*time.Millisecond)})
	base := serve(t, s)
	c := pushClient(t, base, true, connect.WithGRPC())
	msg := &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{cpuSeries([]byte("profile"))}}

	errs := make(chan error, 3)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(gs.gate)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Push(context.Background(), connect.NewRequest(msg))
			errs <- err
		}()
	}
	for range 2 {
		select {
		case <-gs.entered:
		case <-time.After(pollDeadline):
			t.Fatal("two pushes never reached the store")
		}
	}
	_, err := c.Push(context.Background(), connect.NewRequest(msg))
	if code := connect.CodeOf(err); code != connect.CodeUnavailable {
		t.Fatalf("third stream with MaxConnections 2 = %v (code %v), want unavailable", err, code)
	}
}

// TestRefusalsDoNotFloodTheLog: a client making every request fail the
// same way (here the store refusing it) produces one log line per kind per
// LogRepeatInterval, not one per request.
func TestRefusalsDoNotFloodTheLog(t *testing.T) {
	var buf syncbuf.Buffer
	fs := &fakeStore{}
	fs.setErr(errors.New("no space left on device"))
	s := New(Config{}, Options{Store: fs, Registry: prometheus.NewRegistry(), Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	h := s.Handler()
	for range 200 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/ingest?name=app.cpu", strings.NewReader("a;b 1\n")))
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503 from a failing store", rec.Code)
		}
	}
	if n := strings.Count(buf.String(), "store request"); n != 1 {
		t.Errorf("%d log lines for 200 identical failures, want 1:\n%s", n, buf.String())
	}
}
