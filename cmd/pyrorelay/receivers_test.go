package main

// Several receivers, routes and config reloads, end to end: the real binary
// (harness_test.go) with recording destinations.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/grafana/pyroscope/api/gen/proto/go/push/v1/pushv1connect"
	typesv1 "github.com/grafana/pyroscope/api/gen/proto/go/types/v1"

	"github.com/pyrorelay/pyrorelay/httpserver"
)

// startWithConfig runs `serve --config` on yaml (which declares its own
// receivers, so no --listen) and waits for the first "serving" line.
func startWithConfig(t *testing.T, yaml string) (*relayProc, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := writeConfig(t, dir, yaml)
	p := startRelayOpts(t, relayOpts{}, "serve", "--data-dir", dir+"/data", "--log-format", "json", "--config", cfg)
	return p, cfg
}

// servingLines returns, per receiver, the addresses of its "serving" log
// lines in order (a restarted receiver logs one more).
func servingLines(p *relayProc) map[string][]string {
	out := map[string][]string{}
	for _, line := range strings.Split(p.Stderr.String(), "\n") {
		var rec struct {
			Msg      string `json:"msg"`
			Receiver string `json:"receiver"`
			Addr     string `json:"addr"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving" && rec.Receiver != "" {
			out[rec.Receiver] = append(out[rec.Receiver], rec.Addr)
		}
	}
	return out
}

// receiverURL waits for receiver's "serving" line and returns its URL.
func receiverURL(t *testing.T, p *relayProc, receiver string) string {
	t.Helper()
	var addr string
	waitFor(t, startDeadline, "receiver "+receiver+" serving", func() (bool, string) {
		a := servingLines(p)[receiver]
		if len(a) == 0 {
			return false, "no serving line yet"
		}
		addr = a[len(a)-1]
		return true, ""
	})
	return "http://" + addr
}

// routedIngestURL is an /ingest URL for a folded profile named name that
// carries id in its query.
func routedIngestURL(base, name, id string) string {
	q := url.Values{}
	q.Set("name", name)
	q.Set("from", strconv.FormatInt(time.Now().Add(-10*time.Second).Unix(), 10))
	q.Set("until", strconv.FormatInt(time.Now().Unix(), 10))
	q.Set("req_id", id)
	return base + "/ingest?" + q.Encode()
}

// mustIngest posts a folded profile named name, with tenant (if not
// empty) as X-Scope-OrgID, and fails the test unless the relay answers 200.
func mustIngest(t *testing.T, base, name, id, tenant string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, routedIngestURL(base, name, id), strings.NewReader(string(foldedBody(id))))
	if err != nil {
		t.Fatal(err)
	}
	if tenant != "" {
		req.Header.Set("X-Scope-OrgID", tenant)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("POST /ingest %s: %v", id, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /ingest %s: status %d", id, resp.StatusCode)
	}
}

// waitDrained waits until every named destination's queue is empty: after
// that, what each recorder holds is all it will ever get.
func waitDrained(t *testing.T, base string, dests ...string) {
	t.Helper()
	for _, d := range dests {
		waitMetric(t, base, `pyrorelay_queue_entries{destination="`+d+`"}`, 0)
	}
}

// idSet is the keys of m, sorted.
func idSet(m map[string]int) []string { return slices.Sorted(maps.Keys(m)) }

// checkExactly fails unless rec received exactly the ids in want, each
// once.
func checkExactly(t *testing.T, name string, got map[string]int, want []string) {
	t.Helper()
	slices.Sort(want)
	if !slices.Equal(idSet(got), want) {
		t.Errorf("destination %s received %v, want exactly %v", name, idSet(got), want)
	}
	for id, n := range got {
		if n != 1 {
			t.Errorf("destination %s received %s %d times", name, id, n)
		}
	}
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// TestTwoReceivers: two listeners with different destination sets; each
// request reaches exactly the destinations of the receiver it came to, the
// request metrics carry the receiver, and the admin API says which
// receivers feed each destination.
func TestTwoReceivers(t *testing.T) {
	prod, staging := newRecorder(t, nil), newRecorder(t, nil)
	p, cfgPath := startWithConfig(t, fastDestinations(map[string]string{"prod": prod.URL(), "staging": staging.URL()})+`
receivers:
  - name: public
    listen: 127.0.0.1:0
    forward_to: [prod, staging]
  - name: local
    listen: 127.0.0.1:0
    max_body_size: 1KiB
    forward_to: [staging]
`)
	public, local := receiverURL(t, p, "public"), receiverURL(t, p, "local")
	if public == local {
		t.Fatalf("both receivers on %s", public)
	}
	const n = 5
	for _, id := range ids("pub", n) {
		mustPostFolded(t, public, id)
	}
	for _, id := range ids("loc", n) {
		mustPostFolded(t, local, id)
	}
	// The local receiver's own limit: the public one takes the same body.
	big := make([]byte, 2048)
	for i := range big {
		big[i] = 'a'
	}
	body := append(append([]byte("main;"), big...), " 1\n"...)
	if status, err := post(context.Background(), ingestURL(local, "big"), "", body); err != nil || status != http.StatusRequestEntityTooLarge {
		t.Errorf("2 KiB to local (max 1KiB): status %d, err %v; want 413", status, err)
	}
	if status, err := post(context.Background(), ingestURL(public, "big"), "", body); err != nil || status != http.StatusOK {
		t.Errorf("2 KiB to public: status %d, err %v; want 200", status, err)
	}

	waitFor(t, deliverDeadline, "every request at its destinations", func() (bool, string) {
		return len(prod.ingestIDs()) == n+1 && len(staging.ingestIDs()) == 2*n+1,
			fmt.Sprintf("prod %d of %d, staging %d of %d", len(prod.ingestIDs()), n+1, len(staging.ingestIDs()), 2*n+1)
	})
	waitDrained(t, public, "prod", "staging")
	checkExactly(t, "prod", prod.ingestIDs(), append(ids("pub", n), "big"))
	checkExactly(t, "staging", staging.ingestIDs(), append(append(ids("pub", n), ids("loc", n)...), "big"))

	m := scrape(t, local) // every receiver serves the relay's metrics
	for _, c := range []struct {
		sample string
		want   float64
	}{
		{`pyrorelay_requests_received_total{code="200",endpoint="ingest",receiver="public"}`, n + 1},
		{`pyrorelay_requests_received_total{code="200",endpoint="ingest",receiver="local"}`, n},
		{`pyrorelay_requests_received_total{code="413",endpoint="ingest",receiver="local"}`, 1},
		{`pyrorelay_http_connections_limit{receiver="local"}`, 100},
	} {
		if got := metric(m, c.sample); got != c.want {
			t.Errorf("%s = %v, want %v", c.sample, got, c.want)
		}
	}

	// Either receiver answers for the whole relay.
	resp, err := httpClient.Get(local + httpserver.StatusPath)
	if err != nil {
		t.Fatal(err)
	}
	var st httpserver.QueuesStatus
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	fed := map[string][]string{}
	for _, q := range st.Queues {
		if q.Configured == nil || !*q.Configured {
			t.Errorf("queue %s not configured: %+v", q.Name, q)
		}
		fed[q.Name] = q.Receivers
	}
	want := map[string][]string{"prod": {"public"}, "staging": {"local", "public"}}
	if !maps.EqualFunc(fed, want, slices.Equal) {
		t.Errorf("receivers per destination %v, want %v", fed, want)
	}
	if code, out := runToExit(t, nil, "queue", "status", "--url", public); code != 0 || !strings.Contains(out, "RECEIVERS") || !strings.Contains(out, "local,public") {
		t.Errorf("queue status --url (exit %d) does not list the receivers:\n%s", code, out)
	}
	p.stop()

	// A stopped relay's data dir, with its config, tells the same.
	code, out := runToExit(t, nil, "queue", "status", "--data-dir", filepath.Join(filepath.Dir(cfgPath), "data"), "--config", cfgPath, "--json")
	if code != 0 {
		t.Fatalf("queue status --config: exit %d\n%s", code, out)
	}
	st = httpserver.QueuesStatus{}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("queue status --json: %v\n%s", err, out)
	}
	fed = map[string][]string{}
	for _, q := range st.Queues {
		fed[q.Name] = q.Receivers
	}
	if !maps.EqualFunc(fed, want, slices.Equal) {
		t.Errorf("queue status --config: receivers per destination %v, want %v", fed, want)
	}
}

// routedSeries is a Push series of service svc in env, carrying id as
// req_id.
func routedSeries(svc, env, id string, profile []byte) *pushv1.RawProfileSeries {
	return &pushv1.RawProfileSeries{
		Labels: []*typesv1.LabelPair{
			{Name: "__name__", Value: "process_cpu"},
			{Name: "service_name", Value: svc},
			{Name: "env", Value: env},
			{Name: "req_id", Value: id},
		},
		Samples: []*pushv1.RawSample{{RawProfile: profile, ID: id}},
	}
}

// TestRouteTable: label and tenant rules send /ingest requests and Push
// series to the right destinations; a Push whose series match two routes
// reaches each destination with exactly its series.
func TestRouteTable(t *testing.T) {
	prod, staging, other := newRecorder(t, nil), newRecorder(t, nil), newRecorder(t, nil)
	p, _ := startWithConfig(t, fastDestinations(map[string]string{"prod": prod.URL(), "staging": staging.URL(), "other": other.URL()})+`
receivers:
  - name: edge
    listen: 127.0.0.1:0
    forward_to: [other]
    routes:
      - match: {service_name: "checkout-.*", env: prod}
        forward_to: [prod]
      - match: {__tenant__: "team-qa|team-dev"}
        forward_to: [staging]
      - match: {env: canary}
        forward_to: [prod, staging]
`)
	base := receiverURL(t, p, "edge")

	// /ingest: labels from the name, tenant from X-Scope-OrgID.
	mustIngest(t, base, "checkout-api.cpu{env=prod}", "i-label", "")
	mustIngest(t, base, "checkout-api.cpu{env=prod}", "i-label-first", "team-qa") // the first rule wins
	mustIngest(t, base, "search.cpu{env=prod}", "i-tenant", "team-dev")
	mustIngest(t, base, "search.cpu{env=canary}", "i-both", "")
	mustIngest(t, base, "checkout-api.cpu{env=dev}", "i-default", "")
	mustIngest(t, base, "my-checkout-api.cpu{env=prod}", "i-anchored", "team-x")

	// Push: series for prod, for other (the default) and for both.
	profile := readTestdata(t, "cpu.pb.gz")
	push := pushv1connect.NewPusherServiceClient(httpClient, base)
	msg := &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{
		routedSeries("checkout-api", "prod", "p-prod-1", profile),
		routedSeries("search", "dev", "p-other", profile),
		routedSeries("checkout-web", "prod", "p-prod-2", profile),
		routedSeries("search", "canary", "p-both", profile),
	}}
	if _, err := push.Push(context.Background(), connect.NewRequest(msg)); err != nil {
		t.Fatalf("push: %v", err)
	}
	// The same series from team-qa: the tenant rule takes the ones the
	// first rule does not.
	req := connect.NewRequest(&pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{
		routedSeries("checkout-api", "prod", "q-prod", profile),
		routedSeries("search", "dev", "q-staging", profile),
	}})
	req.Header().Set("X-Scope-OrgID", "team-qa")
	if _, err := push.Push(context.Background(), req); err != nil {
		t.Fatalf("push as team-qa: %v", err)
	}

	want := map[*recorder]struct {
		name           string
		ingest, pushed []string
	}{
		prod:    {"prod", []string{"i-label", "i-label-first", "i-both"}, []string{"p-prod-1", "p-prod-2", "p-both", "q-prod"}},
		staging: {"staging", []string{"i-tenant", "i-both"}, []string{"p-both", "q-staging"}},
		other:   {"other", []string{"i-default", "i-anchored"}, []string{"p-other"}},
	}
	for rec, w := range want {
		waitFor(t, deliverDeadline, "everything routed to "+w.name, func() (bool, string) {
			gi, gp := len(rec.ingestIDs()), len(rec.pushIDs())
			return gi >= len(w.ingest) && gp >= len(w.pushed), fmt.Sprintf("%d of %d ingest, %d of %d series", gi, len(w.ingest), gp, len(w.pushed))
		})
	}
	waitDrained(t, base, "prod", "staging", "other")
	for rec, w := range want {
		checkExactly(t, w.name+" (ingest)", rec.ingestIDs(), w.ingest)
		checkExactly(t, w.name+" (push series)", rec.pushIDs(), w.pushed)
	}
	// The first push was split in three (prod, other, prod+staging), no
	// further: prod's two series arrive in one request.
	for _, pr := range prod.acceptedPushes() {
		var got []string
		for _, s := range pr.GetSeries() {
			got = append(got, s.GetSamples()[0].GetID())
		}
		if slices.Contains(got, "p-prod-1") && !slices.Equal(got, []string{"p-prod-1", "p-prod-2"}) {
			t.Errorf("prod got the push part %v, want [p-prod-1 p-prod-2] together", got)
		}
	}
	p.stop()
}

// TestReceiverConfigErrors: every receiver mistake fails the start and the
// message names the receiver, the destination and the field.
func TestReceiverConfigErrors(t *testing.T) {
	dests := "destinations:\n  - name: prod\n    url: http://127.0.0.1:9\n  - name: staging\n    url: http://127.0.0.1:10\n"
	cases := []struct {
		name string
		yaml string
		want []string // all in the error
	}{
		{"unknown destination", dests + `
receivers:
  - {name: public, listen: "127.0.0.1:0", forward_to: [prod, prdo]}
  - {name: local, listen: "127.0.0.1:0", forward_to: [staging]}
`, []string{`receivers[0] (name "public")`, "forward_to", `unknown destination "prdo"`, "prod, staging"}},
		{"destination nobody forwards to", dests + `
receivers:
  - {name: public, listen: "127.0.0.1:0", forward_to: [prod]}
`, []string{`destinations[1] (name "staging")`, "no receiver forwards to it"}},
		{"duplicate receiver name", dests + `
receivers:
  - {name: public, listen: "127.0.0.1:0", forward_to: [prod]}
  - {name: public, listen: "127.0.0.1:0", forward_to: [staging]}
`, []string{`receivers[1] (name "public")`, "name", "used twice", "receivers[0]"}},
		{"duplicate listen address", dests + `
receivers:
  - {name: public, listen: "127.0.0.1:4999", forward_to: [prod]}
  - {name: local, listen: "127.0.0.1:4999", forward_to: [staging]}
`, []string{`receivers[1] (name "local")`, "listen", "127.0.0.1:4999", `receivers[0] (name "public")`}},
		{"bad regex in a route", dests + `
receivers:
  - name: public
    listen: "127.0.0.1:0"
    forward_to: [prod, staging]
    routes:
      - {match: {env: prod}, forward_to: [prod]}
      - {match: {service_name: "checkout-(.*"}, forward_to: [staging]}
`, []string{`receivers[0] (name "public")`, "routes[1].match.service_name", "bad regular expression", "checkout-(.*"}},
		{"unknown destination in a route", dests + `
receivers:
  - name: public
    listen: "127.0.0.1:0"
    forward_to: [prod, staging]
    routes:
      - {match: {env: prod}, forward_to: [prod, archive]}
`, []string{`receivers[0] (name "public")`, "routes[0].forward_to", `unknown destination "archive"`}},
		{"receiver without forward_to", dests + `
receivers:
  - {name: public, listen: "127.0.0.1:0"}
`, []string{`receivers[0] (name "public")`, "forward_to", "at least one destination"}},
		{"bad receiver name", dests + `
receivers:
  - {name: "pub lic", listen: "127.0.0.1:0", forward_to: [prod, staging]}
`, []string{`receivers[0] (name "pub lic")`, "name"}},
		{"top-level listen beside receivers", dests + `
listen: 127.0.0.1:4040
receivers:
  - {name: public, listen: "127.0.0.1:0", forward_to: [prod, staging]}
`, []string{"listen", "receivers"}},
		{"unknown receiver key", dests + `
receivers:
  - {name: public, listen: "127.0.0.1:0", forward: [prod, staging]}
`, []string{"receivers[0].forward"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each run only starts and fails a process
			dir := t.TempDir()
			code, out := runToExit(t, nil, "serve", "--data-dir", dir+"/data", "--log-format", "json", "--config", writeConfig(t, dir, tc.yaml))
			if code == 0 {
				t.Fatalf("exit code 0, want non-zero; output:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not name %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, `"msg":"serving"`) {
				t.Errorf("the relay started serving before failing:\n%s", out)
			}
		})
	}
}

// loadRun posts folded profiles to base from workers clients until stop,
// at most limit in all, and records every id answered 200 and every
// failure.
type loadRun struct {
	mu       sync.Mutex
	acked    map[string]bool
	failures []string
	stop     chan struct{}
	wg       sync.WaitGroup
}

func startLoad(base, prefix string, workers, limit int) *loadRun {
	l := &loadRun{acked: map[string]bool{}, stop: make(chan struct{})}
	per := limit / workers
	for w := range workers {
		l.wg.Go(func() {
			for i := range per {
				select {
				case <-l.stop:
					return
				default:
				}
				id := fmt.Sprintf("%s-%d-%d", prefix, w, i)
				status, err := postFolded(context.Background(), base, id)
				l.mu.Lock()
				if err == nil && status == http.StatusOK {
					l.acked[id] = true
				} else {
					l.failures = append(l.failures, fmt.Sprintf("%s: status %d, err %v", id, status, err))
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

func (l *loadRun) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// waitMore waits until n more requests were acknowledged than now.
func (l *loadRun) waitMore(t *testing.T, n int) {
	t.Helper()
	target := l.count() + n
	waitFor(t, deliverDeadline, "load to go on", func() (bool, string) {
		return l.count() >= target, fmt.Sprintf("%d of %d", l.count(), target)
	})
}

func (l *loadRun) finish() (map[string]bool, []string) {
	close(l.stop)
	l.wg.Wait()
	return l.acked, l.failures
}

func sighup(t *testing.T, p *relayProc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP: %v", err)
	}
}

// TestReloadReceiversAndDestinations: while load runs on one receiver, a
// reload adds a receiver and a destination, a broken config is refused, and
// a second reload takes them away again; the loaded receiver is never
// restarted, every request it acknowledged is delivered, and each
// destination gets exactly its receiver's requests.
func TestReloadReceiversAndDestinations(t *testing.T) {
	d1, d2 := newRecorder(t, nil), newRecorder(t, nil)
	one := fastDestinations(map[string]string{"d1": d1.URL()}) + `
receivers:
  - {name: a, listen: "127.0.0.1:0", forward_to: [d1]}
`
	two := fastDestinations(map[string]string{"d1": d1.URL(), "d2": d2.URL()}) + `
receivers:
  - {name: a, listen: "127.0.0.1:0", forward_to: [d1]}
  - {name: b, listen: "127.0.0.1:0", forward_to: [d2]}
`
	p, cfgPath := startWithConfig(t, one)
	a := receiverURL(t, p, "a")
	load := startLoad(a, "load", 2, 4000)
	load.waitMore(t, 20)

	// Add receiver b and destination d2.
	writeConfig(t, filepath.Dir(cfgPath), two)
	sighup(t, p)
	b := receiverURL(t, p, "b")
	for _, id := range ids("b", 5) {
		mustPostFolded(t, b, id)
	}
	load.waitMore(t, 20)

	// A broken config is refused; everything keeps running.
	writeConfig(t, filepath.Dir(cfgPath), fastDestinations(map[string]string{"d1": d1.URL(), "d2": d2.URL()})+`
receivers:
  - {name: a, listen: "127.0.0.1:0", forward_to: [d1]}
  - name: b
    listen: "127.0.0.1:0"
    forward_to: [d2]
    routes:
      - {match: {env: "("}, forward_to: [d1]}
`)
	sighup(t, p)
	waitFor(t, deliverDeadline, "the broken config refused", func() (bool, string) {
		return hasLogLine(p.Stderr.String(), "ERROR", "the configuration does not load", `routes[0].match.env`), "no error line yet"
	})
	mustPostFolded(t, b, "b-after-broken")
	load.waitMore(t, 20)

	// Take b and d2 away again: b stops, d2's forwarder stops.
	writeConfig(t, filepath.Dir(cfgPath), one)
	sighup(t, p)
	waitFor(t, deliverDeadline, "b stopped and d2 removed", func() (bool, string) {
		log := p.Stderr.String()
		return hasLogLine(log, "INFO", "receiver stopped", `"receiver":"b"`) && hasLogLine(log, "WARN", "destination removed", `"destination":"d2"`), "not yet"
	})
	if status, err := postFolded(context.Background(), b, "b-after-removal"); err == nil {
		t.Errorf("removed receiver b still answers: %d", status)
	}
	load.waitMore(t, 20)
	acked, failures := load.finish()

	if len(failures) > 0 {
		t.Errorf("%d load requests on the unchanged receiver failed across reloads, e.g. %v", len(failures), failures[:min(5, len(failures))])
	}
	if n := len(servingLines(p)["a"]); n != 1 {
		t.Errorf("receiver a logged %d serving lines, want 1: it must not restart", n)
	}
	waitFor(t, deliverDeadline, "every acknowledged request at d1", func() (bool, string) {
		n, some := missing(acked, d1.ingestIDs())
		return n == 0, fmt.Sprintf("%d of %d missing, e.g. %v", n, len(acked), some)
	})
	waitFor(t, deliverDeadline, "b's requests at d2", func() (bool, string) {
		return len(d2.ingestIDs()) == 6, fmt.Sprintf("%d of 6", len(d2.ingestIDs()))
	})
	waitDrained(t, a, "d1")
	checkExactly(t, "d1", d1.ingestIDs(), slices.Collect(maps.Keys(acked)))
	checkExactly(t, "d2", d2.ingestIDs(), append(ids("b", 5), "b-after-broken"))
	t.Logf("%d requests acknowledged on receiver a across three reloads, all delivered", len(acked))
	p.stop()
}

// TestReloadReroutesAndRestarts: a reload that changes only a receiver's
// forward_to re-routes it in place (same listener, no new "serving" line);
// one that changes its limits restarts it on a new listener.
func TestReloadReroutesAndRestarts(t *testing.T) {
	d1, d2 := newRecorder(t, nil), newRecorder(t, nil)
	dests := fastDestinations(map[string]string{"d1": d1.URL(), "d2": d2.URL()})
	p, cfgPath := startWithConfig(t, dests+`
receivers:
  - {name: a, listen: "127.0.0.1:0", forward_to: [d1]}
  - {name: keep, listen: "127.0.0.1:0", forward_to: [d1, d2]}
`)
	a := receiverURL(t, p, "a")
	mustPostFolded(t, a, "before")

	writeConfig(t, filepath.Dir(cfgPath), dests+`
receivers:
  - {name: a, listen: "127.0.0.1:0", forward_to: [d2]}
  - {name: keep, listen: "127.0.0.1:0", forward_to: [d1, d2]}
`)
	sighup(t, p)
	waitFor(t, deliverDeadline, "a re-routed", func() (bool, string) {
		return hasLogLine(p.Stderr.String(), "INFO", "configuration reloaded", `"receivers_rerouted":"a"`), "not yet"
	})
	mustPostFolded(t, a, "rerouted") // same address: the listener stayed
	if n := len(servingLines(p)["a"]); n != 1 {
		t.Errorf("a logged %d serving lines after a re-route, want 1", n)
	}

	writeConfig(t, filepath.Dir(cfgPath), dests+`
receivers:
  - {name: a, listen: "127.0.0.1:0", forward_to: [d2], max_body_size: 1MiB}
  - {name: keep, listen: "127.0.0.1:0", forward_to: [d1, d2]}
`)
	sighup(t, p)
	waitFor(t, deliverDeadline, "a restarted", func() (bool, string) {
		return len(servingLines(p)["a"]) == 2, fmt.Sprintf("%d serving lines", len(servingLines(p)["a"]))
	})
	a2 := receiverURL(t, p, "a")
	mustPostFolded(t, a2, "restarted")
	if n := len(servingLines(p)["keep"]); n != 1 {
		t.Errorf("the unchanged receiver logged %d serving lines, want 1", n)
	}

	// A receiver whose address is taken: the whole reload is refused,
	// the new destination and route included, and a keeps serving.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	d3 := newRecorder(t, nil)
	writeConfig(t, filepath.Dir(cfgPath), fastDestinations(map[string]string{"d1": d1.URL(), "d2": d2.URL(), "d3": d3.URL()})+`
receivers:
  - {name: a, listen: "127.0.0.1:0", forward_to: [d3], max_body_size: 1MiB}
  - {name: keep, listen: "127.0.0.1:0", forward_to: [d1, d2]}
  - {name: busy, listen: "`+busy.Addr().String()+`", forward_to: [d3]}
`)
	sighup(t, p)
	waitFor(t, deliverDeadline, "the reload refused", func() (bool, string) {
		return hasLogLine(p.Stderr.String(), "ERROR", "new configuration not applied", `receiver \"busy\": listen`), "not yet"
	})
	mustPostFolded(t, a2, "after-refused")
	if len(servingLines(p)["busy"]) != 0 || len(servingLines(p)["a"]) != 2 {
		t.Errorf("serving lines after a refused reload: %v", servingLines(p))
	}

	waitFor(t, deliverDeadline, "deliveries", func() (bool, string) {
		return len(d1.ingestIDs()) == 1 && len(d2.ingestIDs()) == 3, fmt.Sprintf("d1 %d of 1, d2 %d of 3", len(d1.ingestIDs()), len(d2.ingestIDs()))
	})
	waitDrained(t, a2, "d1", "d2")
	checkExactly(t, "d1", d1.ingestIDs(), []string{"before"})
	checkExactly(t, "d2", d2.ingestIDs(), []string{"rerouted", "restarted", "after-refused"})
	if n := len(d3.requests()); n != 0 {
		t.Errorf("d3, added by the refused reload, got %d requests", n)
	}
	p.stop()
}
