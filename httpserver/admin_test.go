package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/store"
)

type admSummary struct {
	sum store.Summary
	err error
}

func (a admSummary) Summary() (store.Summary, error) { return a.sum, a.err }

func admGet(t *testing.T, h http.Handler, method string) (*http.Response, []byte) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, err := http.NewRequest(method, srv.URL+StatusPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestStatusAPI(t *testing.T) {
	old := time.Now().Add(-2 * time.Hour)
	sum := store.Summary{
		Queues: map[string]store.QueueStats{
			"prod":   {Entries: 3, Bytes: 300, Oldest: old, Newest: old.Add(time.Hour), DeadEntries: 1, DeadBytes: 10},
			"gone":   {Entries: 2, Bytes: 20, Oldest: old, Newest: old},
			"former": {}, // emptied: listed, not an orphan
		},
		Archive:     store.ArchiveStats{Retention: time.Hour, Entries: 5, Bytes: 50, Oldest: old, Newest: old},
		Quarantined: 1,
		FileBytes:   4096,
		LogBytes:    1 << 20,
	}
	s := New(Config{Queues: []string{"prod", "staging"}}, Options{Store: admNoStore{}, Status: admSummary{sum: sum}})
	resp, body := admGet(t, s.Handler(), http.MethodGet)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var st QueuesStatus
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	byName := map[string]QueueStatus{}
	var order []string
	for _, q := range st.Queues {
		byName[q.Name] = q
		order = append(order, q.Name)
	}
	if want := []string{"former", "gone", "prod", "staging"}; len(order) != len(want) || order[0] != want[0] || order[3] != want[3] {
		t.Errorf("queues %v, want %v (sorted, configured ones included)", order, want)
	}
	prod := byName["prod"]
	if prod.Entries != 3 || prod.Bytes != 300 || prod.DeadLetters != 1 || prod.Configured == nil || !*prod.Configured ||
		prod.Oldest == nil || prod.OldestAgeSeconds < 7000 || prod.Orphan() {
		t.Errorf("prod %+v", prod)
	}
	if g := byName["gone"]; !g.Orphan() {
		t.Errorf("gone is not reported as an orphan: %+v", g)
	}
	if f := byName["former"]; f.Orphan() {
		t.Errorf("an empty unconfigured queue is reported as an orphan")
	}
	if s := byName["staging"]; s.Entries != 0 || s.Oldest != nil || s.Configured == nil || !*s.Configured {
		t.Errorf("staging %+v", s)
	}
	if st.Archive.Entries != 5 || st.Archive.RetentionSeconds != 3600 || st.Quarantined != 1 || st.FileBytes != 4096 || st.LogBytes != 1<<20 {
		t.Errorf("status %+v", st)
	}

	resp, _ = admGet(t, s.Handler(), http.MethodPost)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d", resp.StatusCode)
	}
	failing := New(Config{}, Options{Store: admNoStore{}, Status: admSummary{err: errors.New("disk on fire")}})
	if resp, body := admGet(t, failing.Handler(), http.MethodGet); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("failing store: status %d %s", resp.StatusCode, body)
	}
	without := New(Config{}, Options{Store: admNoStore{}})
	if resp, _ := admGet(t, without.Handler(), http.MethodGet); resp.StatusCode != http.StatusNotFound {
		t.Errorf("no status source: status %d, want 404", resp.StatusCode)
	}
}

func TestStatusAPIStoreOnlyListsTheHoldQueue(t *testing.T) {
	s := New(Config{}, Options{Store: admNoStore{}, Status: admSummary{sum: store.Summary{Queues: map[string]store.QueueStats{}}}})
	_, body := admGet(t, s.Handler(), http.MethodGet)
	var st QueuesStatus
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Queues) != 1 || st.Queues[0].Name != store.HoldQueue || !*st.Queues[0].Configured {
		t.Errorf("queues %+v", st.Queues)
	}
}

func TestBuildStatusWithoutConfigLeavesConfiguredOut(t *testing.T) {
	st := BuildStatus(store.Summary{Queues: map[string]store.QueueStats{"a": {Entries: 1}}}, nil, time.Now())
	if len(st.Queues) != 1 || st.Queues[0].Configured != nil || st.Queues[0].Orphan() {
		t.Errorf("%+v", st.Queues)
	}
}

func TestAppName(t *testing.T) {
	tests := map[string]string{
		"app":                      "app",
		"app.cpu":                  "app",
		"app.cpu{env=prod}":        "app",
		"my.app":                   "my.app",
		"my.app.inuse_space{a=b}":  "my.app",
		" spaced.wall {x=y}":       "spaced",
		"ride-sharing-app.itimer{": "ride-sharing-app",
	}
	for in, want := range tests {
		if got := AppName(in); got != want {
			t.Errorf("AppName(%q) = %q, want %q", in, got, want)
		}
	}
}

// admNoStore is a Store the status tests never put into.
type admNoStore struct{}

func (admNoStore) Put(context.Context, *store.Entry, []string) error { return nil }
