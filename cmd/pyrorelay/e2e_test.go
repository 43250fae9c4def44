package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/grafana/pyroscope/api/gen/proto/go/push/v1/pushv1connect"
	typesv1 "github.com/grafana/pyroscope/api/gen/proto/go/types/v1"
)

// checkMultipartForwarded waits until a and b each accepted one /ingest
// request, then checks that both got the same request and that its
// multipart body carries profile in the part pyroscope-go uses.
func checkMultipartForwarded(t *testing.T, a, b *recorder, profile []byte) (recorded, recorded) {
	t.Helper()
	for _, d := range []*recorder{a, b} {
		waitFor(t, deliverDeadline, "the profile at "+d.URL(), func() (bool, string) {
			n := len(d.accepted())
			return n >= 1, fmt.Sprintf("%d accepted", n)
		})
	}
	ra, rb := a.accepted(), b.accepted()
	if len(ra) != 1 || len(rb) != 1 {
		t.Fatalf("want exactly one request at each destination, got %d and %d", len(ra), len(rb))
	}
	qa, qb := ra[0], rb[0]
	if qa.Method != http.MethodPost || qa.Path != "/ingest" {
		t.Errorf("destination a got %s %s, want POST /ingest", qa.Method, qa.Path)
	}
	if qa.RawQuery != qb.RawQuery {
		t.Errorf("raw query differs:\na: %s\nb: %s", qa.RawQuery, qb.RawQuery)
	}
	if ca, cb := qa.Header.Get("Content-Type"), qb.Header.Get("Content-Type"); ca != cb {
		t.Errorf("Content-Type differs:\na: %s\nb: %s", ca, cb)
	}
	if !bytes.Equal(qa.Body, qb.Body) {
		t.Errorf("bodies differ: %d and %d bytes", len(qa.Body), len(qb.Body))
	}
	mt, params, err := mime.ParseMediaType(qa.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		t.Fatalf("forwarded Content-Type %q: want multipart/form-data with a boundary (err %v)", qa.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(bytes.NewReader(qa.Body), params["boundary"])
	parts := map[string][]byte{}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("forwarded multipart body does not parse: %v", err)
		}
		data, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("read part %q: %v", p.FormName(), err)
		}
		parts[p.FormName()] = data
	}
	if !bytes.Equal(parts["profile"], profile) {
		t.Errorf("part profile: %d bytes, want the %d uploaded bytes unchanged", len(parts["profile"]), len(profile))
	}
	return qa, qb
}

// TestIngestMultipartLikePyroscopeGo sends the request pyroscope-go's
// upstream/remote builds (multipart part "profile" named profile.pprof,
// sample_type_config, from/until in ns, no format) through a relay with
// two destinations, and checks both get it byte for byte, which the test
// with the real client (TestPyroscopeGoClientThroughRelay) cannot see.
func TestIngestMultipartLikePyroscopeGo(t *testing.T) {
	a, b := newRecorder(t, nil), newRecorder(t, nil)
	relay := startRelay(t, t.TempDir(), "--forward-to", "a="+a.URL(), "--forward-to", "b="+b.URL())

	profile := readTestdata(t, "cpu.pb.gz")
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	fw, err := w.CreateFormFile("profile", "profile.pprof")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fw.Write(profile)
	fw, err = w.CreateFormFile("sample_type_config", "sample_type_config.json")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fw.Write(readTestdata(t, "sample_type_config.json"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	q := url.Values{}
	q.Set("name", "myapp.cpu{env=test}")
	q.Set("from", strconv.FormatInt(now.Add(-10*time.Second).UnixNano(), 10))
	q.Set("until", strconv.FormatInt(now.UnixNano(), 10))
	q.Set("spyName", "gospy")
	q.Set("sampleRate", "100")
	q.Set("units", "samples")
	q.Set("aggregationType", "sum")
	sent := body.Bytes()
	status, err := post(context.Background(), relay.URL+"/ingest?"+q.Encode(), w.FormDataContentType(), sent)
	if err != nil || status != http.StatusOK {
		t.Fatalf("POST /ingest: status %d, err %v", status, err)
	}

	qa, _ := checkMultipartForwarded(t, a, b, profile)
	if qa.RawQuery != q.Encode() {
		t.Errorf("raw query changed:\nsent %s\ngot  %s", q.Encode(), qa.RawQuery)
	}
	if got := qa.Header.Get("Content-Type"); got != w.FormDataContentType() {
		t.Errorf("Content-Type changed:\nsent %s\ngot  %s", w.FormDataContentType(), got)
	}
	if !bytes.Equal(qa.Body, sent) {
		t.Errorf("body changed: sent %d bytes, got %d", len(sent), len(qa.Body))
	}
	relay.stop()
}

// TestDestinationDownThenUp: a destination that answers 503 for a while
// gets everything once it is back, each profile exactly once, and the
// healthy destination is not held back meanwhile.
func TestDestinationDownThenUp(t *testing.T) {
	const posts, failures = 20, 5
	a := newRecorder(t, func(_ []byte, n int) int {
		if n <= failures {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	b := newRecorder(t, nil)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fastDestinations(map[string]string{"a": a.URL(), "b": b.URL()}))
	relay := startRelay(t, dir, "--config", cfg)

	want := map[string]bool{}
	for i := range posts {
		id := fmt.Sprintf("p%02d", i)
		want[id] = true
		mustPostFolded(t, relay.URL, id)
	}
	for name, d := range map[string]*recorder{"a": a, "b": b} {
		waitFor(t, deliverDeadline, "every profile at "+name, func() (bool, string) {
			n, some := missing(want, d.ingestIDs())
			return n == 0, fmt.Sprintf("%d missing, e.g. %v", n, some)
		})
	}
	for name, d := range map[string]*recorder{"a": a, "b": b} {
		bodies := map[string]int{}
		for _, q := range d.accepted() {
			bodies[string(q.Body)]++
		}
		for id := range want {
			if n := bodies[string(foldedBody(id))]; n != 1 {
				t.Errorf("destination %s accepted profile %s %d times, want 1", name, id, n)
			}
		}
	}
	if n := len(a.requests()); n != posts+failures {
		t.Errorf("destination a got %d requests, want %d (%d profiles + %d answered 503)", n, posts+failures, posts, failures)
	}
	if n := len(b.requests()); n != posts {
		t.Errorf("destination b got %d requests, want %d", n, posts)
	}
	waitMetric(t, relay.URL, `pyrorelay_queue_entries{destination="a"}`, 0)
	relay.stop()
}

// TestPermanentErrorDeadLetters: a 400 from the destination moves that
// profile to dead-letter after one attempt, and the rest still flows.
func TestPermanentErrorDeadLetters(t *testing.T) {
	a := newRecorder(t, func(body []byte, _ int) int {
		if bytes.Contains(body, []byte("bad")) {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fastDestinations(map[string]string{"a": a.URL()}))
	relay := startRelay(t, dir, "--config", cfg)

	mustPostFolded(t, relay.URL, "bad1")
	want := map[string]bool{}
	for i := range 5 {
		id := fmt.Sprintf("good%d", i)
		want[id] = true
		mustPostFolded(t, relay.URL, id)
	}
	waitFor(t, deliverDeadline, "the good profiles at a", func() (bool, string) {
		n, some := missing(want, a.ingestIDs())
		return n == 0, fmt.Sprintf("%d missing, e.g. %v", n, some)
	})
	waitMetric(t, relay.URL, `pyrorelay_dead_lettered_total{destination="a",reason="permanent"}`, 1)
	waitMetric(t, relay.URL, `pyrorelay_dead_letter_entries{destination="a"}`, 1)
	waitMetric(t, relay.URL, `pyrorelay_queue_entries{destination="a"}`, 0)
	bad := 0
	for _, q := range a.requests() {
		if bytes.Contains(q.Body, []byte("bad")) {
			bad++
		}
	}
	if bad != 1 {
		t.Errorf("the bad profile was sent %d times, want 1: a 400 is not retried", bad)
	}
	if !strings.Contains(relay.Stderr.String(), "entry moved to dead-letter") {
		t.Errorf("no dead-letter warning in the log")
	}
	relay.stop()
}

// TestGracefulShutdown: SIGTERM while the only destination is down exits
// cleanly and keeps the queue; a restart with the destination back (same
// name, new URL) delivers everything acknowledged before.
func TestGracefulShutdown(t *testing.T) {
	cases := []struct {
		name string
		down func(t *testing.T) (url string, reached func() bool)
	}{
		{"refused", func(t *testing.T) (string, func() bool) {
			return closedURL(t), func() bool { return true }
		}},
		{"503", func(t *testing.T) (string, func() bool) {
			r := newRecorder(t, nil)
			r.mode.Store(modeDown)
			return r.URL(), func() bool { return r.received() > 0 }
		}},
		{"hang", func(t *testing.T) (string, func() bool) {
			r := newRecorder(t, nil)
			r.mode.Store(modeHang)
			return r.URL(), func() bool { return r.received() > 0 }
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // the hang case waits out a timeout
			const posts = 10
			dir := t.TempDir()
			downURL, reached := tc.down(t)
			// timeout bounds how long shutdown waits for an attempt in
			// flight to a hanging destination.
			cfg := writeConfig(t, dir, fmt.Sprintf(`destinations:
  - name: a
    url: %s
    timeout: 2s
    min_backoff: 10ms
    max_backoff: 50ms
`, downURL))
			relay := startRelay(t, dir, "--config", cfg)
			want := map[string]bool{}
			for i := range posts {
				id := fmt.Sprintf("g%d", i)
				want[id] = true
				mustPostFolded(t, relay.URL, id)
			}
			waitFor(t, deliverDeadline, "a forward attempt to the down destination", func() (bool, string) {
				return reached(), "none yet"
			})
			waitMetric(t, relay.URL, `pyrorelay_queue_entries{destination="a"}`, posts)
			if code := relay.terminate(); code != 0 {
				t.Fatalf("exit code %d after SIGTERM, want 0", code)
			}
			if !strings.Contains(relay.Stderr.String(), `"msg":"stopped"`) {
				t.Errorf("no \"stopped\" log line: the shutdown did not finish in order")
			}

			up := newRecorder(t, nil)
			cfg = writeConfig(t, dir, fastDestinations(map[string]string{"a": up.URL()}))
			relay = startRelay(t, dir, "--config", cfg)
			waitFor(t, deliverDeadline, "every acknowledged profile after the restart", func() (bool, string) {
				n, some := missing(want, up.ingestIDs())
				return n == 0, fmt.Sprintf("%d missing, e.g. %v", n, some)
			})
			waitMetric(t, relay.URL, `pyrorelay_queue_entries{destination="a"}`, 0)
			relay.stop()
		})
	}
}

// TestStoreOnly: with no destination the relay keeps every profile in the
// hold queue, and says so; with --keep-held a later destination does not
// drain it (TestHeldEntriesReleasedAtStart covers the default).
func TestStoreOnly(t *testing.T) {
	const posts = 7
	dir := t.TempDir()
	relay := startRelay(t, dir)
	if !hasLogLine(relay.Stderr.String(), "WARN", "store-only") {
		t.Errorf("no store-only warning before serving:\n%s", relay.Stderr.String())
	}
	for i := range posts {
		mustPostFolded(t, relay.URL, fmt.Sprintf("h%d", i))
	}
	waitMetric(t, relay.URL, `pyrorelay_queue_entries{destination="_hold"}`, posts)
	relay.stop()

	a := newRecorder(t, nil)
	relay = startRelay(t, dir, "--forward-to", "a="+a.URL(), "--keep-held")
	if !hasLogLine(relay.Stderr.String(), "WARN", "queue has no configured destination", `"queue":"_hold"`) {
		t.Errorf("no warning about the orphaned hold queue after the restart:\n%s", relay.Stderr.String())
	}
	if got := metric(scrape(t, relay.URL), `pyrorelay_queue_entries{destination="_hold"}`); got != posts {
		t.Errorf("hold queue has %g entries after the restart, want %d", got, posts)
	}
	// A profile posted now reaches a; had the held ones been put in a's
	// queue, they would have come first.
	mustPostFolded(t, relay.URL, "after")
	waitFor(t, deliverDeadline, "the new profile at a", func() (bool, string) {
		return a.ingestIDs()["after"] == 1, "not yet"
	})
	if n := len(a.requests()); n != 1 {
		t.Errorf("destination a got %d requests, want only the new one", n)
	}
	relay.stop()
}

// TestBadInputNotStored: requests the relay refuses get the right status
// and leave nothing in any queue.
func TestBadInputNotStored(t *testing.T) {
	a, b := newRecorder(t, nil), newRecorder(t, nil)
	relay := startRelay(t, t.TempDir(), "--max-body-size", "1KiB",
		"--forward-to", "a="+a.URL(), "--forward-to", "b="+b.URL())
	good := ingestURL(relay.URL, "x")
	big := bytes.Repeat([]byte("main;work 1\n"), 200) // 2.4 KB
	cases := []struct {
		name, method, url, contentType string
		body                           io.Reader
		want                           int
	}{
		{"GET", http.MethodGet, good, "", nil, http.StatusMethodNotAllowed},
		{"no name", http.MethodPost, relay.URL + "/ingest?from=1", "", strings.NewReader("a;b 1\n"), http.StatusBadRequest},
		{"bad name", http.MethodPost, relay.URL + "/ingest?name=" + url.QueryEscape("app.cpu{bad-label=x}"), "", strings.NewReader("a;b 1\n"), http.StatusBadRequest},
		{"unknown format", http.MethodPost, good + "&format=pprofx", "", strings.NewReader("a;b 1\n"), http.StatusBadRequest},
		{"unknown profile type", http.MethodPost, relay.URL + "/ingest?name=app.nosuchtype", "", strings.NewReader("a;b 1\n"), http.StatusBadRequest},
		{"multipart without boundary", http.MethodPost, good, "multipart/form-data", strings.NewReader("x"), http.StatusBadRequest},
		{"empty body", http.MethodPost, good, "", http.NoBody, http.StatusBadRequest},
		{"too large", http.MethodPost, good, "", bytes.NewReader(big), http.StatusRequestEntityTooLarge},
		// No Content-Length: the limit must hold while reading.
		{"too large chunked", http.MethodPost, good, "", io.MultiReader(bytes.NewReader(big)), http.StatusRequestEntityTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, tc.url, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tc.want, msg)
			}
		})
	}

	push := pushv1connect.NewPusherServiceClient(httpClient, relay.URL)
	pushCases := []struct {
		name string
		req  *pushv1.PushRequest
		want connect.Code
	}{
		{"push without series", &pushv1.PushRequest{}, connect.CodeInvalidArgument},
		{"push without labels", &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{
			Samples: []*pushv1.RawSample{{RawProfile: []byte("x")}},
		}}}, connect.CodeInvalidArgument},
		// Invalid, not resource_exhausted: SDKs retry the latter, and a
		// body over the limit never fits.
		{"push over the body limit", pushRequest("big", big), connect.CodeInvalidArgument},
	}
	for _, tc := range pushCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := push.Push(context.Background(), connect.NewRequest(tc.req))
			if got := connect.CodeOf(err); got != tc.want {
				t.Errorf("code %v, want %v (err %v)", got, tc.want, err)
			}
		})
	}

	m := scrape(t, relay.URL)
	for _, q := range []string{"a", "b", "_hold"} {
		if n := metric(m, `pyrorelay_queue_entries{destination="`+q+`"}`); n != 0 {
			t.Errorf("queue %s has %g entries after refused requests, want 0", q, n)
		}
	}
	// Queues are FIFO: if anything refused had been queued, it would reach
	// the destinations before this one.
	mustPostFolded(t, relay.URL, "ok")
	for _, d := range []*recorder{a, b} {
		waitFor(t, deliverDeadline, "the good profile at "+d.URL(), func() (bool, string) {
			return len(d.accepted()) >= 1, "not yet"
		})
		if n := len(d.requests()); n != 1 {
			t.Errorf("destination %s got %d requests, want only the good one", d.URL(), n)
		}
	}
	relay.stop()
}

// pushRequest is a Push with one series labelled req_id=id.
func pushRequest(id string, profile []byte) *pushv1.PushRequest {
	return &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{
		Labels: []*typesv1.LabelPair{
			{Name: "__name__", Value: "process_cpu"},
			{Name: "service_name", Value: "e2e"},
			{Name: "req_id", Value: id},
		},
		Samples: []*pushv1.RawSample{{RawProfile: profile, ID: id}},
	}}}
}

// TestMixedIngestAndPushLoad: concurrent /ingest and Push clients; every
// acknowledged request reaches both destinations, Push ones through the
// destination's Push API with the profile unchanged.
func TestMixedIngestAndPushLoad(t *testing.T) {
	const clients, perClient = 8, 25
	a, b := newRecorder(t, nil), newRecorder(t, nil)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fastDestinations(map[string]string{"a": a.URL(), "b": b.URL()}))
	relay := startRelay(t, dir, "--config", cfg)
	profile := readTestdata(t, "cpu.pb.gz")
	push := pushv1connect.NewPusherServiceClient(httpClient, relay.URL)

	var mu sync.Mutex
	ingestAcked, pushAcked := map[string]bool{}, map[string]bool{}
	var failures []string
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range perClient {
				id := fmt.Sprintf("c%d-%d", c, i)
				err := sendMixed(relay.URL, push, profile, c, id)
				mu.Lock()
				switch {
				case err != nil:
					failures = append(failures, id+": "+err.Error())
				case c%2 == 0:
					ingestAcked[id] = true
				default:
					pushAcked[id] = true
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d requests failed, e.g. %v", len(failures), failures[:min(5, len(failures))])
	}
	for name, d := range map[string]*recorder{"a": a, "b": b} {
		waitFor(t, deliverDeadline, "every acknowledged request at "+name, func() (bool, string) {
			ni, some := missing(ingestAcked, d.ingestIDs())
			np, somep := missing(pushAcked, d.pushIDs())
			return ni+np == 0, fmt.Sprintf("%d ingest missing (e.g. %v), %d push missing (e.g. %v)", ni, some, np, somep)
		})
		for _, p := range d.acceptedPushes() {
			for _, s := range p.GetSeries() {
				for _, smp := range s.GetSamples() {
					if !bytes.Equal(smp.GetRawProfile(), profile) {
						t.Fatalf("destination %s: pushed raw_profile changed: %d bytes, want %d", name, len(smp.GetRawProfile()), len(profile))
					}
				}
			}
		}
	}
	t.Logf("acknowledged %d ingest + %d push requests; each destination got them all", len(ingestAcked), len(pushAcked))
	relay.stop()
}
