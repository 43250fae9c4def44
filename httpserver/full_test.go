package httpserver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"connectrpc.com/connect"
	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/grafana/pyroscope/api/gen/proto/go/push/v1/pushv1connect"
	typesv1 "github.com/grafana/pyroscope/api/gen/proto/go/types/v1"

	"github.com/pyrorelay/pyrorelay/store"
)

// TestFullStoreAnswers429 checks that a store at its size limit makes the
// relay refuse with 429 and Retry-After (SDKs retry on that), and that what
// was acknowledged before stays untouched.
func TestFullStoreAnswers429(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{Limits: store.Limits{MaxQueueBytes: 300}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := New(Config{Queues: []string{"d"}}, Options{Store: st})
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	post := func() *http.Response {
		resp, err := http.Post(ts.URL+"/ingest?name=app.cpu", "text/plain", strings.NewReader(strings.Repeat("a;b 1\n", 20)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post(); resp.StatusCode != http.StatusOK {
		t.Fatalf("first post: %d", resp.StatusCode)
	}
	resp := post()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("post into a full queue: %d Retry-After=%q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	client := pushv1connect.NewPusherServiceClient(http.DefaultClient, ts.URL)
	_, err = client.Push(context.Background(), connect.NewRequest(&pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{
		Labels:  []*typesv1.LabelPair{{Name: "service_name", Value: "app"}},
		Samples: []*pushv1.RawSample{{RawProfile: []byte(strings.Repeat("x", 400))}},
	}}}))
	if connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("push into a full queue: %v; want resource_exhausted", err)
	}
	stats, _ := st.Stats()
	if stats["d"].Entries != 1 {
		t.Fatalf("queue holds %d entries, want the 1 acknowledged", stats["d"].Entries)
	}
}
