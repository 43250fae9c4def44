package httpserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	berrors "go.etcd.io/bbolt/errors"

	"github.com/pyrorelay/pyrorelay/store"
)

// pyroscopeGoQuery is the query pyroscope-go sends, built the way it does
// (url.Values, so the name's braces are percent-encoded), plus params.
func pyroscopeGoQuery(name string, extra ...string) string {
	q := url.Values{
		"name":            {name},
		"from":            {"1764000000000000000"},
		"until":           {"1764000010000000000"},
		"spyName":         {"gospy"},
		"sampleRate":      {"100"},
		"units":           {"samples"},
		"aggregationType": {"sum"},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return q.Encode()
}

// formPart is one part of a multipart/form-data body; parts are files, the
// way the Pyroscope clients send them.
type formPart struct {
	field, filename string
	data            []byte
}

// multipartBody encodes parts with mime/multipart and returns the body and
// its Content-Type, boundary included.
func multipartBody(t testing.TB, parts ...formPart) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, p := range parts {
		fw, err := w.CreateFormFile(p.field, p.filename)
		if err != nil {
			t.Fatalf("multipart part %s: %v", p.field, err)
		}
		if _, err := fw.Write(p.data); err != nil {
			t.Fatalf("multipart part %s: %v", p.field, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("multipart close: %v", err)
	}
	return buf.Bytes(), w.FormDataContentType()
}

// ingestReq describes one request to the ingest endpoint.
type ingestReq struct {
	method          string // default POST
	path            string // default /ingest
	query           string // raw query string, sent as is
	contentType     string
	contentEncoding string
	tenant          string
	body            []byte
	chunked         bool // send without Content-Length
}

func (r ingestReq) build(t *testing.T, base string) *http.Request {
	t.Helper()
	method, path := r.method, r.path
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = "/ingest"
	}
	u := base + path
	if r.query != "" {
		u += "?" + r.query
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
		if r.chunked {
			// An opaque reader hides the length, so the client sends
			// Transfer-Encoding: chunked.
			body = struct{ io.Reader }{body}
		}
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if r.chunked {
		req.ContentLength = -1
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.contentEncoding != "" {
		req.Header.Set("Content-Encoding", r.contentEncoding)
	}
	if r.tenant != "" {
		req.Header.Set(tenantHeader, r.tenant)
	}
	return req
}

func TestIngestRejects(t *testing.T) {
	folded := readFile(t, "folded.txt")
	cpu := readFile(t, "cpu.pb.gz")
	big := bytes.Repeat([]byte("main;work 1\n"), 400) // 4800 bytes, over the 1 KiB limit below
	const limit = 1024
	cpuName := pyroscopeGoQuery("app.cpu{env=prod}")
	mpBody, mpType := multipartBody(t, formPart{"profile", "profile.pprof", cpu})

	tests := []struct {
		name       string
		req        ingestReq
		storeErr   error
		wantStatus int
		wantCode   string
		wantAllow  bool
		wantRetry  bool
	}{
		{name: "missing name", req: ingestReq{query: "format=pprof", body: cpu},
			wantStatus: 400, wantCode: "invalid_argument"},
		{name: "empty name", req: ingestReq{query: "name=&format=pprof", body: cpu},
			wantStatus: 400, wantCode: "invalid_argument"},
		{name: "label name with dash", req: ingestReq{query: pyroscopeGoQuery("app.cpu{bad-label=x}"), body: folded},
			wantStatus: 400, wantCode: "invalid_argument"},
		{name: "empty label name", req: ingestReq{query: pyroscopeGoQuery("app.cpu{=x}"), body: folded},
			wantStatus: 400, wantCode: "invalid_argument"},
		{name: "space in app name", req: ingestReq{query: pyroscopeGoQuery("my app.cpu"), body: folded},
			wantStatus: 400, wantCode: "invalid_argument"},
		{name: "no app name", req: ingestReq{query: pyroscopeGoQuery("{env=prod}"), body: folded},
			wantStatus: 400, wantCode: "invalid_argument"},
		{name: "app name emptied by __name__", req: ingestReq{query: pyroscopeGoQuery("app.cpu{__name__=}"), body: folded},
			wantStatus: 400, wantCode: "invalid_argument"},
		{name: "unknown format", req: ingestReq{query: pyroscopeGoQuery("app.cpu", "format", "protobuf"), body: cpu},
			wantStatus: 400, wantCode: "invalid_argument"},
		{name: "unknown profile type, folded", req: ingestReq{query: pyroscopeGoQuery("app.bogus"), body: folded},
			wantStatus: 400, wantCode: "invalid_argument"},
		{name: "unknown profile type, format=folded", req: ingestReq{query: pyroscopeGoQuery("app.bogus", "format", "folded"), body: folded},
			wantStatus: 400, wantCode: "invalid_argument"},
		{name: "unknown profile type, trie content type", req: ingestReq{query: pyroscopeGoQuery("app.bogus"),
			contentType: "binary/octet-stream+trie", body: []byte{1, 2, 3}},
			wantStatus: 400, wantCode: "invalid_argument"},
		// The server parses lines before it looks at a multipart body, and
		// a trie Content-Type wins over format=pprof: both are text, whose
		// type comes from the name.
		{name: "unknown profile type, format=lines with multipart body", req: ingestReq{query: pyroscopeGoQuery("app.bogus", "format", "lines"),
			contentType: mpType, body: mpBody},
			wantStatus: 400, wantCode: "invalid_argument"},
		{name: "unknown profile type, trie content type beats format=pprof", req: ingestReq{query: pyroscopeGoQuery("app.bogus", "format", "pprof"),
			contentType: "binary/octet-stream+trie", body: cpu},
			wantStatus: 400, wantCode: "invalid_argument"},
		{name: "empty body, folded", req: ingestReq{query: cpuName, body: []byte{}},
			wantStatus: 400, wantCode: "invalid_argument"},
		{name: "no body at all", req: ingestReq{query: cpuName},
			wantStatus: 400, wantCode: "invalid_argument"},
		{name: "empty body, pprof", req: ingestReq{query: pyroscopeGoQuery("app", "format", "pprof"), body: []byte{}},
			wantStatus: 400, wantCode: "invalid_argument"},
		{name: "empty chunked body", req: ingestReq{query: cpuName, body: []byte{}, chunked: true},
			wantStatus: 400, wantCode: "invalid_argument"},
		{name: "multipart without boundary", req: ingestReq{query: pyroscopeGoQuery("app.cpu"),
			contentType: "multipart/form-data", body: mpBody},
			wantStatus: 400, wantCode: "invalid_argument"},
		{name: "body over limit with Content-Length", req: ingestReq{query: cpuName, body: big},
			wantStatus: 413, wantCode: "payload_too_large"},
		{name: "body over limit chunked", req: ingestReq{query: cpuName, body: big, chunked: true},
			wantStatus: 413, wantCode: "payload_too_large"},
		{name: "GET", req: ingestReq{method: http.MethodGet, query: cpuName},
			wantStatus: 405, wantCode: "method_not_allowed", wantAllow: true},
		{name: "PUT", req: ingestReq{method: http.MethodPut, query: cpuName, body: folded[:100]},
			wantStatus: 405, wantCode: "method_not_allowed", wantAllow: true},
		{name: "GET on the alias", req: ingestReq{method: http.MethodGet, path: "/pyroscope/ingest", query: cpuName},
			wantStatus: 405, wantCode: "method_not_allowed", wantAllow: true},
		{name: "store full", req: ingestReq{query: cpuName, body: folded[:100]}, storeErr: syscall.ENOSPC,
			wantStatus: 507, wantCode: "unavailable", wantRetry: true},
		{name: "store full, wrapped", req: ingestReq{query: cpuName, body: folded[:100]},
			storeErr:   fmt.Errorf("commit: %w", syscall.ENOSPC),
			wantStatus: 507, wantCode: "unavailable", wantRetry: true},
		{name: "store at max file size", req: ingestReq{query: cpuName, body: folded[:100]}, storeErr: berrors.ErrMaxSizeReached,
			wantStatus: 507, wantCode: "unavailable", wantRetry: true},
		{name: "store closed", req: ingestReq{query: cpuName, body: folded[:100]}, storeErr: store.ErrClosed,
			wantStatus: 503, wantCode: "unavailable", wantRetry: true},
		{name: "store fails otherwise", req: ingestReq{query: cpuName, body: folded[:100]}, storeErr: errors.New("disk on fire"),
			wantStatus: 503, wantCode: "unavailable", wantRetry: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, Config{MaxBodySize: limit, Queues: []string{"a"}})
			ts.store.setErr(tc.storeErr)
			resp, body := do(t, nil, tc.req.build(t, ts.url))
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tc.wantStatus, body)
			}
			eb := checkErrorBody(t, resp, body)
			if eb.Code != tc.wantCode {
				t.Errorf("code = %q, want %q", eb.Code, tc.wantCode)
			}
			if allow := resp.Header.Get("Allow"); tc.wantAllow && allow != http.MethodPost {
				t.Errorf("Allow = %q, want POST", allow)
			}
			if retry := resp.Header.Get("Retry-After"); tc.wantRetry != (retry != "") {
				t.Errorf("Retry-After = %q, want one: %v", retry, tc.wantRetry)
			}
			attempts, stored := ts.store.counts()
			if stored != 0 {
				t.Errorf("store kept %d entries, want none", stored)
			}
			wantAttempts := 0
			if tc.storeErr != nil {
				wantAttempts = 1
			}
			if attempts != wantAttempts {
				t.Errorf("store saw %d Put calls, want %d", attempts, wantAttempts)
			}
		})
	}
}

func TestIngestAccepts(t *testing.T) {
	cpu := readFile(t, "cpu.pb.gz")
	heap := readFile(t, "heap.pb.gz")
	folded := readFile(t, "folded.txt")
	jfr := readFile(t, "profile.jfr.gz")
	speedscope := readFile(t, "speedscope.json")
	stc := readFile(t, "sample_type_config.json")
	goBody, goType := multipartBody(t,
		formPart{"profile", "profile.pprof", cpu},
		formPart{"sample_type_config", "sample_type_config.json", stc})
	jfrBody, jfrType := multipartBody(t, formPart{"jfr", "jfr", jfr})

	tests := []struct {
		name string
		req  ingestReq
	}{
		{name: "folded, no format", req: ingestReq{query: pyroscopeGoQuery("app.cpu{env=prod,region=eu}"),
			contentType: "text/plain", body: folded}},
		{name: "folded, no type suffix means cpu", req: ingestReq{query: pyroscopeGoQuery("app"), body: folded}},
		{name: "folded, no Content-Type", req: ingestReq{query: pyroscopeGoQuery("app.wall"), body: folded}},
		{name: "format=collapsed, chunked", req: ingestReq{query: pyroscopeGoQuery("app.itimer", "format", "collapsed"),
			body: folded, chunked: true}},
		{name: "format=lines", req: ingestReq{query: pyroscopeGoQuery("app.inuse_space", "format", "lines"),
			body: []byte("main;work;sha256\nmain;work;crc32\nmain;idle\n")}},
		{name: "format=pprof, raw gzipped body", req: ingestReq{query: pyroscopeGoQuery("app.bogus", "format", "pprof"),
			contentType: "application/octet-stream", body: cpu}},
		{name: "format=pprof, Content-Encoding kept", req: ingestReq{query: pyroscopeGoQuery("app", "format", "pprof"),
			contentType: "application/octet-stream", contentEncoding: "gzip", body: heap}},
		{name: "pyroscope-go multipart", req: ingestReq{query: pyroscopeGoQuery("app.cpu{env=prod}"),
			contentType: goType, body: goBody}},
		{name: "multipart ignores the type suffix", req: ingestReq{query: pyroscopeGoQuery("com.example.app"),
			contentType: goType, body: goBody}},
		{name: "format=jfr multipart", req: ingestReq{query: pyroscopeGoQuery("com.example.App{env=prod}", "format", "jfr", "spyName", "javaspy"),
			contentType: jfrType, body: jfrBody}},
		{name: "format=speedscope", req: ingestReq{query: pyroscopeGoQuery("app.bogus", "format", "speedscope"),
			contentType: "application/json", body: speedscope}},
		{name: "trie content type", req: ingestReq{query: pyroscopeGoQuery("app.alloc_objects"),
			contentType: "binary/octet-stream+trie", body: []byte{0, 1, 2, 3, 0xff}}},
		{name: "format=tree", req: ingestReq{query: pyroscopeGoQuery("app.cpu", "format", "tree"),
			contentType: "binary/octet-stream+tree", body: []byte{9, 8, 7}}},
		{name: "alias path", req: ingestReq{path: "/pyroscope/ingest", query: pyroscopeGoQuery("app.cpu"), body: folded}},
		// The raw query reaches the destination byte for byte: order,
		// unescaped braces, '+', unknown parameters and repeats.
		{name: "raw query kept verbatim", req: ingestReq{
			query: "until=now&name=app.cpu{env=prod}&x=a+b&x=c%20d&from=now-10s&spyName=gospy&zz=",
			body:  folded}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			queues := []string{"primary", "backup"}
			ts := newTestServer(t, Config{Queues: queues})
			tc.req.tenant = "tenant-1" // passthrough is off: must not be stored
			before := time.Now()
			resp, body := do(t, nil, tc.req.build(t, ts.url))
			after := time.Now()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %s", resp.StatusCode, body)
			}
			if len(body) != 0 {
				t.Errorf("body = %q, want empty", body)
			}
			calls := ts.store.entries()
			if len(calls) != 1 {
				t.Fatalf("stored %d entries, want 1", len(calls))
			}
			e := calls[0].Entry
			if !slices.Equal(calls[0].Queues, queues) {
				t.Errorf("queues = %q, want %q", calls[0].Queues, queues)
			}
			if e.Kind != store.KindIngest {
				t.Errorf("Kind = %v, want ingest", e.Kind)
			}
			if e.Query != tc.req.query {
				t.Errorf("Query = %q, want %q", e.Query, tc.req.query)
			}
			if e.ContentType != tc.req.contentType {
				t.Errorf("ContentType = %q, want %q", e.ContentType, tc.req.contentType)
			}
			if e.ContentEncoding != tc.req.contentEncoding {
				t.Errorf("ContentEncoding = %q, want %q", e.ContentEncoding, tc.req.contentEncoding)
			}
			if e.Tenant != "" {
				t.Errorf("Tenant = %q with passthrough off, want none", e.Tenant)
			}
			if !bytes.Equal(e.Body, tc.req.body) {
				t.Errorf("Body differs: %d bytes stored, %d sent", len(e.Body), len(tc.req.body))
			}
			if e.ReceivedAt.Before(before) || e.ReceivedAt.After(after) {
				t.Errorf("ReceivedAt = %v, want between %v and %v", e.ReceivedAt, before, after)
			}
		})
	}
}

// TestIngestBodyLimitBoundary checks that a body of exactly MaxBodySize is
// accepted and one byte more is not, with and without Content-Length.
func TestIngestBodyLimitBoundary(t *testing.T) {
	const limit = 2048
	for _, chunked := range []bool{false, true} {
		for _, size := range []int{limit, limit + 1} {
			t.Run(fmt.Sprintf("chunked=%v/size=%d", chunked, size), func(t *testing.T) {
				ts := newTestServer(t, Config{MaxBodySize: limit})
				req := ingestReq{query: pyroscopeGoQuery("app.cpu"), body: bytes.Repeat([]byte("a"), size), chunked: chunked}
				resp, body := do(t, nil, req.build(t, ts.url))
				want := http.StatusOK
				if size > limit {
					want = http.StatusRequestEntityTooLarge
				}
				if resp.StatusCode != want {
					t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, want, body)
				}
				_, stored := ts.store.counts()
				if wantStored := map[bool]int{true: 1, false: 0}[want == http.StatusOK]; stored != wantStored {
					t.Errorf("stored %d entries, want %d", stored, wantStored)
				}
			})
		}
	}
}

func TestIngestTenantPassthrough(t *testing.T) {
	for _, tc := range tenantCases {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, Config{TenantPassthrough: tc.passthrough})
			req := ingestReq{query: pyroscopeGoQuery("app.cpu"), body: []byte("a;b 1\n"), tenant: tc.tenant}
			resp, body := do(t, nil, req.build(t, ts.url))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d; body %s", resp.StatusCode, body)
			}
			calls := ts.store.entries()
			if len(calls) != 1 {
				t.Fatalf("stored %d entries, want 1", len(calls))
			}
			if got := calls[0].Entry.Tenant; got != tc.want {
				t.Errorf("Tenant = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestIngestCanceledPut checks that a Put that gives up because the client
// went away is answered 408, not as a full disk.
func TestIngestCanceledPut(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.store.setErr(fmt.Errorf("wait for commit: %w", context.Canceled))
	req := ingestReq{query: pyroscopeGoQuery("app.cpu"), body: []byte("a;b 1\n")}
	resp, body := do(t, nil, req.build(t, ts.url))
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status = %d, want 408; body %s", resp.StatusCode, body)
	}
	checkErrorBody(t, resp, body)
}

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"app", true},
		{"app.cpu", true},
		{"my-app/svc.v2.cpu{env=prod,region=eu-west-1}", true},
		{"app.cpu{}", true},
		{"app.cpu {env = prod}", true}, // the parser trims around names and values
		{"app.cpu{label.with.dots=x,_u=y}", true},
		{"app{service_name=other}", true},
		// The server's parser accepts an unterminated label set and keeps
		// only the app name; refusing it here would drop what the server
		// takes.
		{"app{a=b", true},
		{"app{a}", true},
		{"", false},
		{"app{bad-label=x}", false},
		{"app{bad label=x}", false},
		{"app{=x}", false},
		{"app{__name__=}", false},
		{"{}", false},
		{"{env=prod}", false},
		{"my app", false},
		{"app}", false},
		{"app\x00", false},
		{"äpp", false},
		{"app{a=b}{c=d}", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateName(tc.name)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidateName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
			}
			if err != nil {
				checkInputError(t, err)
			}
		})
	}
}

func TestValidateIngest(t *testing.T) {
	const mp = "multipart/form-data; boundary=abc"
	tests := []struct {
		query, contentType string
		ok                 bool
	}{
		{"name=app.cpu", "", true},
		{"name=app", "", true},
		{"name=app.goroutines&format=folded", "", true},
		{"name=app.alloc_in_new_tlab_bytes&format=groups", "text/plain; charset=utf-8", true},
		{"name=app.lock_duration&format=trie", "binary/octet-stream+trie", true},
		{"name=app.cpu%20%7Benv%3Dprod%7D", "", true}, // "app.cpu {env=prod}"
		{"name=app.bogus&format=pprof", "", true},
		{"name=app.bogus&format=jfr", mp, true},
		{"name=app.bogus&format=speedscope", "application/json", true},
		{"name=app.bogus", mp, true},
		// The server matches multipart/form-data and the trie and tree
		// types as written, and ignores any other Content-Type.
		{"name=app.bogus", "Multipart/Form-Data; boundary=abc", false},
		{"name=app.bogus&format=jfr", "BINARY/OCTET-STREAM+TREE", true},
		{"name=app.cpu&format=jfr", "multipart/mixed", true},
		{"name=app.cpu", "text/plain; =", true},
		{"name=app.cpu", "text/plain;charset=utf-8;", true},
		{"name=app.cpu", "/", true},
		{"name=app.cpu", "multipart/form-data; =", false},
		{"name=app.bogus&format=folded", mp, true},
		{"name=app.cpu&format=pprof", "binary/octet-stream+trie", true},
		{"", "", false},
		{"name=", "", false},
		{"format=pprof", "", false},
		{"name=app.cpu&format=PPROF", "", false},
		{"name=app.cpu&format=json", "", false},
		{"name=app.bogus", "", false},
		{"name=app.", "", false},
		{"name=app.CPU", "", false},
		{"name=app.bogus&format=lines", "", false},
		{"name=app.bogus&format=lines", mp, false},
		{"name=app.bogus&format=trie", mp, false},
		{"name=app.bogus&format=tree", "", false},
		{"name=app.bogus&format=pprof", "binary/octet-stream+trie", false},
		{"name=app.cpu", "multipart/form-data", false},
		{"name=app{bad-label=x}&format=pprof", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.query+"|"+tc.contentType, func(t *testing.T) {
			q, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatalf("bad test query: %v", err)
			}
			err = ValidateIngest(q, tc.contentType)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidateIngest(%q, %q) = %v, want ok=%v", tc.query, tc.contentType, err, tc.ok)
			}
			if err != nil {
				checkInputError(t, err)
			}
		})
	}
}

// checkInputError asserts err is a 400 *InputError with a reason.
func checkInputError(t *testing.T, err error) {
	t.Helper()
	var ie *InputError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v (%T) is not an *InputError", err, err)
	}
	if ie.Status != http.StatusBadRequest || ie.Reason == "" {
		t.Fatalf("InputError{%d, %q}, want status 400 and a reason", ie.Status, ie.Reason)
	}
	if errStatus(err) != http.StatusBadRequest {
		t.Fatalf("errStatus = %d, want 400", errStatus(err))
	}
}

// TestIngestPyroscopeSamples sends the real client payloads kept next to the
// repository, each the way its README says, and expects them accepted and
// stored unchanged.
func TestIngestPyroscopeSamples(t *testing.T) {
	if _, err := os.Stat(filepath.Join(samplesDir, "README.md")); err != nil {
		t.Skipf("real Pyroscope payloads not available at %s (fresh clone?): %v", samplesDir, err)
	}
	read := func(name string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(samplesDir, name))
		if err != nil {
			t.Fatalf("read sample: %v", err)
		}
		return b
	}
	cpu, heap := read("cpu.pb.gz"), read("heap.pb.gz")
	cpuMP, cpuMPType := multipartBody(t, formPart{"profile", "profile.pprof", cpu})
	heapMP, heapMPType := multipartBody(t, formPart{"profile", "profile.pprof", heap})
	req2, req2Type := multipartBody(t,
		formPart{"profile", "profile.pprof", read("req_2.pprof")},
		formPart{"sample_type_config", "sample_type_config.json", read("req_2.st.json")})
	jfr, jfrType := multipartBody(t,
		formPart{"jfr", "jfr", read("dump1.jfr.gz")},
		formPart{"labels", "labels", read("dump1.labels.pb.gz")})

	tests := []struct {
		name string
		req  ingestReq
	}{
		{"cpu.pb.gz multipart", ingestReq{query: pyroscopeGoQuery("app.cpu{env=test}"), contentType: cpuMPType, body: cpuMP}},
		{"cpu.pb.gz format=pprof", ingestReq{query: pyroscopeGoQuery("app.cpu", "format", "pprof"), body: cpu}},
		{"heap.pb.gz multipart", ingestReq{query: pyroscopeGoQuery("app.inuse_space{env=test}", "units", "bytes"),
			contentType: heapMPType, body: heapMP}},
		{"heap.pb.gz format=pprof", ingestReq{query: pyroscopeGoQuery("app.inuse_space", "units", "bytes", "format", "pprof"), body: heap}},
		{"req_2 with sample_type_config", ingestReq{query: pyroscopeGoQuery("app.cpu"), contentType: req2Type, body: req2}},
		{"dump1 jfr with labels", ingestReq{query: pyroscopeGoQuery("com.example.App", "format", "jfr", "spyName", "javaspy"),
			contentType: jfrType, body: jfr}},
		{"simple.speedscope.json", ingestReq{query: pyroscopeGoQuery("app.cpu", "format", "speedscope"),
			contentType: "application/json", body: read("simple.speedscope.json")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, Config{})
			resp, body := do(t, nil, tc.req.build(t, ts.url))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %s", resp.StatusCode, body)
			}
			calls := ts.store.entries()
			if len(calls) != 1 {
				t.Fatalf("stored %d entries, want 1", len(calls))
			}
			e := calls[0].Entry
			if !bytes.Equal(e.Body, tc.req.body) || e.ContentType != tc.req.contentType || e.Query != tc.req.query {
				t.Errorf("stored entry differs from the request: query %q, content type %q, %d body bytes",
					e.Query, e.ContentType, len(e.Body))
			}
			if !strings.Contains(e.Query, "name=") {
				t.Errorf("stored query %q lost the name", e.Query)
			}
		})
	}
}
