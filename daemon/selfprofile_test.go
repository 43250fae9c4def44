package daemon

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/pyroscope-go/upstream"

	"github.com/pyrorelay/pyrorelay/httpserver"
	"github.com/pyrorelay/pyrorelay/store"
)

// selfProfileParts reads the multipart body of an /ingest request into
// part name -> content.
func selfProfileParts(t *testing.T, contentType string, body []byte) map[string][]byte {
	t.Helper()
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/form-data" {
		t.Fatalf("Content-Type %q: want multipart/form-data (%v)", contentType, err)
	}
	parts := map[string][]byte{}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return parts
		}
		if err != nil {
			t.Fatalf("multipart body: %v", err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		parts[p.FormName()] = b
	}
}

// gzipped reports whether b is a gzip stream that decompresses, as a
// pprof profile from runtime/pprof is.
func gzipped(b []byte) error {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, zr)
	return err
}

func TestSelfProfileEntryIsAValidIngest(t *testing.T) {
	var prof bytes.Buffer
	zw := gzip.NewWriter(&prof)
	_, _ = zw.Write([]byte("not really pprof, but gzip"))
	_ = zw.Close()
	start := time.Unix(1700000000, 0)
	tests := []struct {
		name string
		job  upstream.UploadJob
	}{
		{"cpu", upstream.UploadJob{
			Name: "pyrorelay{service_name=pyrorelay,hostname=h1,process.runtime.name=go}", StartTime: start, EndTime: start.Add(10 * time.Second),
			SpyName: "gospy", SampleRate: 100, Units: "samples", AggregationType: "sum", Format: upstream.FormatPprof, Profile: prof.Bytes(),
		}},
		{"heap with sample types", upstream.UploadJob{
			Name: "pyrorelay{service_name=pyrorelay}", StartTime: start, EndTime: start.Add(10 * time.Second),
			SpyName: "gospy", SampleRate: 100, Format: upstream.FormatPprof, Profile: prof.Bytes(),
			SampleTypeConfig: map[string]*upstream.SampleType{"inuse_space": {Units: "bytes", Aggregation: "average"}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Now()
			e, err := selfProfileEntry(&tc.job, now)
			if err != nil {
				t.Fatal(err)
			}
			if e.Kind != store.KindIngest || !e.ReceivedAt.Equal(now) {
				t.Errorf("kind %v received %v, want ingest at %v", e.Kind, e.ReceivedAt, now)
			}
			q, err := url.ParseQuery(e.Query)
			if err != nil {
				t.Fatal(err)
			}
			// The relay's own /ingest validation accepts it, as any client's.
			if err := httpserver.ValidateIngest(q, e.ContentType); err != nil {
				t.Fatalf("the relay would refuse its own profile: %v", err)
			}
			want := map[string]string{
				"name":       tc.job.Name,
				"from":       fmt.Sprint(tc.job.StartTime.UnixNano()),
				"until":      fmt.Sprint(tc.job.EndTime.UnixNano()),
				"spyName":    "gospy",
				"sampleRate": "100",
			}
			if tc.job.Units != "" {
				want["units"] = tc.job.Units
				want["aggregationType"] = tc.job.AggregationType
			}
			for k, v := range want {
				if got := q.Get(k); got != v {
					t.Errorf("query %s = %q, want %q", k, got, v)
				}
			}
			parts := selfProfileParts(t, e.ContentType, e.Body)
			if !bytes.Equal(parts["profile"], tc.job.Profile) {
				t.Errorf("profile part differs from the upload")
			}
			stc, has := parts["sample_type_config"]
			if has != (tc.job.SampleTypeConfig != nil) {
				t.Fatalf("sample_type_config part present = %v, want %v", has, tc.job.SampleTypeConfig != nil)
			}
			if has {
				var m map[string]upstream.SampleType
				if err := json.Unmarshal(stc, &m); err != nil || m["inuse_space"].Units != "bytes" {
					t.Errorf("sample_type_config %s: %v", stc, err)
				}
			}
		})
	}
}

// memPutter records what the self-profiler stores.
type memPutter struct {
	mu      sync.Mutex
	entries []*store.Entry
	queues  [][]string
	err     error
}

func (m *memPutter) Put(_ context.Context, e *store.Entry, queues []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.entries = append(m.entries, e)
	m.queues = append(m.queues, queues)
	return nil
}

func (m *memPutter) snapshot() ([]*store.Entry, [][]string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*store.Entry(nil), m.entries...), append([][]string(nil), m.queues...)
}

// TestSelfProfileInProcess runs the profiler against a store stand-in:
// CPU, heap and goroutine profiles arrive for every destination queue,
// named service_name=pyrorelay, and stop() queues the last CPU profile.
func TestSelfProfileInProcess(t *testing.T) {
	mp := &memPutter{}
	stop, err := startSelfProfile(mp, []string{"a", "b"}, 100*time.Millisecond, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	kinds := func() map[string]int {
		entries, queues := mp.snapshot()
		got := map[string]int{}
		for i, e := range entries {
			q, _ := url.ParseQuery(e.Query)
			if !strings.Contains(q.Get("name"), "service_name=pyrorelay") || strings.Join(queues[i], ",") != "a,b" {
				t.Errorf("entry for queues %v named %q", queues[i], q.Get("name"))
			}
			got[selfProfileKind(t, e)]++
		}
		return got
	}
	waitFor(t, deliverDeadline, "cpu, heap and goroutine self-profiles", func() (bool, string) {
		k := kinds()
		return k["cpu"] > 0 && k["heap"] > 0 && k["goroutine"] > 0, fmt.Sprint(k)
	})
	before := kinds()["cpu"]
	stop()
	stopped = true
	if after := kinds()["cpu"]; after <= before {
		t.Errorf("stop queued no final CPU profile: %d CPU profiles before, %d after", before, after)
	}
	// After stop nothing more arrives.
	n := len(func() []*store.Entry { e, _ := mp.snapshot(); return e }())
	stop() // twice is harmless
	if e, _ := mp.snapshot(); len(e) != n {
		t.Errorf("%d profiles stored after stop", len(e)-n)
	}
}

// selfProfileKind says which profile an entry holds: cpu (units=samples),
// goroutine (units=goroutines) or heap (alloc/inuse sample types).
func selfProfileKind(t *testing.T, e *store.Entry) string {
	t.Helper()
	q, _ := url.ParseQuery(e.Query)
	parts := selfProfileParts(t, e.ContentType, e.Body)
	if err := gzipped(parts["profile"]); err != nil {
		t.Errorf("profile part of %q is not gzipped pprof: %v", q.Get("units"), err)
	}
	switch {
	case q.Get("units") == "samples":
		return "cpu"
	case q.Get("units") == "goroutines":
		return "goroutine"
	case bytes.Contains(parts["sample_type_config"], []byte("inuse_space")):
		return "heap"
	default:
		return "other"
	}
}
