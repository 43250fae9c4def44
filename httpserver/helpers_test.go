package httpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyrorelay/pyrorelay/internal/poll"
	"github.com/pyrorelay/pyrorelay/store"
)

// repoTestdata is the module's shared payload directory, one level up from
// this package.
const repoTestdata = "../testdata"

// samplesDir holds real client payloads kept outside the repository; tests
// that use it skip when it is absent (a fresh clone in CI).
const samplesDir = "../../shared/testdata/pyroscope-samples"

// pollDeadline bounds every wait on a condition: generous, because the tests
// must pass on a loaded 2-core machine.
const pollDeadline = 30 * time.Second

// putCall is one Put the fake store saw, with a deep copy of the entry so a
// handler that reuses its buffers cannot change what the test inspects.
type putCall struct {
	Entry  store.Entry
	Queues []string
}

// fakeStore records Put calls and can be told to fail them.
type fakeStore struct {
	mu       sync.Mutex
	err      error // returned by every Put when set
	attempts int
	stored   []putCall
}

func (f *fakeStore) Put(_ context.Context, e *store.Entry, queues []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if f.err != nil {
		return f.err
	}
	cp := *e
	cp.Body = bytes.Clone(e.Body)
	f.stored = append(f.stored, putCall{Entry: cp, Queues: append([]string(nil), queues...)})
	return nil
}

func (f *fakeStore) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// counts returns how many Puts were attempted and how many stored an entry.
func (f *fakeStore) counts() (attempts, stored int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts, len(f.stored)
}

func (f *fakeStore) entries() []putCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]putCall(nil), f.stored...)
}

// testServer is a Server behind httptest, with its fake store and registry.
type testServer struct {
	*Server
	store *fakeStore
	reg   *prometheus.Registry
	url   string
}

// newTestServer serves s.Handler() over HTTP/1.1 with httptest.
func newTestServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	ts := newServer(t, cfg)
	hs := httptest.NewServer(ts.Handler())
	t.Cleanup(hs.Close)
	ts.url = hs.URL
	return ts
}

// newServer builds a Server on a fake store with its own registry.
func newServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	fs := &fakeStore{}
	reg := prometheus.NewRegistry()
	s := New(cfg, Options{Store: fs, Registry: reg, Gatherer: reg})
	return &testServer{Server: s, store: fs, reg: reg}
}

// serve runs s.Serve on a fresh loopback listener (needed for h2c and the
// connection limit, which httptest bypasses) and returns its base URL.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), pollDeadline)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// readFile reads a payload from the repository's testdata.
func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoTestdata, name))
	if err != nil {
		t.Fatalf("read testdata: %v", err)
	}
	return b
}

// errorBody is the JSON shape of every /ingest error answer.
type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// checkErrorBody asserts b is one line of JSON with a code and a message.
func checkErrorBody(t *testing.T, resp *http.Response, b []byte) errorBody {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	s := string(b)
	if !strings.HasSuffix(s, "\n") || strings.Count(s, "\n") != 1 {
		t.Errorf("error body is not exactly one line: %q", s)
	}
	var eb errorBody
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&eb); err != nil {
		t.Fatalf("error body %q is not JSON {code,message}: %v", s, err)
	}
	if eb.Code == "" || eb.Message == "" {
		t.Errorf("error body %q lacks code or message", s)
	}
	return eb
}

// do sends req and returns the response with its body read.
func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	return resp, b
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !poll.Until(pollDeadline, 10*time.Millisecond, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// tenantCases are the tenant pass-through cases every endpoint must pass:
// with passthrough the client's X-Scope-OrgID is stored, without it never.
var tenantCases = []struct {
	name        string
	passthrough bool
	tenant      string
	want        string
}{
	{"on, header set", true, "team-a", "team-a"},
	{"on, no header", true, "", ""},
	{"off, header set", false, "team-a", ""},
}
