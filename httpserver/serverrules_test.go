package httpserver

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"connectrpc.com/connect"
	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
)

// TestServerRules is the relay's answer beside the Pyroscope server's for
// each rule the relay applies at the edge: what the server accepts, the
// relay accepts; what it refuses, the relay refuses now. server is the
// server's reason (its message, or the code path that decides).
func TestServerRules(t *testing.T) {
	series := func(kv ...string) *pushv1.PushRequest {
		return &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{
			Labels: labels(kv...), Samples: []*pushv1.RawSample{{RawProfile: []byte("pprof")}},
		}}}
	}
	ingest := func(query, contentType string) func() error {
		return func() error {
			q, _ := url.ParseQuery(query)
			return ValidateIngest(q, contentType)
		}
	}
	push := func(r *pushv1.PushRequest) func() error { return func() error { return ValidatePush(r) } }
	tenant := func(id string) func() error { return func() error { return ValidateTenant(id) } }
	for _, tc := range []struct {
		name   string
		check  func() error
		accept bool
		server string
	}{
		// /ingest names of text formats: the last dot segment is the type.
		{"ingest .exceptions", ingest("name=app.exceptions", ""), true, "convertMetadata: exceptions -> exceptions:samples:count"},
		{"ingest .seconds", ingest("name=app.seconds", ""), true, "convertMetadata: seconds -> wall"},
		{"ingest .milliseconds", ingest("name=app.milliseconds&format=lines", ""), true, "convertMetadata: milliseconds -> wall"},
		{"ingest .nanoseconds", ingest("name=app.nanoseconds", ""), true, "convertMetadata: nanoseconds -> wall"},
		{"ingest .bytes", ingest("name=app.bytes&format=trie", ""), true, "convertMetadata: bytes -> memory:samples:bytes"},
		{"ingest .bogus", ingest("name=app.bogus", ""), false, "unknown profile type: bogus"},
		// Content-Type: only multipart/form-data (and the exact trie and
		// tree types) are read.
		{"ingest text/plain; charset=utf-8", ingest("name=app.cpu", "text/plain; charset=utf-8"), true, "Content-Type of a non-multipart body is ignored"},
		{"ingest loose Content-Type", ingest("name=app.cpu", "text/plain;charset=utf-8;"), true, "Content-Type of a non-multipart body is ignored"},
		{"ingest multipart without boundary", ingest("name=app.cpu", "multipart/form-data"), false, "multipart: no boundary, the form cannot be read"},
		// Push labels (validation.ValidateLabels).
		{"push valid", push(series("__name__", "process_cpu", "service_name", "app")), true, ""},
		{"push without service_name", push(series("__name__", "process_cpu")), true, "distributor fills in service_name"},
		{"push duplicate label", push(series("__name__", "process_cpu", "env", "a", "env", "b")), false, "has duplicate label name: 'env'"},
		{"push empty __name__", push(series("__name__", "", "service_name", "app")), false, "invalid metric name"},
		{"push no labels", push(series()), false, "error at least one label pair is required per profile"},
		// X-Scope-OrgID (dskit tenant.ValidTenantID).
		{"tenant plain", tenant("team-a"), true, ""},
		{"tenant every allowed character", tenant("aZ09!-_.*'()"), true, ""},
		{"tenant 150 characters", tenant(strings.Repeat("t", 150)), true, ""},
		{"tenant 151 characters", tenant(strings.Repeat("t", 151)), false, "tenant ID is too long: max 150 characters"},
		{"tenant with /", tenant("team/a"), false, "tenant ID 'team/a' contains unsupported character '/'"},
		{"tenant with |", tenant("a|b"), false, "contains unsupported character '|'"},
		{"tenant ..", tenant(".."), false, "tenant ID is '.' or '..'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.check()
			if (err == nil) != tc.accept {
				t.Fatalf("relay: %v; the server %s (%s)", err, map[bool]string{true: "accepts", false: "refuses"}[tc.accept], tc.server)
			}
		})
	}
}

// TestTenantCheckedWhenPassedThrough: an X-Scope-OrgID the server would
// refuse is refused when the relay passes it on, and ignored otherwise.
func TestTenantCheckedWhenPassedThrough(t *testing.T) {
	for _, passthrough := range []bool{true, false} {
		ts := newTestServer(t, Config{TenantPassthrough: passthrough})
		req, _ := http.NewRequest(http.MethodPost, ts.url+"/ingest?name=app.cpu", strings.NewReader("a;b 1\n"))
		req.Header.Set(tenantHeader, "team/a")
		resp, b := do(t, nil, req)
		want := http.StatusOK
		if passthrough {
			want = http.StatusBadRequest
		}
		if resp.StatusCode != want {
			t.Errorf("passthrough %v: status %d, want %d: %s", passthrough, resp.StatusCode, want, b)
		}

		c := pushClient(t, serve(t, newServer(t, Config{TenantPassthrough: passthrough}).Server), false)
		preq := connect.NewRequest(&pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{cpuSeries([]byte("pprof"))}})
		preq.Header().Set(tenantHeader, "team/a")
		_, err := c.Push(context.Background(), preq)
		if passthrough && connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("push with a bad tenant passed through: %v, want invalid_argument", err)
		}
		if !passthrough && err != nil {
			t.Errorf("push with a bad tenant not passed through: %v, want success", err)
		}
	}
}
