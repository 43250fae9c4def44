package httpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/pyrorelay/pyrorelay/route"
	"github.com/pyrorelay/pyrorelay/store"
)

func TestIngestLabels(t *testing.T) {
	tests := []struct {
		name string
		want map[string]string
	}{
		{"app.cpu", map[string]string{"service_name": "app"}},
		{"app.cpu{env=prod,region=eu}", map[string]string{"service_name": "app", "env": "prod", "region": "eu"}},
		{"my.app", map[string]string{"service_name": "my.app"}},
		{"my.app.inuse_space{}", map[string]string{"service_name": "my.app"}},
		{"app.cpu{service_name=checkout}", map[string]string{"service_name": "checkout", "app_name": "app"}},
		{"app.cpu{service_name=checkout,app_name=shop}", map[string]string{"service_name": "checkout", "app_name": "shop"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := IngestLabels(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("IngestLabels(%q) = %v, want %v", tt.name, got, tt.want)
			}
		})
	}
	if _, err := IngestLabels("app{=x}"); err == nil {
		t.Error("IngestLabels accepted a label without a name")
	}
}

// testRoutes is the table of these tests: checkout in prod to prod, the
// tenant team-qa to staging, everything else to both.
func testRoutes(t *testing.T) *route.Table {
	t.Helper()
	tab, err := route.Compile([]route.Rule{
		{Match: map[string]string{"service_name": "checkout-.*", "env": "prod"}, ForwardTo: []string{"prod"}},
		{Match: map[string]string{route.TenantKey: "team-qa"}, ForwardTo: []string{"staging"}},
	}, []string{"prod", "staging"})
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func TestIngestRouted(t *testing.T) {
	ts := newTestServer(t, Config{Queues: []string{"ignored"}, Router: testRoutes(t)})
	tests := []struct {
		name, appName, tenant string
		want                  []string
	}{
		{"label match", "checkout-api.cpu{env=prod}", "", []string{"prod"}},
		{"label match with any tenant", "checkout-api.cpu{env=prod}", "team-qa", []string{"prod"}},
		{"tenant match", "checkout-api.cpu{env=dev}", "team-qa", []string{"staging"}},
		{"default", "checkout-api.cpu{env=dev}", "team-b", []string{"prod", "staging"}},
		{"anchored: a longer service name is not checkout", "checkout.cpu{env=prod}", "", []string{"prod", "staging"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(ts.store.entries())
			q := url.Values{"name": {tt.appName}}
			req, _ := http.NewRequest(http.MethodPost, ts.url+"/ingest?"+q.Encode(), strings.NewReader("a;b 1\n"))
			if tt.tenant != "" {
				req.Header.Set(tenantHeader, tt.tenant)
			}
			if resp, body := do(t, nil, req); resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			calls := ts.store.entries()[before:]
			if len(calls) != 1 || !slices.Equal(calls[0].Queues, tt.want) {
				t.Fatalf("stored %+v, want one entry to %v", calls, tt.want)
			}
			// Routing by tenant does not pass it through by itself.
			if calls[0].Entry.Tenant != "" {
				t.Errorf("tenant %q stored without tenant passthrough", calls[0].Entry.Tenant)
			}
		})
	}
}

func TestPushRouted(t *testing.T) {
	cpu := readFile(t, "cpu.pb.gz")
	mk := func(svc, env string) *pushv1.RawProfileSeries {
		return &pushv1.RawProfileSeries{
			Labels:  labels("__name__", "process_cpu", "service_name", svc, "env", env),
			Samples: []*pushv1.RawSample{{RawProfile: cpu, ID: svc + "/" + env}},
		}
	}
	prod1, prod2 := mk("checkout-api", "prod"), mk("checkout-web", "prod")
	other := mk("search", "prod")

	t.Run("series for two destination sets make two entries", func(t *testing.T) {
		ts := newServer(t, Config{Router: testRoutes(t), TenantPassthrough: true})
		c := pushClient(t, serve(t, ts.Server), false)
		msg := &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{prod1, other, prod2}}
		req := connect.NewRequest(msg)
		req.Header().Set(tenantHeader, "team-a")
		if _, err := c.Push(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		got := pushesByQueues(t, ts.store.entries())
		want := map[string][]string{
			"prod":         {"checkout-api/prod", "checkout-web/prod"},
			"prod,staging": {"search/prod"},
		}
		if !maps.EqualFunc(got, want, slices.Equal) {
			t.Errorf("entries %v, want %v", got, want)
		}
		for _, c := range ts.store.entries() {
			if c.Entry.Tenant != "team-a" || c.Entry.Kind != store.KindPush {
				t.Errorf("entry to %v: tenant %q kind %v", c.Queues, c.Entry.Tenant, c.Entry.Kind)
			}
		}
	})
	t.Run("series for one destination set stay one entry", func(t *testing.T) {
		ts := newServer(t, Config{Router: testRoutes(t)})
		c := pushClient(t, serve(t, ts.Server), false)
		msg := &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{prod1, prod2}}
		if _, err := c.Push(context.Background(), connect.NewRequest(msg)); err != nil {
			t.Fatal(err)
		}
		calls := ts.store.entries()
		if len(calls) != 1 || !slices.Equal(calls[0].Queues, []string{"prod"}) {
			t.Fatalf("stored %d entries: %+v", len(calls), calls)
		}
		want, _ := proto.Marshal(msg)
		if !bytes.Equal(calls[0].Entry.Body, want) {
			t.Error("an unsplit push is not stored as it came")
		}
	})
	t.Run("tenant route takes the whole push", func(t *testing.T) {
		ts := newServer(t, Config{Router: testRoutes(t)})
		c := pushClient(t, serve(t, ts.Server), false)
		msg := &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{mk("search", "dev"), mk("billing", "dev")}}
		req := connect.NewRequest(msg)
		req.Header().Set(tenantHeader, "team-qa")
		if _, err := c.Push(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		calls := ts.store.entries()
		if len(calls) != 1 || !slices.Equal(calls[0].Queues, []string{"staging"}) {
			t.Fatalf("stored %+v, want one entry to staging", calls)
		}
	})
}

// pushesByQueues decodes stored Push entries: destination set (comma
// joined) -> sample IDs, in order.
func pushesByQueues(t *testing.T, calls []putCall) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, c := range calls {
		var req pushv1.PushRequest
		if err := proto.Unmarshal(c.Entry.Body, &req); err != nil {
			t.Fatalf("stored push does not decode: %v", err)
		}
		key := strings.Join(c.Queues, ",")
		if _, dup := out[key]; dup {
			t.Errorf("two entries to %s", key)
		}
		for _, s := range req.GetSeries() {
			for _, smp := range s.GetSamples() {
				out[key] = append(out[key], smp.GetID())
			}
		}
	}
	return out
}

// queueFailStore fails every Put that names queue fail and records the
// others.
type queueFailStore struct {
	fakeStore
	fail string
}

func (q *queueFailStore) Put(ctx context.Context, e *store.Entry, queues []string) error {
	if slices.Contains(queues, q.fail) {
		q.mu.Lock()
		q.attempts++
		q.mu.Unlock()
		return store.ErrFull
	}
	return q.fakeStore.Put(ctx, e, queues)
}

// TestPushRoutedPartialFailure checks that a push is answered 200 only when
// every part is stored: one failing part fails the push (and the client
// retries all of it, at-least-once for the parts that were stored).
func TestPushRoutedPartialFailure(t *testing.T) {
	cpu := readFile(t, "cpu.pb.gz")
	fs := &queueFailStore{fail: "staging"}
	reg := prometheus.NewRegistry()
	s := New(Config{Router: testRoutes(t)}, Options{Store: fs, Registry: reg})
	c := pushClient(t, serve(t, s), false)
	msg := &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{
		{Labels: labels("service_name", "checkout-api", "env", "prod"), Samples: []*pushv1.RawSample{{RawProfile: cpu}}},
		{Labels: labels("service_name", "search", "env", "prod"), Samples: []*pushv1.RawSample{{RawProfile: cpu}}},
	}}
	_, err := c.Push(context.Background(), connect.NewRequest(msg))
	if code := connect.CodeOf(err); code != connect.CodeResourceExhausted {
		t.Fatalf("Push error %v (code %v), want resource_exhausted", err, code)
	}
	if attempts, stored := fs.counts(); attempts != 2 || stored != 1 {
		t.Errorf("%d Puts, %d stored; want both parts tried, the prod one stored", attempts, stored)
	}
}

// TestReceiverName checks that a named server labels its metrics with the
// receiver, so that two servers share one registry.
func TestReceiverName(t *testing.T) {
	reg := prometheus.NewRegistry()
	var stores [2]fakeStore
	var urls []string
	for i, name := range []string{"public", "internal"} {
		s := New(Config{Name: name, Queues: []string{name + "-dest"}}, Options{Store: &stores[i], Registry: reg, Gatherer: reg})
		urls = append(urls, serve(t, s))
	}
	for i, u := range urls {
		for range i + 1 {
			req, _ := http.NewRequest(http.MethodPost, u+"/ingest?name=app.cpu", strings.NewReader("a;b 1\n"))
			if resp, body := do(t, nil, req); resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
		}
	}
	for i, name := range []string{"public", "internal"} {
		v, ok := scrape(t, urls[0], "pyrorelay_requests_received_total", map[string]string{"receiver": name, "endpoint": "ingest", "code": "200"})
		if !ok || v != float64(i+1) {
			t.Errorf("requests_received_total{receiver=%s} = %v (found %v), want %d", name, v, ok, i+1)
		}
		if _, ok := scrape(t, urls[0], "pyrorelay_http_connections_limit", map[string]string{"receiver": name}); !ok {
			t.Errorf("no pyrorelay_http_connections_limit{receiver=%s}", name)
		}
		if c := stores[i].entries(); len(c) != i+1 || c[0].Queues[0] != name+"-dest" {
			t.Errorf("receiver %s stored %+v", name, c)
		}
	}
}

func TestStatusAPIFeeds(t *testing.T) {
	sum := store.Summary{Queues: map[string]store.QueueStats{
		"prod":    {Entries: 1},
		"removed": {Entries: 2},
	}}
	var mu sync.Mutex
	feeds := map[string][]string{"prod": {"public", "internal"}, "staging": {"internal"}}
	s := New(Config{Queues: []string{"prod"}}, Options{
		Store: admNoStore{}, Status: admSummary{sum: sum},
		Feeds: func() map[string][]string { mu.Lock(); defer mu.Unlock(); return feeds },
	})
	resp, body := admGet(t, s.Handler(), http.MethodGet)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var st QueuesStatus
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	got := map[string]QueueStatus{}
	for _, q := range st.Queues {
		got[q.Name] = q
	}
	names := slices.Collect(maps.Keys(got))
	sort.Strings(names)
	if !slices.Equal(names, []string{"prod", "removed", "staging"}) {
		t.Fatalf("queues %v", names)
	}
	if q := got["prod"]; !slices.Equal(q.Receivers, []string{"internal", "public"}) || !*q.Configured {
		t.Errorf("prod: %+v", q)
	}
	if q := got["staging"]; !slices.Equal(q.Receivers, []string{"internal"}) || !*q.Configured {
		t.Errorf("staging (another receiver's destination) not configured: %+v", q)
	}
	if q := got["removed"]; len(q.Receivers) != 0 || !q.Orphan() {
		t.Errorf("removed: %+v", q)
	}
}
