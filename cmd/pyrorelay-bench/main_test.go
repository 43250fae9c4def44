package main

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

func TestBuildPayload(t *testing.T) {
	td, err := findTestdata("")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		kind      string
		size      int
		wantParts []string // multipart parts in order; nil for a raw body
		format    string
	}{
		{kind: "pprof", size: 16 << 10, wantParts: []string{"profile", "sample_type_config"}},
		{kind: "pprof", size: 64 << 10, wantParts: []string{"profile", "sample_type_config"}},
		{kind: "jfr", wantParts: []string{"jfr"}, format: "jfr"},
		{kind: "folded"},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			p, err := buildPayload(tt.kind, td, tt.size)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.query.Get("format"); got != tt.format {
				t.Errorf("format %q, want %q", got, tt.format)
			}
			if tt.kind == "pprof" {
				// Padded to the size asked, within one padding step.
				if len(p.body) > tt.size || len(p.body) < tt.size-200 {
					t.Errorf("body %d bytes, want about %d", len(p.body), tt.size)
				}
				checkPprof(t, p.profile)
			}
			if tt.wantParts == nil {
				return
			}
			mt, params, err := mime.ParseMediaType(p.contentType)
			if err != nil || mt != "multipart/form-data" {
				t.Fatalf("content type %q: %v", p.contentType, err)
			}
			mr := multipart.NewReader(bytes.NewReader(p.body), params["boundary"])
			var parts []string
			for {
				part, err := mr.NextPart()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if part.FileName() == "" {
					t.Errorf("part %q has no filename: the server reads parts as files", part.FormName())
				}
				if part.FormName() == "profile" {
					if part.FileName() != "profile.pprof" {
						t.Errorf("profile filename %q", part.FileName())
					}
					b, _ := io.ReadAll(part)
					checkPprof(t, b)
				}
				parts = append(parts, part.FormName())
			}
			if strings.Join(parts, ",") != strings.Join(tt.wantParts, ",") {
				t.Errorf("parts %v, want %v", parts, tt.wantParts)
			}
		})
	}
}

// checkPprof checks that b is gzip holding a well-formed protobuf message
// (the padding must keep the profile parseable).
func checkPprof(t *testing.T, b []byte) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("profile is not gzip: %v", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("profile gzip: %v", err)
	}
	for len(raw) > 0 {
		_, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			t.Fatalf("profile protobuf: bad tag: %v", protowire.ParseError(n))
		}
		raw = raw[n:]
		n = protowire.ConsumeFieldValue(0, typ, raw)
		if n < 0 {
			t.Fatalf("profile protobuf: bad field: %v", protowire.ParseError(n))
		}
		raw = raw[n:]
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"relay bin", []string{"--relay-bin", "x"}, ""},
		{"url", []string{"--url", "http://127.0.0.1:4040/"}, ""},
		{"neither", nil, "one of --relay-bin or --url"},
		{"both", []string{"--relay-bin", "x", "--url", "http://127.0.0.1:1"}, "one of --relay-bin or --url"},
		{"not loopback", []string{"--url", "http://10.0.0.1:4040"}, "not a loopback"},
		{"sink not loopback", []string{"--url", "http://localhost:4040", "--sink-listen", "0.0.0.0:9000"}, "not a loopback"},
		{"bad mode", []string{"--relay-bin", "x", "--mode", "flaky"}, "--mode"},
		{"restart needs down", []string{"--relay-bin", "x", "--restart"}, "--restart"},
		{"crash restart", []string{"--relay-bin", "x", "--mode", "down-then-up", "--restart", "--crash", "--drop-caches"}, ""},
		{"crash needs restart", []string{"--relay-bin", "x", "--mode", "down-then-up", "--crash"}, "go with --restart"},
		{"drop caches needs restart", []string{"--relay-bin", "x", "--drop-caches"}, "go with --restart"},
		{"push is pprof", []string{"--relay-bin", "x", "--endpoint", "push", "--body", "jfr"}, "push sends pprof"},
		{"compare needs bin", []string{"--url", "http://127.0.0.1:1", "--compare-no-group-commit"}, "needs --relay-bin"},
		{"relay flags repeat", []string{"--relay-bin", "x", "--relay-flag=--a", "--relay-flag=--b"}, ""},
		{"reference", []string{"--relay-bin", "x", "--compare-reference", "--mode", "one-slow"}, ""},
		{"reference needs bin", []string{"--url", "http://127.0.0.1:1", "--compare-reference"}, "needs --relay-bin"},
		{"reference keeps no backlog", []string{"--relay-bin", "x", "--compare-reference", "--mode", "down-then-up"}, "no backlog"},
		{"one comparison at a time", []string{"--relay-bin", "x", "--compare-reference", "--compare-no-group-commit"}, "leave out"},
		{"reference write buffer", []string{"--relay-bin", "x", "--compare-reference", "--reference-write-buffer", "0"}, "must be positive"},
		{"random failures", []string{"--relay-bin", "x", "--fail-percent", "20", "--fault-sinks", "1"}, ""},
		{"failure share over 100", []string{"--relay-bin", "x", "--fail-percent", "101"}, "--fail-percent"},
		{"flap", []string{"--relay-bin", "x", "--flap-down", "3s", "--flap-period", "10s"}, ""},
		{"flap without period", []string{"--relay-bin", "x", "--flap-down", "3s"}, "--flap-period"},
		{"flap down all the period", []string{"--relay-bin", "x", "--flap-down", "10s", "--flap-period", "10s"}, "shorter than the period"},
		{"paced", []string{"--relay-bin", "x", "--rate", "50"}, ""},
		{"negative rate", []string{"--relay-bin", "x", "--rate", "-1"}, "--rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseFlags(tt.args, io.Discard)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			if tt.name == "relay flags repeat" && strings.Join(c.relayFlags, " ") != "--a --b" {
				t.Errorf("relay flags %q", c.relayFlags)
			}
			if tt.name == "url" && c.url != "http://127.0.0.1:4040" {
				t.Errorf("url %q: the trailing slash should go", c.url)
			}
		})
	}
}

func TestSinkFaults(t *testing.T) {
	start := time.Now()
	flap := sinkFaults{flapDown: 3 * time.Second, flapPeriod: 10 * time.Second, start: start}
	for _, tc := range []struct {
		at   time.Duration
		want bool
	}{{0, true}, {2 * time.Second, true}, {3 * time.Second, false}, {9 * time.Second, false}, {10 * time.Second, true}, {14 * time.Second, false}} {
		if got := flap.refuse(start.Add(tc.at)); got != tc.want {
			t.Errorf("flapping 3s of 10s, at %v: refuse = %v, want %v", tc.at, got, tc.want)
		}
	}
	never, always := sinkFaults{}, sinkFaults{failPercent: 100}
	for range 100 {
		if never.refuse(start) || !always.refuse(start) {
			t.Fatal("0% refused a request, or 100% took one")
		}
	}
	half := sinkFaults{failPercent: 50}
	refused := 0
	for range 10000 {
		if half.refuse(start) {
			refused++
		}
	}
	if refused < 4000 || refused > 6000 {
		t.Errorf("50%% refused %d of 10000", refused)
	}
}

func TestCheckDelivery(t *testing.T) {
	a := &sink{name: "a", seen: map[uint64]uint32{1: 1, 2: 2, 3: 1, 9: 1}}
	b := &sink{name: "b", seen: map[uint64]uint32{1: 1, 3: 3}}
	got := checkDelivery([]uint64{1, 2, 3}, []*sink{a, b})
	want := deliveryCheck{Acked: 3, Sinks: 2, Missing: 1, Duplicates: 3, Unacked: 1, MissingSample: []string{"b:2"}}
	if g, w := jsonString(t, got), jsonString(t, want); g != w {
		t.Errorf("got %s\nwant %s", g, w)
	}
}

func jsonString(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAgainstRelayBinary runs the tool briefly, in every mode, against the
// real relay built from this module, so that neither the tool nor the
// relay's side of it (flags, log line, metrics names) can rot.
func TestAgainstRelayBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the relay binary")
	}
	bin := buildRelay(t)
	tests := []struct {
		name string
		cfg  func(*config)
	}{
		{"healthy ingest", func(c *config) {}},
		{"healthy push", func(c *config) { c.endpoint = "push" }},
		{"jfr", func(c *config) { c.body = "jfr" }},
		{"folded no group commit", func(c *config) { c.body = "folded"; c.noGroupCommit = true }},
		{"down then up with restart", func(c *config) { c.mode = "down-then-up"; c.restart = true }},
		{"down then up with a crash", func(c *config) { c.mode = "down-then-up"; c.restart = true; c.crash = true }},
		{"one down then up", func(c *config) { c.mode = "down-then-up"; c.downSinks = 1 }},
		{"down for a while", func(c *config) {
			c.mode = "down-then-up"
			c.downFor = 150 * time.Millisecond
			c.count = 0
			c.duration = 500 * time.Millisecond
		}},
		{"one slow", func(c *config) { c.mode = "one-slow"; c.slowDelay = 5 * time.Millisecond }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig(bin)
			tt.cfg(&c)
			if err := c.check(); err != nil {
				t.Fatal(err)
			}
			r, err := runOnce(context.Background(), c, testWriter{t})
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			r.print(&out)
			t.Log(out.String())
			if c.count > 0 && r.Load.Acked != c.count {
				t.Errorf("%d of %d acked; errors %v", r.Load.Acked, c.count, r.Load.Errors)
			}
			if r.Load.Acked == 0 {
				t.Fatalf("nothing acked; errors %v", r.Load.Errors)
			}
			if !r.Drained {
				t.Error("queues did not drain")
			}
			if r.Delivery == nil || r.Delivery.Missing != 0 || r.Delivery.Acked != r.Load.Acked || r.Delivery.NoID != 0 {
				t.Errorf("delivery %+v", r.Delivery)
			}
			if r.RSS == nil || r.RSS.Peak == 0 || r.StartReady == 0 {
				t.Errorf("relay figures missing: rss %v, ready %s", r.RSS, r.StartReady)
			}
			if r.Commits == 0 || r.CommitsPerReq == 0 {
				t.Errorf("no commits counted: %v", r.Commits)
			}
			if c.noGroupCommit && r.WritesPerCommit != 1 {
				t.Errorf("%.2f writes per commit without group commit", r.WritesPerCommit)
			}
			if c.mode == "down-then-up" {
				b := r.Backlog
				if b == nil || b.DrainPerS == 0 {
					t.Fatalf("backlog figures missing: %+v", b)
				}
				// With --down-for, a loaded machine may ack nothing before
				// the sinks are back; the count decides the whole run.
				if c.downFor == 0 && b.IngestPerS == 0 {
					t.Errorf("no ingest rate: %+v", b)
				}
				if c.restart && (b.RestartReady == 0 || r.RSSAfterRestart == nil || b.Crashed != c.crash) {
					t.Errorf("restart figures missing: %+v", b)
				}
				for i, s := range r.Sink {
					down := c.downSinks == 0 || i < c.downSinks
					if c.downFor == 0 && down != (s.Refused > 0) {
						t.Errorf("sink %s refused %d requests; down: %v", s.Name, s.Refused, down)
					}
				}
				if want := cmp.Or(c.downSinks, c.sinks); c.downFor == 0 && b.Down != want {
					t.Errorf("%d destinations down, want %d", b.Down, want)
				}
			}
		})
	}
}

// TestCompareJSON runs the comparison with the JSON report, the way
// BENCHMARKS.md's figures are taken.
func TestCompareJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the relay binary")
	}
	c := testConfig(buildRelay(t))
	c.compare = true
	runs, _ := runComparison(t, c)
	if runs[0].Label != "group commit" || runs[1].Label != "no group commit" {
		t.Errorf("labels %q, %q", runs[0].Label, runs[1].Label)
	}
}

// runComparison runs c (one of the comparisons) with the JSON report and
// returns its two runs and the comparison, failing the test unless both
// are there.
func runComparison(t *testing.T, c config) ([]result, *comparison) {
	t.Helper()
	c.jsonOut = true
	var out bytes.Buffer
	if err := runAll(context.Background(), c, &out, testWriter{t}); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Runs       []result
		Comparison *comparison
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(got.Runs) != 2 || got.Comparison == nil || got.Comparison.ThroughputRatio == 0 {
		t.Fatalf("report %s", out.String())
	}
	return got.Runs, got.Comparison
}

// TestCompareReference runs pyrorelay and the in-memory reference relay on
// the same load, for both endpoints: the reference must deliver every
// request it acknowledged to every sink, answer Push clients in their
// protocol, and report its CPU and memory like pyrorelay.
func TestCompareReference(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the relay binary")
	}
	for _, tt := range []struct {
		endpoint    string
		writeBuffer int
	}{{"ingest", defaultReferenceWriteBuffer}, {"push", 4096}} {
		t.Run(tt.endpoint, func(t *testing.T) {
			c := testConfig(buildRelay(t))
			c.compareReference, c.endpoint, c.refWriteBuffer = true, tt.endpoint, tt.writeBuffer
			if err := c.check(); err != nil {
				t.Fatal(err)
			}
			runs, cmp := runComparison(t, c)
			relay, ref := runs[0], runs[1]
			if relay.Reference || !ref.Reference || !strings.HasPrefix(ref.Label, "in-memory reference") {
				t.Errorf("runs %q (reference %v), %q (reference %v)", relay.Label, relay.Reference, ref.Label, ref.Reference)
			}
			for _, r := range runs {
				if r.Load.Acked != c.count || r.Delivery == nil || r.Delivery.Missing != 0 || r.Delivery.Acked != c.count {
					t.Errorf("%s: %d of %d acked (errors %v), delivery %+v", r.Label, r.Load.Acked, c.count, r.Load.Errors, r.Delivery)
				}
				if r.RSS == nil || r.RSS.Peak == 0 {
					t.Errorf("%s: no peak RSS", r.Label)
				}
			}
			if ref.Commits != 0 || relay.Commits == 0 {
				t.Errorf("commits: pyrorelay %v, reference %v", relay.Commits, ref.Commits)
			}
			if cmp.PeakRSS[1] == 0 {
				t.Errorf("comparison without the reference's memory: %+v", cmp)
			}
		})
	}
}

// TestReferenceRelay: the reference answers only once every destination
// took the request, as it came, and 502 when one did not.
func TestReferenceRelay(t *testing.T) {
	type seen struct{ uri, contentType, body string }
	var mu sync.Mutex
	var got []seen
	status := http.StatusOK
	sink := func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.URL.RequestURI(), r.Header.Get("Content-Type"), string(b)})
		code := status
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-test")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, "took it")
	}
	a, b := httptest.NewServer(http.HandlerFunc(sink)), httptest.NewServer(http.HandlerFunc(sink))
	defer a.Close()
	defer b.Close()
	ref := httptest.NewServer(newReferenceRelay([]string{a.URL, b.URL}, 4096).Handler())
	defer ref.Close()

	post := func() (*http.Response, string) {
		t.Helper()
		resp, err := http.Post(ref.URL+"/ingest?name=app.cpu&reqid=1", "text/plain", strings.NewReader("foo;bar 1\n"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	resp, body := post()
	want := seen{"/ingest?name=app.cpu&reqid=1", "text/plain", "foo;bar 1\n"}
	if resp.StatusCode != http.StatusOK || body != "took it" || resp.Header.Get("Content-Type") != "application/x-test" {
		t.Errorf("answer %d %q %q, want the destinations' 200", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	mu.Lock()
	if len(got) != 2 || got[0] != want || got[1] != want {
		t.Errorf("destinations saw %+v, want %+v twice", got, want)
	}
	mu.Unlock()

	mu.Lock()
	status = http.StatusServiceUnavailable
	mu.Unlock()
	if resp, body := post(); resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "answered 503") {
		t.Errorf("a destination down: %d %q, want 502 naming its answer", resp.StatusCode, body)
	}

	resp, err := http.Get(ref.URL + "/ingest")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", resp.StatusCode)
	}
	for path, want := range map[string]string{"/-/ready": "", "/metrics": "process_cpu_seconds_total"} {
		resp, err := http.Get(ref.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %d, body without %q", path, resp.StatusCode, want)
		}
	}
}

// TestCPUProfile: --cpuprofile leaves a pprof profile of the tool's run
// (gzipped protobuf), and a path that cannot be written fails the run
// before any load.
func TestCPUProfile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the relay binary")
	}
	c := testConfig(buildRelay(t))
	c.cpuProfile = filepath.Join(t.TempDir(), "tool.prof")
	if err := run(context.Background(), c, io.Discard, testWriter{t}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(c.cpuProfile)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("profile of %d bytes is not gzipped pprof: % x", len(b), b[:min(len(b), 8)])
	}

	c.cpuProfile = filepath.Join(t.TempDir(), "no such dir", "tool.prof")
	err = run(context.Background(), c, io.Discard, testWriter{t})
	if err == nil || !strings.Contains(err.Error(), "cpu profile") {
		t.Fatalf("unwritable profile path: %v", err)
	}
}

func testConfig(bin string) config {
	return config{
		relayBin: bin, sinks: 2, clients: 4, count: 60, body: "pprof", bodySize: 16 << 10, refWriteBuffer: defaultReferenceWriteBuffer,
		endpoint: "ingest", mode: "healthy", minBackoff: 5 * time.Millisecond, maxBackoff: 50 * time.Millisecond,
		drainTimeout: 60 * time.Second, timeout: 30 * time.Second,
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

var relayBuild struct {
	once          sync.Once
	dir, bin, out string
	err           error
}

// buildRelay builds cmd/pyrorelay into a temp dir once per test binary.
func buildRelay(t *testing.T) string {
	t.Helper()
	relayBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "pyrorelay-bench-test-")
		if err != nil {
			relayBuild.err = err
			return
		}
		relayBuild.dir = dir
		bin := filepath.Join(dir, "pyrorelay")
		gobin, err := exec.LookPath("go")
		if err != nil {
			gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		cmd := exec.Command(gobin, "build", "-o", bin, "../pyrorelay")
		if out, err := cmd.CombinedOutput(); err != nil {
			relayBuild.err = err
			relayBuild.out = string(out)
			return
		}
		relayBuild.bin = bin
	})
	if relayBuild.err != nil {
		t.Fatalf("build relay: %v\n%s", relayBuild.err, relayBuild.out)
	}
	return relayBuild.bin
}

func TestMain(m *testing.M) {
	// --compare-reference starts the tool's own binary as the reference
	// relay; in tests, that binary is this one.
	if len(os.Args) > 1 && os.Args[1] == referenceCommand {
		os.Exit(referenceMain(os.Args[2:], os.Stderr))
	}
	code := m.Run()
	if relayBuild.dir != "" {
		os.RemoveAll(relayBuild.dir)
	}
	os.Exit(code)
}

func TestQueryParam(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"name=a.cpu&reqid=42", "42"},
		{"reqid=7&name=a.cpu", "7"},
		{"reqidx=1&reqid=2", "2"},
		{"name=a.cpu", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := queryParam(tt.raw, reqIDParam); got != tt.want {
			t.Errorf("queryParam(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}
