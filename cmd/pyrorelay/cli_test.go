package main

// Tests of the operator commands of issue 4: queue status and move, drain,
// export and import, replay, dead-letter, compact, and the archive. Most
// run the CLI in-process (newApp) on data dirs filled through the store
// package; the ones that need a running relay use the e2e harness
// (harness_test.go: startRelay, newRecorder, waitFor, scrape).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime/multipart"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	typesv1 "github.com/grafana/pyroscope/api/gen/proto/go/types/v1"
	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/proto"

	"github.com/pyrorelay/pyrorelay/exportfile"
	"github.com/pyrorelay/pyrorelay/httpserver"
	"github.com/pyrorelay/pyrorelay/internal/syncbuf"
	"github.com/pyrorelay/pyrorelay/pushwire"
	"github.com/pyrorelay/pyrorelay/store"
)

// cliDeadline bounds every wait of these tests.
const cliDeadline = 60 * time.Second

type cliResult struct {
	stdout, stderr string
	err            error
}

// cliRun runs `pyrorelay args...` in-process with stdin, without the
// host's PYRORELAY_ variables.
func cliRun(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "PYRORELAY_") {
			t.Setenv(k, v) // restored at cleanup
			_ = os.Unsetenv(k)
		}
	}
	app := newApp()
	out, errOut := &syncbuf.Buffer{}, &syncbuf.Buffer{}
	app.Writer, app.ErrWriter, app.Reader = out, errOut, strings.NewReader(stdin)
	app.ExitErrHandler = func(*cli.Context, error) {}
	err := app.Run(append([]string{"pyrorelay"}, args...))
	return cliResult{stdout: out.String(), stderr: errOut.String(), err: err}
}

// cliOK runs the CLI and fails the test on an error.
func cliOK(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	r := cliRun(t, stdin, args...)
	if r.err != nil {
		t.Fatalf("pyrorelay %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.err, r.stdout, r.stderr)
	}
	return r
}

var cliProfile = func() []byte {
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cpu.pb.gz"))
	if err != nil {
		panic(err)
	}
	return b
}()

// cliDataset is n entries received a minute apart from t0, cycling over
// three shapes: a folded /ingest of app "shop" (env=prod), a multipart
// pprof /ingest of app "cart" (env=dev), and a Push of service "shop"
// (env=dev). Entry i carries req_id "e<i>".
func cliDataset(t *testing.T, n int, t0 time.Time) []*store.Entry {
	t.Helper()
	out := make([]*store.Entry, n)
	for i := range n {
		id, at := fmt.Sprintf("e%02d", i), t0.Add(time.Duration(i)*time.Minute)
		switch i % 3 {
		case 0:
			q := url.Values{"name": {"shop.cpu{env=prod}"}, "req_id": {id}, "from": {"1700000000"}, "until": {"1700000010"}}
			out[i] = &store.Entry{Kind: store.KindIngest, ReceivedAt: at, Query: q.Encode(), Body: []byte("main;buy_" + id + " 10\nmain;idle 2\n")}
		case 1:
			var buf bytes.Buffer
			mw := multipart.NewWriter(&buf)
			pw, err := mw.CreateFormFile("profile", "profile.pprof")
			if err != nil {
				t.Fatal(err)
			}
			_, _ = pw.Write(cliProfile)
			_ = mw.Close()
			q := url.Values{"name": {"cart{env=dev}"}, "req_id": {id}, "spyName": {"gospy"}}
			out[i] = &store.Entry{Kind: store.KindIngest, ReceivedAt: at, Query: q.Encode(), ContentType: mw.FormDataContentType(), Tenant: "team-a", Body: buf.Bytes()}
		default:
			msg := &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{
				Labels: []*typesv1.LabelPair{
					{Name: "__name__", Value: "process_cpu"}, {Name: "service_name", Value: "shop"},
					{Name: "env", Value: "dev"}, {Name: "req_id", Value: id},
				},
				Samples: []*pushv1.RawSample{{RawProfile: cliProfile, ID: id}},
			}}}
			body, err := proto.Marshal(msg)
			if err != nil {
				t.Fatal(err)
			}
			out[i] = &store.Entry{Kind: store.KindPush, ReceivedAt: at, Body: body, ContentEncoding: "", Tenant: "team-b"}
		}
	}
	return out
}

// cliReqID is the req_id of an entry of cliDataset.
func cliReqID(t *testing.T, e *store.Entry) string {
	t.Helper()
	if e.Kind == store.KindIngest {
		q, _ := url.ParseQuery(e.Query)
		return q.Get("req_id")
	}
	id := ""
	_ = pushwire.EachSeries(e.Body, func(l map[string]string) bool { id = l["req_id"]; return false })
	return id
}

// cliFill stores entries in queue of the data dir dir.
func cliFill(t *testing.T, dir, queue string, entries []*store.Entry) {
	t.Helper()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Import(context.Background(), queue, entries); err != nil {
		t.Fatal(err)
	}
}

// cliDeadLetter moves the entries of queue with the given req_ids to its
// dead-letter list, the way a forwarder would after a 400.
func cliDeadLetter(t *testing.T, dir, queue string, ids ...string) {
	t.Helper()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	items, _, err := st.ReadBatch(context.Background(), queue, 0, 1<<20, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if slices.Contains(ids, cliReqID(t, it.Entry)) {
			if err := st.MoveToDeadLetter(context.Background(), queue, it.Seq, store.DeadLetter{Reason: "400 bad tenant", Status: 400, Attempts: 1}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// cliEntries reads every entry of src in the data dir dir.
func cliEntries(t *testing.T, dir string, src store.Source) []*store.Entry {
	t.Helper()
	st, err := store.OpenReadOnly(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var out []*store.Entry
	if _, err := st.Scan(context.Background(), src, store.Filter{}, func(r store.Record) error {
		out = append(out, r.Entry)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// cliSameRequests checks two lists of entries hold the same requests, byte
// for byte, in order (ids aside: a store assigns its own).
func cliSameRequests(t *testing.T, got, want []*store.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Kind != w.Kind || g.ReceivedAt.UnixNano() != w.ReceivedAt.UnixNano() || g.Query != w.Query ||
			g.ContentType != w.ContentType || g.ContentEncoding != w.ContentEncoding || g.Tenant != w.Tenant || !bytes.Equal(g.Body, w.Body) {
			t.Errorf("entry %d differs:\n got %v %s %q %q %q %q %d bytes\nwant %v %s %q %q %q %q %d bytes", i,
				g.Kind, g.ReceivedAt.Format(time.RFC3339Nano), g.Query, g.ContentType, g.ContentEncoding, g.Tenant, len(g.Body),
				w.Kind, w.ReceivedAt.Format(time.RFC3339Nano), w.Query, w.ContentType, w.ContentEncoding, w.Tenant, len(w.Body))
		}
	}
}

// cliArrived lists the req_ids a recorder accepted, /ingest and Push, sorted.
func cliArrived(r *recorder) []string {
	var ids []string
	for id, n := range r.ingestIDs() {
		for range n {
			ids = append(ids, id)
		}
	}
	for id, n := range r.pushIDs() {
		for range n {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

func cliIDs(idx ...int) []string {
	out := make([]string, len(idx))
	for i, n := range idx {
		out[i] = fmt.Sprintf("e%02d", n)
	}
	sort.Strings(out)
	return out
}

func cliWhere(n int, keep func(i int) bool) []int {
	var out []int
	for i := range n {
		if keep(i) {
			out = append(out, i)
		}
	}
	return out
}

// cliT0 is the receive time of the first dataset entry: old enough that
// relative filters (-2h) cut through the set, and whole seconds so RFC 3339
// arguments name entries exactly.
func cliT0() time.Time { return time.Now().Add(-3 * time.Hour).Truncate(time.Second) }

func TestCLIExportImportRoundTrip(t *testing.T) {
	src := t.TempDir()
	want := cliDataset(t, 18, cliT0())
	cliFill(t, src, "prod", want)
	cliDeadLetter(t, src, "prod", "e04", "e05")
	queued := cliEntries(t, src, store.QueueSource("prod"))
	dead := cliEntries(t, src, store.DeadLetterSource("prod"))
	if len(queued) != 16 || len(dead) != 2 {
		t.Fatalf("dataset: %d queued, %d dead", len(queued), len(dead))
	}

	t.Run("directory", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "export")
		r := cliOK(t, "", "export", "--data-dir", src, "--destination", "prod", "--out", out)
		if !strings.Contains(r.stderr, "exported 16 entries") {
			t.Errorf("stderr %q", r.stderr)
		}
		files, _ := filepath.Glob(filepath.Join(out, "*"))
		if len(files) != 32 {
			t.Errorf("%d files, want a body and a sidecar for each of 16 entries", len(files))
		}
		// A sidecar says everything about the request and re-sends it.
		js, err := os.ReadFile(filepath.Join(out, exportfile.BaseName(queued[1].ID)+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var side map[string]any
		if err := json.Unmarshal(js, &side); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"id", "kind", "received_at", "query", "content_type", "content_encoding", "tenant", "body_sha256", "request"} {
			if _, ok := side[k]; !ok {
				t.Errorf("sidecar has no %q: %s", k, js)
			}
		}
		if side["kind"] != "ingest" || side["tenant"] != "team-a" || !strings.HasPrefix(side["content_type"].(string), "multipart/form-data; boundary=") {
			t.Errorf("sidecar %s", js)
		}
		body, err := os.ReadFile(filepath.Join(out, exportfile.BaseName(queued[1].ID)+".body"))
		if err != nil || !bytes.Equal(body, queued[1].Body) {
			t.Errorf("body file differs from the stored body (%v)", err)
		}

		dst := filepath.Join(t.TempDir(), "new-node")
		r = cliOK(t, "", "import", out, "--destination", "prod", "--data-dir", dst)
		if !strings.Contains(r.stdout, "imported 16 entries") {
			t.Errorf("stdout %q", r.stdout)
		}
		cliSameRequests(t, cliEntries(t, dst, store.QueueSource("prod")), queued)

		if r := cliRun(t, "", "export", "--data-dir", src, "--destination", "prod", "--out", out); r.err == nil || !strings.Contains(r.err.Error(), "not empty") {
			t.Errorf("export into a non-empty dir: %v", r.err)
		}
		// A damaged body is refused, naming the file.
		if err := os.WriteFile(filepath.Join(out, exportfile.BaseName(queued[0].ID)+".body"), []byte("garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
		r = cliRun(t, "", "import", out, "--destination", "prod", "--data-dir", t.TempDir())
		if r.err == nil || !strings.Contains(r.err.Error(), "body_sha256") {
			t.Errorf("import of a damaged export: %v", r.err)
		}
	})

	t.Run("dead letters", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "dead")
		cliOK(t, "", "export", "--data-dir", src, "--dead-letter", "prod", "--out", out)
		js, err := os.ReadFile(filepath.Join(out, exportfile.BaseName(dead[0].ID)+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var x exportfile.Record
		if err := json.Unmarshal(js, &x); err != nil {
			t.Fatal(err)
		}
		if x.Reason != "400 bad tenant" || x.Status != 400 || x.Attempts != 1 || x.DeadLetteredAt == nil || x.From != "dead-letter:prod" {
			t.Errorf("dead-letter sidecar %s", js)
		}
		dst := t.TempDir()
		cliOK(t, "", "import", out, "--destination", "prod", "--data-dir", dst)
		cliSameRequests(t, cliEntries(t, dst, store.QueueSource("prod")), dead)
	})

	t.Run("ndjson", func(t *testing.T) {
		r := cliOK(t, "", "export", "--data-dir", src, "--destination", "prod", "--out", "-")
		if n := strings.Count(r.stdout, "\n"); n != 16 {
			t.Errorf("%d ndjson lines, want 16", n)
		}
		dst := t.TempDir()
		cliOK(t, r.stdout, "import", "-", "--destination", "prod", "--data-dir", dst)
		cliSameRequests(t, cliEntries(t, dst, store.QueueSource("prod")), queued)
	})
}

func TestCLIReplayExportedSetRespectsRate(t *testing.T) {
	src := t.TempDir()
	const n, rate = 10, 20.0
	want := cliDataset(t, n, cliT0())
	cliFill(t, src, "prod", want)
	out := filepath.Join(t.TempDir(), "export")
	cliOK(t, "", "export", "--data-dir", src, "--destination", "prod", "--out", out)

	rec := newRecorder(t, nil)
	start := time.Now()
	r := cliOK(t, "", "replay", "--from", out, "--to", rec.URL(), "--rate", fmt.Sprint(rate), "--concurrency", "3")
	elapsed := time.Since(start)
	// Only a lower bound: a slow machine may take longer, never shorter.
	if min := time.Duration(float64(n-1) / rate * float64(time.Second)); elapsed < min {
		t.Errorf("%d entries at %v/s took %v, less than %v", n, rate, elapsed, min)
	}
	if got, want := cliArrived(rec), cliIDs(cliWhere(n, func(int) bool { return true })...); !slices.Equal(got, want) {
		t.Errorf("arrived %v, want each of %v once", got, want)
	}
	if !strings.Contains(r.stdout, fmt.Sprintf("sent %d entries", n)) {
		t.Errorf("stdout %q", r.stdout)
	}
	// Requests arrive as they were stored: query, Content-Type, body; Push
	// messages decode to what was pushed.
	byID := map[string]*store.Entry{}
	for _, e := range want {
		byID[cliReqID(t, e)] = e
	}
	for _, got := range rec.accepted() {
		q, _ := url.ParseQuery(got.RawQuery)
		e := byID[q.Get("req_id")]
		if e == nil || got.RawQuery != e.Query || got.Header.Get("Content-Type") != e.ContentType || !bytes.Equal(got.Body, e.Body) {
			t.Errorf("ingest request %s differs from the stored one", q.Get("req_id"))
		}
		if e != nil && e.Tenant != "" && got.Header.Get("X-Scope-OrgID") != e.Tenant {
			t.Errorf("ingest request %s: tenant %q, want %q", q.Get("req_id"), got.Header.Get("X-Scope-OrgID"), e.Tenant)
		}
	}
	for _, p := range rec.acceptedPushes() {
		id := ""
		for _, l := range p.GetSeries()[0].GetLabels() {
			if l.GetName() == "req_id" {
				id = l.GetValue()
			}
		}
		var stored pushv1.PushRequest
		if e := byID[id]; e == nil || proto.Unmarshal(e.Body, &stored) != nil || !proto.Equal(p, &stored) {
			t.Errorf("push %s differs from the stored one", id)
		}
	}
}

func TestCLIReplayFiltersSelectExactly(t *testing.T) {
	src := t.TempDir()
	const n = 24
	t0 := cliT0()
	cliFill(t, src, "prod", cliDataset(t, n, t0))
	exportDir := filepath.Join(t.TempDir(), "export")
	cliOK(t, "", "export", "--data-dir", src, "--destination", "prod", "--out", exportDir)
	at := func(i int) string { return t0.Add(time.Duration(i) * time.Minute).UTC().Format(time.RFC3339) }
	// t0 was 3h ago when the entries were stored: -2h58m30s falls between
	// e01 and e02 for the next 29 s, so the relative case runs first.
	tests := []struct {
		name    string
		args    []string
		fromDir bool
		want    []int
	}{
		{"relative", []string{"--since", "-2h58m30s"}, false, cliWhere(n, func(i int) bool { return i >= 2 })},
		{"app", []string{"--app", "shop"}, false, cliWhere(n, func(i int) bool { return i%3 != 1 })},
		{"app with type suffix", []string{"--app", "cart"}, false, cliWhere(n, func(i int) bool { return i%3 == 1 })},
		{"app and label (ingest)", []string{"--app", "shop{env=prod}"}, false, cliWhere(n, func(i int) bool { return i%3 == 0 })},
		{"app and label (push)", []string{"--app", "shop{env=dev}"}, false, cliWhere(n, func(i int) bool { return i%3 == 2 })},
		{"no such app", []string{"--app", "nope"}, false, nil},
		{"time window", []string{"--since", at(5), "--until", at(10)}, false, cliWhere(n, func(i int) bool { return i >= 5 && i < 10 })},
		{"app and since", []string{"--app", "cart", "--since", at(12)}, false, cliWhere(n, func(i int) bool { return i%3 == 1 && i >= 12 })},
		{"export dir: app and until", []string{"--app", "shop", "--until", at(7)}, true, cliWhere(n, func(i int) bool { return i%3 != 1 && i < 7 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder(t, nil)
			args := []string{"replay", "--to", rec.URL(), "--concurrency", "8"}
			if tt.fromDir {
				args = append(args, "--from", exportDir)
			} else {
				args = append(args, "--data-dir", src, "--queue", "prod", "--keep")
			}
			cliOK(t, "", append(args, tt.args...)...)
			if got, want := cliArrived(rec), cliIDs(tt.want...); !slices.Equal(got, want) {
				t.Errorf("arrived %v\nwant    %v", got, want)
			}
			// The dry run lists exactly the same entries.
			r := cliOK(t, "", append(append([]string{}, args...), append(tt.args, "--dry-run")...)...)
			if got := strings.Count(r.stdout, "would send entry"); got != len(tt.want) {
				t.Errorf("dry run lists %d entries, want %d", got, len(tt.want))
			}
		})
	}
	if got := len(cliEntries(t, src, store.QueueSource("prod"))); got != n {
		t.Errorf("--keep: %d entries left of %d", got, n)
	}

	t.Run("bad filters say what they want", func(t *testing.T) {
		for _, args := range [][]string{{"--since", "yesterday"}, {"--app", "bad name{"}, {"--since", at(5), "--until", at(1)}, {"--rate", "fast"}} {
			r := cliRun(t, "", append([]string{"replay", "--data-dir", src, "--queue", "prod", "--to", "http://127.0.0.1:1"}, args...)...)
			if r.err == nil || !strings.Contains(r.err.Error(), args[0]) {
				t.Errorf("%v: err %v, want one naming %s", args, r.err, args[0])
			}
		}
	})

	t.Run("replaying a queue drains it", func(t *testing.T) {
		rec := newRecorder(t, nil)
		r := cliOK(t, "", "replay", "--data-dir", src, "--queue", "prod", "--app", "cart", "--to", rec.URL())
		if got := len(cliArrived(rec)); got != n/3 {
			t.Errorf("%d arrived, want %d (%s)", got, n/3, r.stdout)
		}
		left := cliEntries(t, src, store.QueueSource("prod"))
		if len(left) != n-n/3 {
			t.Errorf("%d entries left in the queue, want %d", len(left), n-n/3)
		}
	})
}

func TestCLIReplayReportsRefusedEntries(t *testing.T) {
	src := t.TempDir()
	cliFill(t, src, "prod", cliDataset(t, 3, cliT0()))
	rec := newRecorder(t, nil)
	// 400 to everything: /ingest entries are refused for good at once; the
	// Push one (a 400 without a Connect body reads as internal) is retried
	// up to the poison cap, quickly with a short backoff.
	rec.mode.Store(modeBad)
	r := cliRun(t, "", "replay", "--data-dir", src, "--queue", "prod", "--to", rec.URL(), "--max-backoff", "20ms")
	if r.err == nil || !strings.Contains(r.err.Error(), "3 entries were refused") {
		t.Errorf("err %v\nstderr %s", r.err, r.stderr)
	}
	if got := len(cliEntries(t, src, store.QueueSource("prod"))); got != 3 {
		t.Errorf("refused entries left the queue: %d remain", got)
	}
}

func TestCLIDrain(t *testing.T) {
	t.Run("exits 0 once every queue is empty", func(t *testing.T) {
		dir := t.TempDir()
		entries := cliDataset(t, 6, cliT0())
		cliFill(t, dir, "a", entries)
		cliFill(t, dir, "b", entries[:2])
		ra, rb := newRecorder(t, nil), newRecorder(t, nil)
		cfg := writeConfig(t, t.TempDir(), fastDestinations(map[string]string{"a": ra.URL(), "b": rb.URL()}))
		r := cliOK(t, "", "drain", "--config", cfg, "--data-dir", dir, "--timeout", cliDeadline.String())
		if !strings.Contains(r.stdout, "a: empty; 6 delivered") || !strings.Contains(r.stdout, "b: empty; 2 delivered") {
			t.Errorf("summary:\n%s", r.stdout)
		}
		if got := cliArrived(ra); len(got) != 6 {
			t.Errorf("a got %v", got)
		}
		if got := cliArrived(rb); !slices.Equal(got, cliIDs(0, 1)) {
			t.Errorf("b got %v", got)
		}
		// Nothing queued: done at once.
		r = cliOK(t, "", "drain", "--config", cfg, "--data-dir", dir, "--timeout", "5s")
		if !strings.Contains(r.stdout, "a: empty; 0 delivered") {
			t.Errorf("second drain:\n%s", r.stdout)
		}
	})

	t.Run("fails with a summary when a destination stays down", func(t *testing.T) {
		dir := t.TempDir()
		cliFill(t, dir, "a", cliDataset(t, 4, cliT0()))
		ok := newRecorder(t, nil)
		cliFill(t, dir, "ok", cliDataset(t, 2, cliT0()))
		cfg := writeConfig(t, t.TempDir(), fastDestinations(map[string]string{"a": closedURL(t), "ok": ok.URL()}))
		r := cliRun(t, "", "drain", "--config", cfg, "--data-dir", dir, "--timeout", "1s")
		if r.err == nil || !strings.Contains(r.err.Error(), "timed out after 1s") || !strings.Contains(r.err.Error(), "1 of 2 destinations") {
			t.Fatalf("err %v", r.err)
		}
		if !strings.Contains(r.stdout, "a: 4 entries") || !strings.Contains(r.stdout, "last failure") || !strings.Contains(r.stdout, "ok: empty; 2 delivered") {
			t.Errorf("summary:\n%s", r.stdout)
		}
		if got := len(cliEntries(t, dir, store.QueueSource("a"))); got != 4 {
			t.Errorf("%d entries left queued, want all 4", got)
		}
	})

	t.Run("needs a destination", func(t *testing.T) {
		r := cliRun(t, "", "drain", "--data-dir", t.TempDir())
		if r.err == nil || !strings.Contains(r.err.Error(), "--forward-to") {
			t.Errorf("err %v", r.err)
		}
	})
}

// cliStatus decodes `queue status --json` output.
func cliStatus(t *testing.T, r cliResult) map[string]httpserver.QueueStatus {
	t.Helper()
	var st httpserver.QueuesStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status JSON: %v\n%s", err, r.stdout)
	}
	out := map[string]httpserver.QueueStatus{}
	for _, q := range st.Queues {
		out[q.Name] = q
	}
	return out
}

func TestCLIQueueStatusRunningAndStopped(t *testing.T) {
	dir := t.TempDir()
	cliFill(t, dir, "old", cliDataset(t, 2, cliT0())) // a renamed destination's leftovers
	p := startRelay(t, dir, "--forward-to", "down="+closedURL(t))
	for i := range 3 {
		mustPostFolded(t, p.URL, fmt.Sprintf("s%d", i))
	}

	st := cliStatus(t, cliOK(t, "", "queue", "status", "--url", p.URL, "--json"))
	if q := st["down"]; q.Entries != 3 || q.Configured == nil || !*q.Configured || q.Oldest == nil {
		t.Errorf("down through the admin API: %+v", q)
	}
	if q := st["old"]; q.Entries != 2 || !q.Orphan() {
		t.Errorf("old through the admin API: %+v", q)
	}
	text := cliOK(t, "", "queue", "status", "--url", p.URL).stdout
	if !strings.Contains(text, "ORPHAN") || !strings.Contains(text, "queue move --from old") {
		t.Errorf("text status does not point at the orphan:\n%s", text)
	}
	if got := metric(scrape(t, p.URL), `pyrorelay_orphan_queue_entries{destination="old"}`); got != 2 {
		t.Errorf("pyrorelay_orphan_queue_entries{destination=\"old\"} = %v, want 2", got)
	}

	r := cliRun(t, "", "queue", "status", "--data-dir", dir)
	if !errors.Is(r.err, store.ErrLocked) || !strings.Contains(r.err.Error(), "--url") {
		t.Errorf("status of a locked data dir: %v; want ErrLocked and a hint to use --url", r.err)
	}

	p.stop()
	st = cliStatus(t, cliOK(t, "", "queue", "status", "--data-dir", dir, "--json"))
	if q := st["down"]; q.Entries != 3 || q.Configured != nil {
		t.Errorf("down from the stopped data dir: %+v", q)
	}
	if q := st["old"]; q.Entries != 2 {
		t.Errorf("old from the stopped data dir: %+v", q)
	}
	cfg := writeConfig(t, t.TempDir(), "destinations:\n  - name: down\n    url: http://127.0.0.1:1\n")
	st = cliStatus(t, cliOK(t, "", "queue", "status", "--data-dir", dir, "--config", cfg, "--json"))
	if q := st["old"]; !q.Orphan() {
		t.Errorf("with --config, old is not an orphan: %+v", q)
	}

	if r := cliRun(t, "", "queue", "status", "--data-dir", filepath.Join(dir, "nope")); r.err == nil || !strings.Contains(r.err.Error(), "--data-dir") {
		t.Errorf("status of a missing data dir: %v", r.err)
	}
	if r := cliRun(t, "", "queue", "status", "--url", closedURL(t)); r.err == nil || !strings.Contains(r.err.Error(), "--listen") {
		t.Errorf("status of a relay that is not there: %v", r.err)
	}
}

func TestCLIQueueMove(t *testing.T) {
	dir := t.TempDir()
	cliFill(t, dir, "old", cliDataset(t, 5, cliT0()))
	cliDeadLetter(t, dir, "old", "e01")
	r := cliOK(t, "", "queue", "move", "--data-dir", dir, "--from", "old", "--to", "new")
	if !strings.Contains(r.stdout, "moved 4 entries and 1 dead letters") {
		t.Errorf("stdout %q", r.stdout)
	}
	if got := len(cliEntries(t, dir, store.QueueSource("new"))); got != 4 {
		t.Errorf("new holds %d entries", got)
	}
	st := cliStatus(t, cliOK(t, "", "queue", "status", "--data-dir", dir, "--json"))
	if _, ok := st["old"]; ok {
		t.Errorf("old still listed: %+v", st)
	}
	if q := st["new"]; q.Entries != 4 || q.DeadLetters != 1 {
		t.Errorf("new: %+v", q)
	}
	r = cliRun(t, "", "queue", "move", "--data-dir", dir, "--from", "old", "--to", "new")
	if r.err == nil || !strings.Contains(r.err.Error(), `no queue "old"`) || !strings.Contains(r.err.Error(), "new") {
		t.Errorf("moving a missing queue: %v", r.err)
	}
	if r := cliRun(t, "", "queue", "move", "--data-dir", filepath.Join(dir, "typo"), "--from", "a", "--to", "b"); r.err == nil || !errors.Is(r.err, store.ErrNotFound) {
		t.Errorf("move in a missing data dir: %v", r.err)
	}
	if _, err := os.Stat(filepath.Join(dir, "typo")); !os.IsNotExist(err) {
		t.Error("a mistyped --data-dir was created")
	}
}

func TestCLIDeadLetterRequeueAndPurge(t *testing.T) {
	dir := t.TempDir()
	cliFill(t, dir, "a", cliDataset(t, 6, cliT0()))
	cliDeadLetter(t, dir, "a", "e01", "e02", "e03") // cart, shop push, shop folded

	r := cliOK(t, "", "dead-letter", "list", "--data-dir", dir, "--destination", "a")
	if !strings.Contains(r.stdout, "3 dead letters") || strings.Count(r.stdout, "400 bad tenant") != 3 {
		t.Errorf("list:\n%s", r.stdout)
	}
	r = cliOK(t, "", "dead-letter", "requeue", "--data-dir", dir, "--destination", "a", "--app", "shop")
	if !strings.Contains(r.stdout, "requeued 2 dead letters") {
		t.Errorf("requeue: %s", r.stdout)
	}
	// The requeued ones are delivered by the next run of the forwarders.
	rec := newRecorder(t, nil)
	cliOK(t, "", "drain", "--data-dir", dir, "--forward-to", "a="+rec.URL(), "--timeout", cliDeadline.String())
	if got := cliArrived(rec); !slices.Equal(got, cliIDs(0, 2, 3, 4, 5)) {
		t.Errorf("delivered %v, want everything but the cart dead letter", got)
	}

	for _, tt := range []struct{ stdin, wantErr string }{{"no\n", "not confirmed"}, {"", "--yes"}} {
		r := cliRun(t, tt.stdin, "dead-letter", "purge", "--data-dir", dir, "--destination", "a")
		if r.err == nil || !strings.Contains(r.err.Error(), tt.wantErr) || !strings.Contains(r.stderr, "Delete 1 dead letters") {
			t.Errorf("purge answered %q: err %v, stderr %q", tt.stdin, r.err, r.stderr)
		}
	}
	if got := len(cliEntries(t, dir, store.DeadLetterSource("a"))); got != 1 {
		t.Fatalf("%d dead letters after refused purges, want 1", got)
	}
	r = cliOK(t, "yes\n", "dead-letter", "purge", "--data-dir", dir, "--destination", "a")
	if !strings.Contains(r.stdout, "purged 1 dead letters") {
		t.Errorf("purge: %s", r.stdout)
	}
	r = cliOK(t, "", "dead-letter", "purge", "--data-dir", dir, "--destination", "a", "--yes")
	if !strings.Contains(r.stdout, "no dead letters") {
		t.Errorf("purge of nothing: %s", r.stdout)
	}
	if r := cliRun(t, "", "dead-letter", "list", "--data-dir", dir, "--destination", "zz"); r.err == nil || !strings.Contains(r.err.Error(), `"zz"`) {
		t.Errorf("unknown destination: %v", r.err)
	}
}

func TestCLIArchiveRetentionAndReplay(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	// Three entries older than the 1h retention, two younger.
	old := cliDataset(t, 3, now.Add(-3*time.Hour))
	young := cliDataset(t, 5, now.Add(-10*time.Minute))[3:]
	cliFill(t, dir, "a", append(old, young...))

	rec := newRecorder(t, nil)
	args := []string{"--forward-to", "a=" + rec.URL(), "--archive-retention", "1h"}
	p := startRelay(t, dir, args...)
	waitFor(t, cliDeadline, "all five delivered", func() (bool, string) {
		got := cliArrived(rec)
		return len(got) == 5, fmt.Sprint(got)
	})
	waitFor(t, cliDeadline, "the queue empty", func() (bool, string) {
		st := cliStatus(t, cliOK(t, "", "queue", "status", "--url", p.URL, "--json"))
		return st["a"].Entries == 0, fmt.Sprint(st["a"])
	})
	p.stop()
	// The sweep runs when serve starts: the old entries go, the young stay.
	p = startRelay(t, dir, args...)
	var arch httpserver.ArchiveStatus
	waitFor(t, cliDeadline, "the sweep", func() (bool, string) {
		var st httpserver.QueuesStatus
		if err := json.Unmarshal([]byte(cliOK(t, "", "queue", "status", "--url", p.URL, "--json").stdout), &st); err != nil {
			return false, err.Error()
		}
		arch = st.Archive
		return arch.Entries == 2, fmt.Sprintf("%+v", arch)
	})
	if arch.RetentionSeconds != 3600 || arch.Oldest == nil || arch.Oldest.Before(now.Add(-time.Hour)) {
		t.Errorf("archive %+v", arch)
	}
	p.stop()

	again := newRecorder(t, nil)
	cliOK(t, "", "replay", "--data-dir", dir, "--archive", "--to", again.URL())
	if got := cliArrived(again); !slices.Equal(got, cliIDs(3, 4)) {
		t.Errorf("replayed from the archive %v, want the two young entries", got)
	}
	// The archive is stored once and not changed by a replay.
	if got := len(cliEntries(t, dir, store.ArchiveSource())); got != 2 {
		t.Errorf("archive holds %d after the replay", got)
	}
}

func TestCLICompact(t *testing.T) {
	dir := t.TempDir()
	big := cliDataset(t, 60, cliT0())
	for _, e := range big {
		e.Body = append(bytes.Repeat([]byte("#"), 32<<10), e.Body...)
	}
	cliFill(t, dir, "a", big)
	rec := newRecorder(t, nil)
	cliOK(t, "", "drain", "--data-dir", dir, "--forward-to", "a="+rec.URL(), "--timeout", cliDeadline.String())

	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := cliRun(t, "", "compact", "--data-dir", dir)
	_ = st.Close()
	if !errors.Is(r.err, store.ErrLocked) || !strings.Contains(r.err.Error(), "stop the relay") {
		t.Errorf("compact of a store in use: %v", r.err)
	}
	r = cliOK(t, "", "compact", "--data-dir", dir)
	if !strings.Contains(r.stdout, "before") || !strings.Contains(r.stdout, "freed") {
		t.Errorf("stdout %q", r.stdout)
	}
	fi, err := os.Stat(filepath.Join(dir, store.FileName))
	if err != nil || fi.Size() > 1<<20 {
		t.Errorf("compacted file is %d bytes (%v)", fi.Size(), err)
	}
}

// Every operator command explains itself with an example.
func TestCLIHelpHasExamples(t *testing.T) {
	mine := []string{"queue", "drain", "export", "import", "replay", "dead-letter", "compact"}
	for _, c := range newApp().Commands {
		if !slices.Contains(mine, c.Name) {
			continue
		}
		leaves := [][]string{{c.Name}}
		if len(c.Subcommands) > 0 {
			for _, sub := range c.Subcommands {
				leaves = append(leaves, []string{c.Name, sub.Name})
			}
		}
		for _, leaf := range leaves {
			r := cliOK(t, "", append(leaf, "--help")...)
			if !strings.Contains(r.stdout, "Example") {
				t.Errorf("pyrorelay %s --help has no example:\n%s", strings.Join(leaf, " "), r.stdout)
			}
		}
	}
}
