package httpserver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/pyrorelay/pyrorelay/store"
)

func TestHealthy(t *testing.T) {
	ts := newTestServer(t, Config{})
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		req, _ := http.NewRequest(method, ts.url+"/-/healthy", nil)
		resp, _ := do(t, nil, req)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s /-/healthy = %d, want 200", method, resp.StatusCode)
		}
	}
}

func TestReady(t *testing.T) {
	var ready atomic.Bool
	fs := &fakeStore{}
	s := New(Config{}, Options{Store: fs, Registry: prometheus.NewRegistry(), Ready: ready.Load})
	base := serve(t, s)
	get := func() int {
		req, _ := http.NewRequest(http.MethodGet, base+"/-/ready", nil)
		resp, _ := do(t, nil, req)
		return resp.StatusCode
	}
	if code := get(); code != http.StatusServiceUnavailable {
		t.Errorf("/-/ready while not ready = %d, want 503", code)
	}
	ready.Store(true)
	if code := get(); code != http.StatusOK {
		t.Errorf("/-/ready when ready = %d, want 200", code)
	}
	ready.Store(false)
	if code := get(); code != http.StatusServiceUnavailable {
		t.Errorf("/-/ready after losing readiness = %d, want 503", code)
	}
}

// TestReadyDefault checks that a server without a Ready func is ready.
func TestReadyDefault(t *testing.T) {
	ts := newTestServer(t, Config{})
	req, _ := http.NewRequest(http.MethodGet, ts.url+"/-/ready", nil)
	if resp, _ := do(t, nil, req); resp.StatusCode != http.StatusOK {
		t.Errorf("/-/ready = %d, want 200", resp.StatusCode)
	}
}

// scrape fetches /metrics and returns the value of the series with name and
// exactly the given labels, and whether it was found.
func scrape(t *testing.T, base, name string, lbls map[string]string) (float64, bool) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	resp, body := do(t, nil, req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics = %d", resp.StatusCode)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		series, val := line[:i], line[i+1:]
		n, ls, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		got := map[string]string{}
		for _, kv := range strings.Split(strings.TrimSuffix(ls, "}"), ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				got[k] = strings.Trim(v, `"`)
			}
		}
		if len(got) != len(lbls) {
			continue
		}
		match := true
		for k, v := range lbls {
			match = match && got[k] == v
		}
		if match {
			f, err := strconv.ParseFloat(val, 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return f, true
		}
	}
	return 0, false
}

func TestMetrics(t *testing.T) {
	ts := newTestServer(t, Config{})
	bad := ingestReq{query: "format=pprof", body: []byte("x")}
	if resp, _ := do(t, nil, bad.build(t, ts.url)); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad request = %d, want 400", resp.StatusCode)
	}
	if v, ok := scrape(t, ts.url, "pyrorelay_requests_received_total", map[string]string{"endpoint": "ingest", "code": "400"}); !ok || v != 1 {
		t.Errorf("requests_received_total{ingest,400} = %v (found %v), want 1", v, ok)
	}
	if v, ok := scrape(t, ts.url, "pyrorelay_received_bytes_total", map[string]string{"endpoint": "ingest"}); ok && v != 0 {
		t.Errorf("received_bytes_total{ingest} = %v after a refused request, want 0", v)
	}

	folded := readFile(t, "folded.txt")
	good := ingestReq{query: pyroscopeGoQuery("app.cpu"), body: folded}
	if resp, _ := do(t, nil, good.build(t, ts.url)); resp.StatusCode != http.StatusOK {
		t.Fatalf("good request = %d, want 200", resp.StatusCode)
	}
	if v, ok := scrape(t, ts.url, "pyrorelay_received_bytes_total", map[string]string{"endpoint": "ingest"}); !ok || v != float64(len(folded)) {
		t.Errorf("received_bytes_total{ingest} = %v (found %v), want %d", v, ok, len(folded))
	}
	if v, ok := scrape(t, ts.url, "pyrorelay_requests_received_total", map[string]string{"endpoint": "ingest", "code": "200"}); !ok || v != 1 {
		t.Errorf("requests_received_total{ingest,200} = %v (found %v), want 1", v, ok)
	}
	if v, ok := scrape(t, ts.url, "pyrorelay_request_duration_seconds_count", map[string]string{"endpoint": "ingest"}); !ok || v != 2 {
		t.Errorf("request_duration_seconds_count{ingest} = %v (found %v), want 2", v, ok)
	}

	// A Push counts under its own endpoint, in bytes of the stored body.
	c := pushClient(t, ts.url, false)
	msg := &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{cpuSeries(readFile(t, "cpu.pb.gz"))}}
	if _, err := c.Push(context.Background(), connect.NewRequest(msg)); err != nil {
		t.Fatalf("Push: %v", err)
	}
	if v, ok := scrape(t, ts.url, "pyrorelay_received_bytes_total", map[string]string{"endpoint": "push"}); !ok || v != float64(proto.Size(msg)) {
		t.Errorf("received_bytes_total{push} = %v (found %v), want %d", v, ok, proto.Size(msg))
	}
	if v, ok := scrape(t, ts.url, "pyrorelay_requests_received_total", map[string]string{"endpoint": "push", "code": "200"}); !ok || v != 1 {
		t.Errorf("requests_received_total{push,200} = %v (found %v), want 1", v, ok)
	}
}

// TestConnectionLimit holds MaxConnections idle connections and checks that
// the next client waits until one of them closes.
func TestConnectionLimit(t *testing.T) {
	ts := newServer(t, Config{
		MaxConnections: 2,
		// Long enough that the server never drops the idle connections
		// itself during the test, which would free a slot early.
		ReadHeaderTimeout: 10 * time.Minute,
		ReadTimeout:       10 * time.Minute,
		IdleTimeout:       10 * time.Minute,
	})
	base := serve(t, ts.Server)
	addr := strings.TrimPrefix(base, "http://")

	// Both dials complete (and so are queued for Accept) before the
	// client's: the server accepts in order, so these two take the slots.
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		held = append(held, c)
	}
	defer func() {
		for _, c := range held {
			_ = c.Close()
		}
	}()

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 2 * pollDeadline}
	done := make(chan error, 1)
	go func() {
		resp, err := client.Get(base + "/-/healthy")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = errors.New(resp.Status)
			}
		}
		done <- err
	}()

	// Give the request a chance to get through if the limit were not
	// enforced; this is not a timing assertion, only an opportunity.
	select {
	case err := <-done:
		t.Fatalf("third request completed (err %v) while the limit was held", err)
	case <-time.After(300 * time.Millisecond):
	}
	// Release a slot: the request must now complete.
	select {
	case err := <-done:
		t.Fatalf("third request completed (err %v) while the limit was held", err)
	default:
	}
	_ = held[0].Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("request after a slot freed: %v", err)
		}
	case <-time.After(pollDeadline):
		t.Fatal("request did not complete after a connection slot was freed")
	}
}

// TestSlowLoris checks that a client that never finishes its headers is
// disconnected after ReadHeaderTimeout.
func TestSlowLoris(t *testing.T) {
	ts := newServer(t, Config{ReadHeaderTimeout: 200 * time.Millisecond})
	addr := strings.TrimPrefix(serve(t, ts.Server), "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "POST /ingest?name=app.cpu HTTP/1.1\r\nHost: relay\r\nContent-Type: text/plain\r\n"); err != nil {
		t.Fatalf("write partial headers: %v", err)
	}
	if err := c.SetReadDeadline(time.Now().Add(pollDeadline)); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(make([]byte, 1024))
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatalf("server kept a connection with unfinished headers open for %v", pollDeadline)
	case err == nil:
		// A server may answer before closing; it must still close.
		_, err = io.Copy(io.Discard, c)
		if err != nil {
			t.Fatalf("after %d bytes: %v", n, err)
		}
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
	default:
		t.Fatalf("read: %v, want EOF", err)
	}
	if attempts, _ := ts.store.counts(); attempts != 0 {
		t.Errorf("store saw %d Puts from a request that never finished", attempts)
	}
}

// blockingStore holds every Put until released, to catch Shutdown
// returning before a request's commit.
type blockingStore struct {
	fakeStore
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (b *blockingStore) Put(ctx context.Context, e *store.Entry, queues []string) error {
	b.once.Do(func() { close(b.entered) })
	<-b.release
	return b.fakeStore.Put(ctx, e, queues)
}

// TestShutdownWaitsForCommit checks that Shutdown lets a request whose
// commit is in progress finish and answer 200.
func TestShutdownWaitsForCommit(t *testing.T) {
	bs := &blockingStore{entered: make(chan struct{}), release: make(chan struct{})}
	s := New(Config{}, Options{Store: bs, Registry: prometheus.NewRegistry()})
	base := serve(t, s)

	type result struct {
		code int
		err  error
	}
	resc := make(chan result, 1)
	go func() {
		resp, err := http.Post(base+"/ingest?name=app.cpu", "text/plain", strings.NewReader("a;b 1\n"))
		if err != nil {
			resc <- result{err: err}
			return
		}
		resp.Body.Close()
		resc <- result{code: resp.StatusCode}
	}()
	select {
	case <-bs.entered:
	case <-time.After(pollDeadline):
		t.Fatal("request never reached the store")
	}

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), pollDeadline)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) while a commit was in progress", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(bs.release)
	r := <-resc
	if r.err != nil || r.code != http.StatusOK {
		t.Fatalf("request during shutdown: code %d err %v, want 200", r.code, r.err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, stored := bs.counts(); stored != 1 {
		t.Errorf("stored %d entries, want 1", stored)
	}
}

// TestEndToEndRealStore sends an /ingest and a gRPC Push through a served
// relay into a real store and reads both back from every queue, unchanged.
func TestEndToEndRealStore(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	queues := []string{"primary", "backup"}
	reg := prometheus.NewRegistry()
	s := New(Config{Queues: queues, TenantPassthrough: true}, Options{Store: st, Registry: reg, Gatherer: reg})
	base := serve(t, s)

	cpu := readFile(t, "cpu.pb.gz")
	body, ct := multipartBody(t,
		formPart{"profile", "profile.pprof", cpu},
		formPart{"sample_type_config", "sample_type_config.json", readFile(t, "sample_type_config.json")})
	ing := ingestReq{query: pyroscopeGoQuery("app.cpu{env=e2e}"), contentType: ct, tenant: "team-a", body: body}
	resp, rb := do(t, nil, ing.build(t, base))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ingest = %d: %s", resp.StatusCode, rb)
	}

	msg := &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{cpuSeries(cpu), cpuSeries(gunzip(t, cpu))}}
	req := connect.NewRequest(msg)
	req.Header().Set(tenantHeader, "team-b")
	c := pushClient(t, base, true, connect.WithGRPC(), connect.WithSendGzip())
	if _, err := c.Push(context.Background(), req); err != nil {
		t.Fatalf("Push: %v", err)
	}

	for _, q := range queues {
		items, quarantined, err := st.ReadBatch(context.Background(), q, 0, 10, 1<<30)
		if err != nil || quarantined != 0 {
			t.Fatalf("ReadBatch(%s): %v, %d quarantined", q, err, quarantined)
		}
		if len(items) != 2 {
			t.Fatalf("queue %s holds %d entries, want 2", q, len(items))
		}
		e := items[0].Entry
		if e.Kind != store.KindIngest || e.Query != ing.query || e.ContentType != ct || e.Tenant != "team-a" ||
			!bytes.Equal(e.Body, body) || e.ReceivedAt.IsZero() {
			t.Errorf("queue %s ingest entry differs: kind %v query %q content type %q tenant %q, %d body bytes",
				q, e.Kind, e.Query, e.ContentType, e.Tenant, len(e.Body))
		}
		p := items[1].Entry
		var got pushv1.PushRequest
		if err := proto.Unmarshal(storedPushBody(t, *p), &got); err != nil {
			t.Fatalf("queue %s push body: %v", q, err)
		}
		if p.Kind != store.KindPush || p.Tenant != "team-b" || !proto.Equal(&got, msg) || p.ReceivedAt.IsZero() {
			t.Errorf("queue %s push entry differs: kind %v tenant %q equal %v", q, p.Kind, p.Tenant, proto.Equal(&got, msg))
		}
	}

	// A closed store refuses with 503, so clients retry elsewhere or later.
	if err := st.Close(); err != nil {
		t.Fatalf("close store: %v", err)
	}
	resp, rb = do(t, nil, ing.build(t, base))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("ingest into a closed store = %d, want 503: %s", resp.StatusCode, rb)
	}
	eb := checkErrorBody(t, resp, rb)
	if !strings.Contains(eb.Message, store.ErrClosed.Error()) {
		t.Errorf("message %q does not say the store is closed", eb.Message)
	}
	if _, err := c.Push(context.Background(), connect.NewRequest(msg)); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("Push into a closed store: %v, want unavailable", err)
	}
}

// TestNewDefaults checks the zero Config gets the documented defaults.
func TestNewDefaults(t *testing.T) {
	s := New(Config{}, Options{Store: &fakeStore{}})
	c := s.cfg
	if c.MaxBodySize != DefaultMaxBodySize || c.MaxConnections != DefaultMaxConnections ||
		c.ReadTimeout != DefaultReadTimeout || c.ReadHeaderTimeout != DefaultReadHeaderTimeout ||
		c.WriteTimeout != DefaultWriteTimeout || c.IdleTimeout != DefaultIdleTimeout ||
		c.MaxHeaderBytes != DefaultMaxHeaderBytes {
		t.Errorf("defaults not applied: %+v", c)
	}
	if s.srv.ReadHeaderTimeout != DefaultReadHeaderTimeout || s.srv.MaxHeaderBytes != DefaultMaxHeaderBytes {
		t.Errorf("http.Server limits not set from the config")
	}
}
