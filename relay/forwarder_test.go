package relay

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/grafana/pyroscope/api/gen/proto/go/push/v1/pushv1connect"
	typesv1 "github.com/grafana/pyroscope/api/gen/proto/go/types/v1"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/pyrorelay/pyrorelay/internal/poll"
	"github.com/pyrorelay/pyrorelay/store"
)

// waitTimeout bounds every wait on a condition: generous, because a loaded
// 2-core CI machine is slow, and a passing test never waits it out.
const waitTimeout = 30 * time.Second

// eventually polls cond until it holds or waitTimeout passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !poll.Until(waitTimeout, 5*time.Millisecond, cond) {
		t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
	}
}

// waitUntil is eventually for handler goroutines, which must not call
// t.Fatal: it reports whether cond came true in time.
func waitUntil(cond func() bool) bool {
	return poll.Until(waitTimeout, 2*time.Millisecond, cond)
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return st
}

// testDest is a destination with backoffs small enough for tests.
func testDest(name, url string) Destination {
	return Destination{
		Name: name, URL: url,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Timeout: 20 * time.Second, Concurrency: 2,
	}
}

// startForwarder starts a forwarder for d over q. Run ends when cancel is
// called; done is closed when it has returned.
func startForwarder(t *testing.T, d Destination, q Queue, m *Metrics) (cancel context.CancelFunc, done <-chan struct{}) {
	t.Helper()
	f, err := NewForwarder(d, q, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		f.Run(ctx)
	}()
	return cancel, ran
}

// runForwarder starts a forwarder for d over q. The returned stop cancels
// Run and waits for it to return; it also runs at test end, so servers and
// the store registered before it are closed after it.
func runForwarder(t *testing.T, d Destination, q Queue, m *Metrics) (stop func()) {
	t.Helper()
	cancel, done := startForwarder(t, d, q, m)
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(waitTimeout):
				t.Errorf("forwarder %s: Run did not return within %v of cancel", d.Name, waitTimeout)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// put stores entries in the named queues, filling in kind and time.
func put(t *testing.T, st *store.Store, queues []string, entries ...*store.Entry) {
	t.Helper()
	for _, e := range entries {
		if e.Kind == 0 {
			e.Kind = store.KindIngest
		}
		if e.ReceivedAt.IsZero() {
			e.ReceivedAt = time.Now()
		}
		if err := st.Put(context.Background(), e, queues); err != nil {
			t.Fatal(err)
		}
	}
}

// bodies returns ingest entries with the given bodies.
// numbered is n entry names, entry-000 and on.
func numbered(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("entry-%03d", i)
	}
	return names
}

func bodies(names ...string) []*store.Entry {
	out := make([]*store.Entry, len(names))
	for i, n := range names {
		out[i] = &store.Entry{Query: "name=app.cpu", ContentType: "text/plain", Body: []byte(n)}
	}
	return out
}

func queueStats(t *testing.T, st *store.Store, queue string) store.QueueStats {
	t.Helper()
	all, err := st.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return all[queue]
}

// queueEmpty reports whether queue holds no entry.
func queueEmpty(t *testing.T, st *store.Store, queue string) func() bool {
	return func() bool { return queueStats(t, st, queue).Entries == 0 }
}

type deadEntry struct {
	store.DeadLetter
	Body string
}

func deadLetters(t *testing.T, st *store.Store, queue string) []deadEntry {
	t.Helper()
	var out []deadEntry
	err := st.DeadLetters(queue, func(d *store.DeadLetter, e *store.Entry) error {
		de := deadEntry{DeadLetter: *d}
		if e != nil {
			de.Body = string(e.Body)
		}
		out = append(out, de)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// request is what a test destination saw of one request.
type request struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
	At                     time.Time
}

// recorder is a test destination: it keeps every request and answers with
// what answer returns (200 when answer is nil).
type recorder struct {
	mu     sync.Mutex
	reqs   []request
	answer func(n int, r request, w http.ResponseWriter)
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req := request{
		Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
		Header: r.Header.Clone(), Body: body, At: time.Now(),
	}
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, req)
	n := len(rec.reqs)
	rec.mu.Unlock()
	if rec.answer != nil {
		rec.answer(n, req, w)
	}
}

func (rec *recorder) requests() []request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]request(nil), rec.reqs...)
}

// answered200 counts the bodies a destination answered 200 to, per body.
type answered200 struct {
	mu sync.Mutex
	n  map[string]int
}

func (a *answered200) ok(w http.ResponseWriter, body []byte) {
	a.mu.Lock()
	if a.n == nil {
		a.n = map[string]int{}
	}
	a.n[string(body)]++
	a.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (a *answered200) counts() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]int, len(a.n))
	for k, v := range a.n {
		out[k] = v
	}
	return out
}

func newServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// multipartProfile builds the body pyroscope-go sends: parts profile and
// sample_type_config, with a boundary that needs quoting in Content-Type.
func multipartProfile(t *testing.T) (contentType string, body []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if err := mw.SetBoundary("pyro:relay/boundary=0042"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct{ field, file, data string }{
		{"profile", "profile.pprof", "cpu.pb.gz"},
		{"sample_type_config", "sample_type_config.json", "sample_type_config.json"},
	} {
		h := make(textproto.MIMEHeader)
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, p.field, p.file))
		h.Set("Content-Type", "application/octet-stream")
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(readTestdata(t, p.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return mw.FormDataContentType(), buf.Bytes()
}

func TestForwardIngestRequest(t *testing.T) {
	mpType, mpBody := multipartProfile(t)
	if !strings.Contains(mpType, `"`) {
		t.Fatalf("content type %q: the boundary was meant to need quoting", mpType)
	}
	tokenFile := writeFile(t, t.TempDir(), "token", "from-file\n")
	const query = "name=my.app.cpu%7Benv%3Dprod%2Cregion%3Deu%7D&from=1700000000000000000&until=1700000010000000000&spyName=gospy&sampleRate=100&unknownParam=kept"

	tests := []struct {
		name       string
		dest       func(d *Destination)
		urlSuffix  string
		entry      store.Entry
		wantPath   string
		wantAuth   string
		wantTenant string
	}{
		{
			name: "multipart with basic auth, headers and passed-through tenant",
			dest: func(d *Destination) {
				d.BasicAuth = &BasicAuth{Username: "user", Password: "p@ss:word"}
				d.Headers = map[string]string{"X-Custom": "yes", "X-Other": "a b"}
			},
			entry:      store.Entry{Query: query, ContentType: mpType, Tenant: "t-entry", Body: mpBody},
			wantPath:   "/ingest",
			wantAuth:   "Basic dXNlcjpwQHNzOndvcmQ=",
			wantTenant: "t-entry",
		},
		{
			name: "gzip folded with bearer token and destination tenant",
			dest: func(d *Destination) {
				d.BearerToken = "tok-123"
				d.TenantID = "t-dest"
			},
			entry: store.Entry{
				Query: "name=app.wall", ContentType: "text/plain; charset=utf-8", ContentEncoding: "gzip",
				Tenant: "t-entry", Body: gzipBytes(t, readTestdata(t, "folded.txt")),
			},
			wantPath:   "/ingest",
			wantAuth:   "Bearer tok-123",
			wantTenant: "t-dest",
		},
		{
			name:      "bearer token file, path prefix, no query, no tenant",
			dest:      func(d *Destination) { d.BearerTokenFile = tokenFile },
			urlSuffix: "/pyroscope/",
			entry:     store.Entry{ContentType: "binary/octet-stream+trie", Body: []byte{0, 1, 2, 0xff}},
			wantPath:  "/pyroscope/ingest",
			wantAuth:  "Bearer from-file",
		},
		{
			name:       "destination tenant without entry tenant",
			dest:       func(d *Destination) { d.TenantID = "t-dest" },
			entry:      store.Entry{Query: "name=x&format=speedscope", ContentType: "application/json", Body: readTestdata(t, "speedscope.json")},
			wantPath:   "/ingest",
			wantTenant: "t-dest",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t)
			rec := &recorder{}
			srv := newServer(t, rec)
			d := testDest("dest", srv.URL+tt.urlSuffix)
			tt.dest(&d)
			e := tt.entry
			put(t, st, []string{"dest"}, &e)
			runForwarder(t, d, st, nil)
			eventually(t, "entry delivered and acked", queueEmpty(t, st, "dest"))

			reqs := rec.requests()
			if len(reqs) != 1 {
				t.Fatalf("destination got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != http.MethodPost || r.Path != tt.wantPath {
				t.Errorf("request %s %s, want POST %s", r.Method, r.Path, tt.wantPath)
			}
			if r.RawQuery != e.Query {
				t.Errorf("query %q, want %q unchanged", r.RawQuery, e.Query)
			}
			if got := r.Header.Values("Content-Type"); len(got) != 1 || got[0] != e.ContentType {
				t.Errorf("Content-Type %q, want exactly %q", got, e.ContentType)
			}
			if got := r.Header.Get("Content-Encoding"); got != e.ContentEncoding {
				t.Errorf("Content-Encoding %q, want %q", got, e.ContentEncoding)
			}
			if got := r.Header.Get("Accept-Encoding"); got != "" {
				t.Errorf("Accept-Encoding %q: the answer is too small to ask for it gzipped", got)
			}
			if !bytes.Equal(r.Body, e.Body) {
				t.Errorf("body differs: %d bytes, want %d", len(r.Body), len(e.Body))
			}
			if ua := r.Header.Get("User-Agent"); ua != UserAgent || !strings.HasPrefix(ua, "pyrorelay/") {
				t.Errorf("User-Agent %q, want %q", ua, UserAgent)
			}
			if got := r.Header.Get("Authorization"); got != tt.wantAuth {
				t.Errorf("Authorization %q, want %q", got, tt.wantAuth)
			}
			if got := r.Header.Values("X-Scope-OrgID"); tt.wantTenant == "" && len(got) != 0 || tt.wantTenant != "" && (len(got) != 1 || got[0] != tt.wantTenant) {
				t.Errorf("X-Scope-OrgID %q, want %q", got, tt.wantTenant)
			}
			for k, v := range d.Headers {
				if got := r.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if strings.HasPrefix(e.ContentType, "multipart/") {
				checkMultipart(t, r)
			}
		})
	}
}

// checkMultipart parses what the destination received the way Pyroscope
// does, proving the boundary survived.
func checkMultipart(t *testing.T, r request) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		t.Fatalf("content type %q: %v", r.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(bytes.NewReader(r.Body), params["boundary"])
	parts := map[string][]byte{}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read multipart: %v", err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		parts[p.FormName()] = b
	}
	if !bytes.Equal(parts["profile"], readTestdata(t, "cpu.pb.gz")) {
		t.Error("part profile differs from testdata/cpu.pb.gz")
	}
	if !bytes.Equal(parts["sample_type_config"], readTestdata(t, "sample_type_config.json")) {
		t.Error("part sample_type_config differs")
	}
}

func TestForwardRetriesUnavailableUntilDelivered(t *testing.T) {
	const failFirst, n = 6, 10
	st := openStore(t)
	var got answered200
	var calls atomic.Int64
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if calls.Add(1) <= failFirst {
			http.Error(w, `{"code":"unavailable","message":"ingesters starting"}`, http.StatusServiceUnavailable)
			return
		}
		got.ok(w, body)
	}))
	names := numbered(n)
	put(t, st, []string{"dest"}, bodies(names...)...)
	m := NewMetrics(nil)
	runForwarder(t, testDest("dest", srv.URL), st, m)

	eventually(t, "every entry delivered", func() bool { return len(got.counts()) == n })
	eventually(t, "queue empty", queueEmpty(t, st, "dest"))
	for _, name := range names {
		if c := got.counts()[name]; c != 1 {
			t.Errorf("%s answered 200 %d times, want once", name, c)
		}
	}
	if dl := deadLetters(t, st, "dest"); len(dl) != 0 {
		t.Errorf("dead letters %+v, want none", dl)
	}
	if s := queueStats(t, st, "dest"); s.Entries != 0 || s.Bytes != 0 || s.DeadEntries != 0 {
		t.Errorf("stats %+v, want all zero", s)
	}
	if r := counterValue(t, m.attempts.WithLabelValues("dest", "retry")); r != failFirst {
		t.Errorf("retry attempts metric %v, want %d", r, failFirst)
	}
	if d := counterValue(t, m.attempts.WithLabelValues("dest", "delivered")); d != n {
		t.Errorf("delivered attempts metric %v, want %d", d, n)
	}
}

func TestForwardPermanentErrorDeadLetters(t *testing.T) {
	st := openStore(t)
	var got answered200
	const reply = `{"code":"invalid_argument","message":"invalid name: app name is required"}`
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if string(body) == "bad" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, reply+"\n")
			return
		}
		got.ok(w, body)
	}))
	put(t, st, []string{"dest"}, bodies("bad", "good-1", "good-2", "good-3")...)
	d := testDest("dest", srv.URL)
	// One worker: the good entries can only get through once the bad one,
	// first in the queue, has left it.
	d.Concurrency = 1
	m := NewMetrics(nil)
	runForwarder(t, d, st, m)

	eventually(t, "good entries delivered", func() bool { return len(got.counts()) == 3 })
	eventually(t, "queue empty", queueEmpty(t, st, "dest"))
	dl := deadLetters(t, st, "dest")
	if len(dl) != 1 {
		t.Fatalf("dead letters %+v, want one", dl)
	}
	if dl[0].Body != "bad" || dl[0].Status != http.StatusBadRequest || dl[0].Attempts != 1 {
		t.Errorf("dead letter %+v, want body bad, status 400, 1 attempt", dl[0])
	}
	if !strings.HasPrefix(dl[0].Reason, "400 ") || !strings.Contains(dl[0].Reason, reply) {
		t.Errorf("reason %q, want the status and the server's reply %q", dl[0].Reason, reply)
	}
	if s := queueStats(t, st, "dest"); s.DeadEntries != 1 {
		t.Errorf("DeadEntries = %d, want 1", s.DeadEntries)
	}
	eventually(t, "dead-lettered metric at 1", func() bool {
		return counterValue(t, m.deadLettered.WithLabelValues("dest", "permanent")) == 1
	})
}

func TestForwardLongReplyIsCutInReason(t *testing.T) {
	st := openStore(t)
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = io.WriteString(w, "line one\n\tline two "+strings.Repeat("x", 5000))
	}))
	put(t, st, []string{"dest"}, bodies("e")...)
	runForwarder(t, testDest("dest", srv.URL), st, nil)
	eventually(t, "entry dead-lettered", func() bool { return len(deadLetters(t, st, "dest")) == 1 })
	r := deadLetters(t, st, "dest")[0].Reason
	if !strings.HasPrefix(r, "422 line one line two xxx") {
		t.Errorf("reason %q, want the reply on one line", r)
	}
	if len(r) > 400 || strings.ContainsAny(r, "\n\t") {
		t.Errorf("reason is %d bytes or spans lines: %q", len(r), r)
	}
}

// failingOne is a destination that answers status and reply to the entry
// whose body is bad, counting its tries, and 200 to every other.
func failingOne(t *testing.T, bad string, status int, reply string) (srv *httptest.Server, got *answered200, tries *atomic.Int64) {
	t.Helper()
	got, tries = &answered200{}, &atomic.Int64{}
	srv = newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if string(body) == bad {
			tries.Add(1)
			http.Error(w, reply, status)
			return
		}
		got.ok(w, body)
	}))
	return srv, got, tries
}

func TestForwardPoisonEntryDeadLettered(t *testing.T) {
	st := openStore(t)
	srv, got, poisonCalls := failingOne(t, "poison", http.StatusInternalServerError, "panic: runtime error: index out of range")
	put(t, st, []string{"dest"}, bodies("ok-1", "poison", "ok-2", "ok-3", "ok-4")...)
	d := testDest("dest", srv.URL)
	d.MaxAttempts = 3
	m := NewMetrics(nil)
	runForwarder(t, d, st, m)

	eventually(t, "poison dead-lettered", func() bool { return len(deadLetters(t, st, "dest")) == 1 })
	eventually(t, "others delivered", func() bool { return len(got.counts()) == 4 })
	eventually(t, "queue empty", queueEmpty(t, st, "dest"))
	dl := deadLetters(t, st, "dest")[0]
	if dl.Body != "poison" || dl.Status != http.StatusInternalServerError || dl.Attempts != 3 {
		t.Errorf("dead letter %+v, want body poison, status 500, 3 attempts", dl)
	}
	if !strings.HasPrefix(dl.Reason, "poison") || !strings.Contains(dl.Reason, "index out of range") {
		t.Errorf("reason %q, want it to start with poison and carry the last reply", dl.Reason)
	}
	if c := poisonCalls.Load(); c != 3 {
		t.Errorf("poison entry sent %d times, want 3", c)
	}
	// The metric moves just after the dead letter is committed.
	eventually(t, "poison metric at 1", func() bool {
		return counterValue(t, m.deadLettered.WithLabelValues("dest", "poison")) == 1
	})
}

func TestForwardOutageNeverDeadLetters(t *testing.T) {
	st := openStore(t)
	// A closed server: its port refuses connections.
	down := httptest.NewServer(http.NotFoundHandler())
	url := down.URL
	down.Close()
	put(t, st, []string{"dest"}, bodies("a", "b", "c")...)
	d := testDest("dest", url)
	d.MaxAttempts = 2
	m := NewMetrics(nil)
	runForwarder(t, d, st, m)

	retries := m.attempts.WithLabelValues("dest", "retry")
	eventually(t, "at least 10 failed attempts", func() bool { return counterValue(t, retries) >= 10 })
	if dl := deadLetters(t, st, "dest"); len(dl) != 0 {
		t.Errorf("dead letters %+v during an outage, want none", dl)
	}
	if s := queueStats(t, st, "dest"); s.Entries != 3 {
		t.Errorf("queue holds %d entries, want all 3", s.Entries)
	}
}

func TestForwardHonoursRetryAfter(t *testing.T) {
	st := openStore(t)
	rec := &recorder{answer: func(n int, _ request, w http.ResponseWriter) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "rate limited", http.StatusTooManyRequests)
		}
	}}
	srv := newServer(t, rec)
	put(t, st, []string{"dest"}, bodies("e")...)
	d := testDest("dest", srv.URL)
	d.MaxBackoff = 5 * time.Second
	runForwarder(t, d, st, nil)

	eventually(t, "entry delivered", queueEmpty(t, st, "dest"))
	reqs := rec.requests()
	if len(reqs) != 2 {
		t.Fatalf("got %d requests, want 2", len(reqs))
	}
	// A lower bound on a wait the forwarder imposes: safe on a slow machine.
	if gap := reqs[1].At.Sub(reqs[0].At); gap < 900*time.Millisecond {
		t.Errorf("second attempt %v after the first, want at least the 1s of Retry-After", gap)
	}
}

// A rate limit takes some entries and refuses others; an entry refused with
// 429 while others get through is not singled out, so it must not become
// poison however often that happens.
func TestForwardRateLimitedEntryIsNotPoison(t *testing.T) {
	const throttled = 4
	st := openStore(t)
	var got answered200
	var limitedCalls, helpers atomic.Int64
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if string(body) != "limited" || limitedCalls.Add(1) > throttled {
			got.ok(w, body)
			return
		}
		// Make another entry get delivered while this one is in flight,
		// so that the forwarder sees the destination take other entries.
		h := &store.Entry{Kind: store.KindIngest, ReceivedAt: time.Now(), Body: fmt.Appendf(nil, "helper-%d", helpers.Add(1))}
		if err := st.Put(context.Background(), h, []string{"dest"}); err != nil {
			t.Errorf("put helper: %v", err)
		}
		if !waitUntil(func() bool {
			s, err := st.Stats()
			return err == nil && s["dest"].Entries == 1
		}) {
			t.Errorf("helper entry was not delivered while the limited one was in flight")
		}
		http.Error(w, `{"code":"resource_exhausted","message":"ingestion rate limit"}`, http.StatusTooManyRequests)
	}))
	put(t, st, []string{"dest"}, bodies("limited")...)
	d := testDest("dest", srv.URL)
	d.MaxAttempts = 2
	runForwarder(t, d, st, nil)

	// The queue empties whether the entry is delivered or dead-lettered.
	eventually(t, "queue empty", queueEmpty(t, st, "dest"))
	if dl := deadLetters(t, st, "dest"); len(dl) != 0 {
		t.Fatalf("dead letters %+v, want none", dl)
	}
	if c := got.counts()["limited"]; c != 1 {
		t.Errorf("limited entry answered 200 %d times, want once", c)
	}
	if h := helpers.Load(); h != throttled || len(got.counts()) != throttled+1 {
		t.Errorf("%d helpers put, %d bodies delivered; want %d and %d", h, len(got.counts()), throttled, throttled+1)
	}
}

func TestForwardIsolation(t *testing.T) {
	const n = 10
	st := openStore(t)
	release := make(chan struct{})
	var aArrived, aAnswered atomic.Int64
	hanging := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		aArrived.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		aAnswered.Add(1)
	}))
	var got answered200
	healthy := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got.ok(w, body)
	}))
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("e%d", i)
	}
	put(t, st, []string{"a", "b"}, bodies(names...)...)
	m := NewMetrics(nil)
	runForwarder(t, testDest("a", hanging.URL), st, m)
	runForwarder(t, testDest("b", healthy.URL), st, m)
	// Runs before the forwarders stop and the servers close (cleanups run
	// last-in first-out), so that nothing waits on the hanging handler.
	t.Cleanup(func() { close(release) })

	eventually(t, "healthy destination got every entry", func() bool { return len(got.counts()) == n })
	eventually(t, "healthy queue empty", queueEmpty(t, st, "b"))
	eventually(t, "hanging destination has requests in flight", func() bool { return aArrived.Load() > 0 })
	if a := aAnswered.Load(); a != 0 {
		t.Errorf("hanging destination answered %d requests, want 0", a)
	}
	if s := queueStats(t, st, "a"); s.Entries != n {
		t.Errorf("hanging destination's queue holds %d entries, want %d", s.Entries, n)
	}
}

// pushFunc adapts a function to pushv1connect.PusherServiceHandler.
type pushFunc func(context.Context, *connect.Request[pushv1.PushRequest]) (*connect.Response[pushv1.PushResponse], error)

func (f pushFunc) Push(ctx context.Context, req *connect.Request[pushv1.PushRequest]) (*connect.Response[pushv1.PushResponse], error) {
	return f(ctx, req)
}

// pushServer is a destination that speaks the real Push API.
func pushServer(t *testing.T, fn pushFunc) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	path, h := pushv1connect.NewPusherServiceHandler(fn)
	mux.Handle(path, h)
	return newServer(t, mux)
}

func samplePush(t *testing.T) *pushv1.PushRequest {
	t.Helper()
	return &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{
		{
			Labels: []*typesv1.LabelPair{
				{Name: "__name__", Value: "process_cpu"},
				{Name: "service_name", Value: "checkout"},
				{Name: "env", Value: "prod"},
			},
			Samples: []*pushv1.RawSample{{RawProfile: readTestdata(t, "cpu.pb.gz"), ID: "5b3c0a1e-1111-4d3a-9c53-000000000001"}},
		},
		{
			Labels: []*typesv1.LabelPair{
				{Name: "__name__", Value: "memory"},
				{Name: "service_name", Value: "checkout"},
			},
			Samples: []*pushv1.RawSample{{RawProfile: readTestdata(t, "heap.pb.gz"), ID: "5b3c0a1e-1111-4d3a-9c53-000000000002"}},
		},
	}}
}

func pushEntry(t *testing.T, msg *pushv1.PushRequest, tenant string) *store.Entry {
	t.Helper()
	b, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	return &store.Entry{Kind: store.KindPush, ContentType: "application/proto", Tenant: tenant, Body: b}
}

func TestForwardPush(t *testing.T) {
	tests := []struct {
		name       string
		dest       func(d *Destination)
		tenant     string
		wantAuth   string
		wantTenant string
	}{
		{"bearer and entry tenant", func(d *Destination) { d.BearerToken = "tok" }, "t-entry", "Bearer tok", "t-entry"},
		{"basic and destination tenant", func(d *Destination) {
			d.BasicAuth = &BasicAuth{Username: "u", Password: "p"}
			d.TenantID = "t-dest"
		}, "t-entry", "Basic dTpw", "t-dest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t)
			type seen struct {
				msg    *pushv1.PushRequest
				header http.Header
			}
			var mu sync.Mutex
			var calls []seen
			srv := pushServer(t, func(_ context.Context, req *connect.Request[pushv1.PushRequest]) (*connect.Response[pushv1.PushResponse], error) {
				mu.Lock()
				calls = append(calls, seen{proto.Clone(req.Msg).(*pushv1.PushRequest), req.Header().Clone()})
				mu.Unlock()
				return connect.NewResponse(&pushv1.PushResponse{}), nil
			})
			want := samplePush(t)
			put(t, st, []string{"dest"}, pushEntry(t, want, tt.tenant))
			d := testDest("dest", srv.URL)
			d.Headers = map[string]string{"X-Custom": "yes"}
			tt.dest(&d)
			runForwarder(t, d, st, nil)

			eventually(t, "push delivered", queueEmpty(t, st, "dest"))
			mu.Lock()
			defer mu.Unlock()
			if len(calls) != 1 {
				t.Fatalf("handler called %d times, want 1", len(calls))
			}
			c := calls[0]
			if !proto.Equal(c.msg, want) {
				t.Errorf("handler got a different PushRequest: %d series", len(c.msg.GetSeries()))
			}
			for k, v := range map[string]string{
				"Authorization": tt.wantAuth, "X-Scope-OrgID": tt.wantTenant, "X-Custom": "yes", "User-Agent": UserAgent,
			} {
				if got := c.header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestForwardPushErrors(t *testing.T) {
	t.Run("invalid argument dead-lettered", func(t *testing.T) {
		st := openStore(t)
		var calls atomic.Int64
		srv := pushServer(t, func(context.Context, *connect.Request[pushv1.PushRequest]) (*connect.Response[pushv1.PushResponse], error) {
			calls.Add(1)
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("profile too old"))
		})
		put(t, st, []string{"dest"}, pushEntry(t, samplePush(t), ""))
		runForwarder(t, testDest("dest", srv.URL), st, nil)

		eventually(t, "push dead-lettered", func() bool { return len(deadLetters(t, st, "dest")) == 1 })
		dl := deadLetters(t, st, "dest")[0]
		if !strings.Contains(dl.Reason, "invalid_argument") || !strings.Contains(dl.Reason, "profile too old") || dl.Attempts != 1 {
			t.Errorf("dead letter %+v, want the code and message after 1 attempt", dl)
		}
		if queueStats(t, st, "dest").Entries != 0 || calls.Load() != 1 {
			t.Errorf("queue not empty or %d calls, want 1", calls.Load())
		}
	})

	t.Run("unavailable then ok delivered", func(t *testing.T) {
		const failures = 3
		st := openStore(t)
		var calls atomic.Int64
		srv := pushServer(t, func(context.Context, *connect.Request[pushv1.PushRequest]) (*connect.Response[pushv1.PushResponse], error) {
			if calls.Add(1) <= failures {
				return nil, connect.NewError(connect.CodeUnavailable, errors.New("ingester not ready"))
			}
			return connect.NewResponse(&pushv1.PushResponse{}), nil
		})
		put(t, st, []string{"dest"}, pushEntry(t, samplePush(t), ""))
		d := testDest("dest", srv.URL)
		d.MaxAttempts = 2 // below the failures: unavailable must not strike
		runForwarder(t, d, st, nil)

		eventually(t, "push delivered", queueEmpty(t, st, "dest"))
		if c := calls.Load(); c != failures+1 {
			t.Errorf("handler called %d times, want %d", c, failures+1)
		}
		if dl := deadLetters(t, st, "dest"); len(dl) != 0 {
			t.Errorf("dead letters %+v, want none", dl)
		}
	})

	// Poison is an entry the destination refuses again and again while it
	// takes others: here the one sent as tenant "corrupt".
	t.Run("corrupt raw profile is poison", func(t *testing.T) {
		st := openStore(t)
		var good atomic.Int64
		srv := pushServer(t, func(_ context.Context, req *connect.Request[pushv1.PushRequest]) (*connect.Response[pushv1.PushResponse], error) {
			if req.Header().Get("X-Scope-OrgID") == "corrupt" {
				// What Pyroscope answers to a raw_profile it cannot parse.
				return nil, connect.NewError(connect.CodeUnknown, errors.New("failed to parse pprof"))
			}
			good.Add(1)
			return connect.NewResponse(&pushv1.PushResponse{}), nil
		})
		put(t, st, []string{"dest"}, pushEntry(t, samplePush(t), "corrupt"),
			pushEntry(t, samplePush(t), "a"), pushEntry(t, samplePush(t), "b"), pushEntry(t, samplePush(t), "c"))
		d := testDest("dest", srv.URL)
		d.MaxAttempts = 3
		runForwarder(t, d, st, nil)
		eventually(t, "the good pushes delivered", func() bool { return good.Load() == 3 })

		eventually(t, "push dead-lettered", func() bool { return len(deadLetters(t, st, "dest")) == 1 })
		if dl := deadLetters(t, st, "dest")[0]; !strings.HasPrefix(dl.Reason, "poison") || dl.Attempts != 3 {
			t.Errorf("dead letter %+v, want poison after 3 attempts", dl)
		}
	})

	t.Run("undecodable stored push dead-lettered unsent", func(t *testing.T) {
		st := openStore(t)
		var calls atomic.Int64
		srv := pushServer(t, func(context.Context, *connect.Request[pushv1.PushRequest]) (*connect.Response[pushv1.PushResponse], error) {
			calls.Add(1)
			return connect.NewResponse(&pushv1.PushResponse{}), nil
		})
		put(t, st, []string{"dest"}, &store.Entry{Kind: store.KindPush, Body: []byte{0xff}})
		runForwarder(t, testDest("dest", srv.URL), st, nil)

		eventually(t, "entry dead-lettered", func() bool { return len(deadLetters(t, st, "dest")) == 1 })
		if dl := deadLetters(t, st, "dest")[0]; !strings.Contains(dl.Reason, "does not decode") {
			t.Errorf("reason %q, want it to say the stored push does not decode", dl.Reason)
		}
		if c := calls.Load(); c != 0 {
			t.Errorf("handler called %d times, want 0", c)
		}
	})
}

func TestForwardShutdown(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		wantQueue int64
	}{
		// The answer to a request in flight at shutdown is awaited and
		// acted on: a 200 is acked, so the entry is not sent again.
		{"in-flight success is acked", http.StatusOK, 0},
		// Shutdown never deletes: a failure leaves the entry queued.
		{"in-flight failure stays queued", http.StatusServiceUnavailable, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t)
			arrived := make(chan struct{}, 10)
			proceed := make(chan struct{})
			var calls atomic.Int64
			srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				arrived <- struct{}{}
				<-proceed
				w.WriteHeader(tt.status)
			}))
			put(t, st, []string{"dest"}, bodies("e")...)
			cancel, done := startForwarder(t, testDest("dest", srv.URL), st, nil)
			released := false
			t.Cleanup(func() {
				cancel()
				if !released {
					close(proceed)
				}
				<-done
			})

			select {
			case <-arrived:
			case <-time.After(waitTimeout):
				t.Fatal("request never reached the destination")
			}
			// Cancel before the destination answers, so the answer comes
			// to a forwarder that is shutting down.
			cancel()
			released = true
			close(proceed)
			select {
			case <-done:
			case <-time.After(waitTimeout):
				t.Fatal("Run did not return after cancel")
			}
			if c := calls.Load(); c != 1 {
				t.Errorf("destination got %d requests, want 1", c)
			}
			s := queueStats(t, st, "dest")
			if s.Entries != tt.wantQueue || s.DeadEntries != 0 {
				t.Errorf("after shutdown: %d queued, %d dead; want %d queued, 0 dead", s.Entries, s.DeadEntries, tt.wantQueue)
			}
		})
	}
}

func TestForwardWakesOnPut(t *testing.T) {
	st := openStore(t)
	var got answered200
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got.ok(w, body)
	}))
	runForwarder(t, testDest("dest", srv.URL), st, nil)
	// Each round puts an entry while the forwarder idles on an empty queue
	// (the previous entry was delivered, so it went back to waiting). The
	// poll interval is 30s, so delivery within 10s can only be the wake.
	if pollInterval < 30*time.Second {
		t.Fatalf("pollInterval %v: this test needs it well above its 10s deadline", pollInterval)
	}
	for i := range 3 {
		name := fmt.Sprintf("round-%d", i)
		put(t, st, []string{"dest"}, bodies(name)...)
		deadline := time.Now().Add(10 * time.Second)
		for got.counts()[name] == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s not delivered within 10s of its put: the wake signal was missed", name)
			}
			time.Sleep(5 * time.Millisecond)
		}
		eventually(t, "queue empty", queueEmpty(t, st, "dest"))
	}
}

func TestForwardTLS(t *testing.T) {
	var got answered200
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got.ok(w, body)
	}))
	// The refused handshakes below are expected: keep them out of the log.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := writeFile(t, t.TempDir(), "ca.pem",
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))

	t.Run("trusted CA file", func(t *testing.T) {
		st := openStore(t)
		put(t, st, []string{"dest"}, bodies("via-ca")...)
		d := testDest("dest", srv.URL)
		d.TLS.CAFile = caFile
		runForwarder(t, d, st, nil)
		eventually(t, "delivered over TLS", queueEmpty(t, st, "dest"))
	})
	t.Run("unknown CA is retried, not dead-lettered", func(t *testing.T) {
		st := openStore(t)
		put(t, st, []string{"dest"}, bodies("no-ca")...)
		m := NewMetrics(nil)
		d := testDest("dest", srv.URL)
		d.MaxAttempts = 1
		runForwarder(t, d, st, m)
		eventually(t, "a few failed attempts", func() bool {
			return counterValue(t, m.attempts.WithLabelValues("dest", "retry")) >= 3
		})
		if got.counts()["no-ca"] != 0 {
			t.Error("entry delivered to a server whose certificate is not trusted")
		}
		if s := queueStats(t, st, "dest"); s.Entries != 1 || s.DeadEntries != 0 {
			t.Errorf("stats %+v, want the entry still queued", s)
		}
	})
}

func TestQueueCollector(t *testing.T) {
	st := openStore(t)
	at := time.Unix(1_700_000_000, 0)
	a1 := &store.Entry{ReceivedAt: at, Query: "name=a", Body: []byte("first")}
	a2 := &store.Entry{ReceivedAt: at.Add(30 * time.Second), Body: []byte("second entry")}
	b1 := &store.Entry{ReceivedAt: at.Add(10 * time.Second), Body: []byte("b")}
	put(t, st, []string{"a"}, a1, a2)
	put(t, st, []string{"b"}, b1)
	items, _, err := st.ReadBatch(context.Background(), "b", 0, 1, 1<<20)
	if err != nil || len(items) != 1 {
		t.Fatalf("read b: %v, %d items", err, len(items))
	}
	if err := st.MoveToDeadLetter(context.Background(), "b", items[0].Seq, store.DeadLetter{Reason: "test"}); err != nil {
		t.Fatal(err)
	}

	c := NewQueueCollector(st)
	c.now = func() time.Time { return at.Add(90 * time.Second) }
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]float64{} // metric -> destination -> value
	for _, mf := range families {
		if mf.GetType() != dto.MetricType_GAUGE || mf.GetHelp() == "" {
			t.Errorf("%s: type %v, help %q; want a documented gauge", mf.GetName(), mf.GetType(), mf.GetHelp())
		}
		got[mf.GetName()] = map[string]float64{}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != 1 || m.GetLabel()[0].GetName() != "destination" {
				t.Errorf("%s: labels %v, want only destination", mf.GetName(), m.GetLabel())
				continue
			}
			got[mf.GetName()][m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	want := map[string]map[string]float64{
		"pyrorelay_queue_entries":            {"a": 2, "b": 0},
		"pyrorelay_queue_bytes":              {"a": float64(a1.Size() + a2.Size()), "b": 0},
		"pyrorelay_queue_oldest_age_seconds": {"a": 90, "b": 0},
		"pyrorelay_dead_letter_entries":      {"a": 0, "b": 1},
		"pyrorelay_dead_letter_bytes":        {"a": 0, "b": float64(b1.Size())},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("gathered\n%v\nwant\n%v", got, want)
	}
}

type failingStats struct{}

func (failingStats) Stats() (map[string]store.QueueStats, error) {
	return nil, errors.New("disk on fire")
}

func TestQueueCollectorError(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewQueueCollector(failingStats{}))
	_, err := reg.Gather()
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("collect error %v, want the stats error", err)
	}
}

// counterValue reads a counter without the testutil package, whose diff
// dependency is not in go.mod.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
