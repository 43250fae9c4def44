package relay

// Destination faults the forwarder must survive, beyond those of
// forwarder_test.go (refused connections, hanging, poison, 429): a
// destination that resets the connection mid-response, one that flaps up
// and down, and a slow one. Each case feeds the same entries to the faulty
// destination and to a healthy one on the same store, and checks that
// both get every entry at least once, that nothing is dead-lettered, and
// that the healthy one is not held back (it finishes; no timing is
// asserted).

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/grafana/pyroscope/api/gen/proto/go/push/v1/pushv1connect"
	typesv1 "github.com/grafana/pyroscope/api/gen/proto/go/types/v1"
	"google.golang.org/protobuf/proto"

	"github.com/pyrorelay/pyrorelay/store"
)

// faultFunc decides how a faulty destination answers one request: it
// answers (or breaks the connection) itself and reports true, or reports
// false to let the destination answer normally. attempt counts the
// requests for this entry so far, this one included; took counts the
// entry as kept, for faults that strike after the destination kept it.
type faultFunc func(attempt int, w http.ResponseWriter, r *http.Request, took func()) (faulted bool)

// entryDest is a test destination for both APIs that knows which entry a
// request carries (the /ingest body, or the req_id label of a Push), so
// that it can count attempts and deliveries per entry, and that lets a
// faultFunc misbehave.
type entryDest struct {
	t     *testing.T
	fault faultFunc // nil: always serve
	push  http.Handler

	mu       sync.Mutex
	attempts map[string]int
	taken    map[string]int // kept by the destination (at-least-once: may exceed 1)
	faults   int
}

func newEntryDest(t *testing.T, fault faultFunc) *entryDest {
	_, push := pushv1connect.NewPusherServiceHandler(pushFunc(func(context.Context, *connect.Request[pushv1.PushRequest]) (*connect.Response[pushv1.PushResponse], error) {
		return connect.NewResponse(&pushv1.PushResponse{}), nil
	}))
	return &entryDest{t: t, fault: fault, push: push, attempts: map[string]int{}, taken: map[string]int{}}
}

func (d *entryDest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // the relay gave up on this request; it retries
	}
	id, err := requestEntryID(r, body)
	if err != nil {
		d.t.Errorf("destination got a request it cannot attribute: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	d.mu.Lock()
	d.attempts[id]++
	attempt := d.attempts[id]
	d.mu.Unlock()
	took := func() {
		d.mu.Lock()
		d.taken[id]++
		d.mu.Unlock()
	}
	if d.fault != nil && d.fault(attempt, w, r, took) {
		d.mu.Lock()
		d.faults++
		d.mu.Unlock()
		return
	}
	took()
	if r.URL.Path == "/ingest" {
		w.WriteHeader(http.StatusOK)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	d.push.ServeHTTP(w, r)
}

// requestEntryID finds the entry id in a forwarded request: the body of an
// /ingest request, the req_id label of a Push (sent gzipped).
func requestEntryID(r *http.Request, body []byte) (string, error) {
	if r.URL.Path == "/ingest" {
		return string(body), nil
	}
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return "", fmt.Errorf("push body: %w", err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			return "", fmt.Errorf("push body: %w", err)
		}
	}
	var msg pushv1.PushRequest
	if err := proto.Unmarshal(body, &msg); err != nil {
		return "", fmt.Errorf("push body: %w", err)
	}
	for _, s := range msg.GetSeries() {
		for _, l := range s.GetLabels() {
			if l.GetName() == "req_id" {
				return l.GetValue(), nil
			}
		}
	}
	return "", fmt.Errorf("push to %s without a req_id label", r.URL.Path)
}

// snapshot returns copies of the per-entry counts and the fault count.
func (d *entryDest) snapshot() (taken map[string]int, faults int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	taken = make(map[string]int, len(d.taken))
	for k, v := range d.taken {
		taken[k] = v
	}
	return taken, d.faults
}

// hijack takes the connection over from the HTTP server, so that a fault
// can write a broken answer and cut the connection.
func hijack(t *testing.T, w http.ResponseWriter) net.Conn {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return nil
	}
	return conn
}

// reset closes conn with a TCP RST instead of a FIN: with SO_LINGER 0 the
// kernel drops unsent data and aborts the connection, as a crashing server
// or a middlebox does.
func reset(t *testing.T, conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		if err := tc.SetLinger(0); err != nil {
			t.Errorf("SetLinger(0): %v", err)
		}
	}
	_ = conn.Close()
}

// faultEntries are ids of half /ingest, half Push entries.
func faultEntries(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("entry-%02d", i)
	}
	return ids
}

// putFaultEntries stores one entry per id in queues: even ids as /ingest
// requests whose body is the id, odd ones as Push requests with a req_id
// label.
func putFaultEntries(t *testing.T, st *store.Store, queues []string, ids []string) {
	t.Helper()
	profile := readTestdata(t, "cpu.pb.gz")
	for i, id := range ids {
		if i%2 == 0 {
			put(t, st, queues, bodies(id)...)
			continue
		}
		msg := &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{
			Labels: []*typesv1.LabelPair{
				{Name: "__name__", Value: "process_cpu"},
				{Name: "service_name", Value: "faults"},
				{Name: "req_id", Value: id},
			},
			Samples: []*pushv1.RawSample{{RawProfile: profile}},
		}}}
		put(t, st, queues, pushEntry(t, msg, ""))
	}
}

// flapping is a fault that answers 503 and 200 in turns of period, down
// first. The clock starts at the first request, so that the first attempt
// always meets the destination down, however long the test took to get
// there.
func flapping(period time.Duration) faultFunc {
	var once sync.Once
	var start time.Time
	return func(_ int, w http.ResponseWriter, _ *http.Request, _ func()) bool {
		once.Do(func() { start = time.Now() })
		if (time.Since(start)/period)%2 == 1 {
			return false // up
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"code":"unavailable","message":"flapping"}`)
		return true
	}
}

func TestForwardDestinationFaults(t *testing.T) {
	// Each entry meets the fault this many times before the destination
	// answers it properly: below the poison cap, so that a fault which
	// counts as a strike still lets the entry through.
	const faultyAttempts = 2
	tests := []struct {
		name        string
		entries     int
		concurrency int
		fault       func(t *testing.T) faultFunc
		// wantFaultsPerEntry, if set, is how many faults every entry must
		// have met: the fault did happen, and no entry slipped past it.
		wantFaultsPerEntry bool
	}{
		{
			// The connection closes (FIN) after half a status line: the
			// relay cannot know what the destination did, so it retries.
			name: "reset before the status line", entries: 8, concurrency: 2, wantFaultsPerEntry: true,
			fault: func(t *testing.T) faultFunc {
				return func(attempt int, w http.ResponseWriter, _ *http.Request, _ func()) bool {
					if attempt > faultyAttempts {
						return false
					}
					if conn := hijack(t, w); conn != nil {
						_, _ = io.WriteString(conn, "HTTP/1.1 20")
						_ = conn.Close()
					}
					return true
				}
			},
		},
		{
			// The destination read the request and aborts the connection
			// with a RST, answering nothing.
			name: "connection reset (RST) without an answer", entries: 8, concurrency: 2, wantFaultsPerEntry: true,
			fault: func(t *testing.T) faultFunc {
				return func(attempt int, w http.ResponseWriter, _ *http.Request, _ func()) bool {
					if attempt > faultyAttempts {
						return false
					}
					if conn := hijack(t, w); conn != nil {
						reset(t, conn)
					}
					return true
				}
			},
		},
		{
			// The destination kept the entry, then the connection is reset
			// halfway through the body of its answer. /ingest has its 200
			// status and acks; a Push answer does not decode, so it is sent
			// again: a duplicate, which at-least-once allows.
			name: "reset in the middle of a 200 answer", entries: 8, concurrency: 2,
			fault: func(t *testing.T) faultFunc {
				return func(attempt int, w http.ResponseWriter, r *http.Request, took func()) bool {
					if attempt > faultyAttempts {
						return false
					}
					took()
					conn := hijack(t, w)
					if conn == nil {
						return true
					}
					ct := "text/plain"
					if r.URL.Path != "/ingest" {
						ct = "application/proto"
					}
					_, _ = fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: 64\r\n\r\n\x0a\x05", ct)
					reset(t, conn)
					return true
				}
			},
		},
		{
			// Up and down every 150 ms, down first: 503 is what a load
			// balancer answers while the server behind it restarts.
			name: "flapping every 150ms", entries: 20, concurrency: 2,
			fault: func(*testing.T) faultFunc { return flapping(150 * time.Millisecond) },
		},
		{
			// One second per request: with 4 in flight, 8 entries take two
			// rounds of requests.
			name: "slow, 1s per request", entries: 8, concurrency: 4,
			fault: func(*testing.T) faultFunc {
				return func(_ int, _ http.ResponseWriter, r *http.Request, _ func()) bool {
					select {
					case <-time.After(time.Second):
						return false // slow, then a normal answer
					case <-r.Context().Done():
						return true // the relay gave up: it sends again
					}
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			faulty := newEntryDest(t, tc.fault(t))
			healthy := newEntryDest(t, nil)
			// Closed after the forwarders stop: cleanups run last-in
			// first-out.
			faultySrv, healthySrv := newServer(t, faulty), newServer(t, healthy)

			ids := faultEntries(tc.entries)
			putFaultEntries(t, st, []string{"faulty", "healthy"}, ids)
			m := NewMetrics(nil)
			fd := testDest("faulty", faultySrv.URL)
			fd.Concurrency = tc.concurrency
			hd := testDest("healthy", healthySrv.URL)
			hd.Concurrency = tc.concurrency
			runForwarder(t, fd, st, m)
			runForwarder(t, hd, st, m)

			for name, d := range map[string]*entryDest{"faulty": faulty, "healthy": healthy} {
				eventually(t, name+" destination took every entry", func() bool {
					taken, _ := d.snapshot()
					return len(taken) == len(ids)
				})
				eventually(t, name+" queue empty", queueEmpty(t, st, name))
			}

			for name, d := range map[string]*entryDest{"faulty": faulty, "healthy": healthy} {
				taken, faults := d.snapshot()
				dups := 0
				for _, id := range ids {
					switch n := taken[id]; {
					case n == 0:
						t.Errorf("%s destination never took %s", name, id)
					case n > 1:
						dups += n - 1
					}
				}
				if len(taken) != len(ids) {
					t.Errorf("%s destination took %d distinct entries, want %d: %v", name, len(taken), len(ids), sortedKeys(taken))
				}
				if dl := deadLetters(t, st, name); len(dl) != 0 {
					t.Errorf("%s: dead letters %+v, want none", name, dl)
				}
				if s := queueStats(t, st, name); s.Entries != 0 || s.DeadEntries != 0 {
					t.Errorf("%s: queue stats %+v, want empty", name, s)
				}
				if name == "healthy" {
					if faults != 0 || dups != 0 {
						t.Errorf("healthy destination: %d faults, %d duplicates, want none", faults, dups)
					}
					continue
				}
				t.Logf("%s destination: %d entries taken, %d duplicates, %d faulty answers, %v retried attempts",
					name, len(taken), dups, faults, counterValue(t, m.attempts.WithLabelValues(name, "retry")))
				if tc.wantFaultsPerEntry && faults != faultyAttempts*len(ids) {
					t.Errorf("%d faulty answers, want %d (%d per entry)", faults, faultyAttempts*len(ids), faultyAttempts)
				}
				if faults == 0 && tc.name != "slow, 1s per request" {
					t.Errorf("the destination never misbehaved: the test proves nothing")
				}
			}
			if sum, err := st.Summary(); err != nil || sum.Quarantined != 0 {
				t.Errorf("quarantined %d (err %v), want 0", sum.Quarantined, err)
			}
		})
	}
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// failingAcks is a Queue whose first acks fail, the way every commit fails
// while the disk is full (ENOSPC).
type failingAcks struct {
	*store.Store
	fail atomic.Int64 // acks left to fail
}

func (q *failingAcks) AckDeferred(ctx context.Context, queue string, seqs ...uint64) error {
	if q.fail.Add(-1) >= 0 {
		return fmt.Errorf("ack: write pyrorelay.db: %w", syscall.ENOSPC)
	}
	return q.Store.AckDeferred(ctx, queue, seqs...)
}

// TestForwardRetriesFailedAcks: an ack that fails to commit is tried again
// until it does, so that delivered entries leave the queue once the disk
// has room again, without a restart; the forwarder's cursor is past them,
// so they are not sent twice meanwhile. At shutdown the retrying stops and
// what is unacked stays queued, to be sent again after a restart.
func TestForwardRetriesFailedAcks(t *testing.T) {
	old := ackRetryInterval
	ackRetryInterval = 10 * time.Millisecond
	// Registered first, so it runs after every forwarder has stopped.
	t.Cleanup(func() { ackRetryInterval = old })

	t.Run("recovers", func(t *testing.T) {
		st := openStore(t)
		dest := newEntryDest(t, nil)
		srv := newServer(t, dest)
		ids := faultEntries(6)
		putFaultEntries(t, st, []string{"dest"}, ids)
		q := &failingAcks{Store: st}
		q.fail.Store(3)
		runForwarder(t, testDest("dest", srv.URL), q, nil)

		eventually(t, "queue empty once acks commit again", queueEmpty(t, st, "dest"))
		if left := q.fail.Load(); left > 0 {
			t.Errorf("%d ack failures left unused: the acks never failed", left)
		}
		taken, _ := dest.snapshot()
		for _, id := range ids {
			if taken[id] != 1 {
				t.Errorf("%s taken %d times, want once", id, taken[id])
			}
		}
	})

	t.Run("shutdown while acks fail", func(t *testing.T) {
		st := openStore(t)
		dest := newEntryDest(t, nil)
		srv := newServer(t, dest)
		ids := faultEntries(4)
		putFaultEntries(t, st, []string{"dest"}, ids)
		q := &failingAcks{Store: st}
		q.fail.Store(1 << 40) // the disk never frees up
		stop := runForwarder(t, testDest("dest", srv.URL), q, nil)

		eventually(t, "every entry delivered", func() bool {
			taken, _ := dest.snapshot()
			return len(taken) == len(ids)
		})
		stop() // fails the test if Run does not return
		if s := queueStats(t, st, "dest"); s.Entries != int64(len(ids)) {
			t.Errorf("queue holds %d entries after shutdown, want the %d unacked ones", s.Entries, len(ids))
		}
	})
}
