package main

import (
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/grafana/pyroscope-go/upstream"
	"github.com/grafana/pyroscope-go/upstream/remote"
)

// testLogger is pyroscope-go's remote.Logger over t.Logf; it also keeps
// the errors, the only place the client reports a failed upload.
type testLogger struct {
	t      *testing.T
	mu     sync.Mutex
	errors []string
}

func (l *testLogger) Infof(format string, args ...any)  { l.t.Logf("pyroscope-go: "+format, args...) }
func (l *testLogger) Debugf(format string, args ...any) {}
func (l *testLogger) Errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.t.Logf("pyroscope-go error: %s", msg)
	l.mu.Lock()
	l.errors = append(l.errors, msg)
	l.mu.Unlock()
}

// TestPyroscopeGoClientThroughRelay uploads a real CPU profile with the
// real pyroscope-go client through a relay with two destinations: both get
// the same request, and its multipart body carries the profile unchanged.
func TestPyroscopeGoClientThroughRelay(t *testing.T) {
	a, b := newRecorder(t, nil), newRecorder(t, nil)
	relay := startRelay(t, t.TempDir(), "--forward-to", "a="+a.URL(), "--forward-to", "b="+b.URL())

	log := &testLogger{t: t}
	// Threads must be at least 1: with 0, Flush blocks forever.
	r, err := remote.NewRemote(remote.Config{Address: relay.URL, Threads: 1, Timeout: 30 * time.Second, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	profile := readTestdata(t, "cpu.pb.gz")
	end := time.Now()
	r.Upload(&upstream.UploadJob{
		Name:            "myapp.cpu{env=test}",
		StartTime:       end.Add(-10 * time.Second),
		EndTime:         end,
		SpyName:         "gospy",
		SampleRate:      100,
		Units:           "samples",
		AggregationType: "sum",
		Format:          upstream.FormatPprof,
		Profile:         profile,
	})
	r.Flush()
	r.Stop()
	log.mu.Lock()
	errs := log.errors
	log.mu.Unlock()
	if len(errs) > 0 {
		t.Fatalf("the client reported errors: %v", errs)
	}

	qa, _ := checkMultipartForwarded(t, a, b, profile)
	q, err := url.ParseQuery(qa.RawQuery)
	if err != nil {
		t.Fatalf("forwarded query %q: %v", qa.RawQuery, err)
	}
	for k, want := range map[string]string{
		"name": "myapp.cpu{env=test}", "spyName": "gospy", "sampleRate": "100",
		"units": "samples", "aggregationType": "sum",
		"from": fmt.Sprint(end.Add(-10 * time.Second).UnixNano()), "until": fmt.Sprint(end.UnixNano()),
	} {
		if got := q.Get(k); got != want {
			t.Errorf("forwarded %s = %q, want %q", k, got, want)
		}
	}
	relay.stop()
}
