package httpserver

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pyrorelay/pyrorelay/store"
)

// StatusPath is the admin API's read-only queue status. It carries no
// profile data, only counts, the same as /metrics, so it is served on the
// relay's one address; commands that change the store work on the data
// dir of a stopped relay instead of over the network.
const StatusPath = "/api/v1/queues"

// StatusSource is what the admin API reads: the store.
type StatusSource interface {
	Summary() (store.Summary, error)
}

// QueuesStatus is the answer of GET /api/v1/queues, and what
// `pyrorelay queue status --json` prints for a data dir.
type QueuesStatus struct {
	GeneratedAt time.Time     `json:"generated_at"`
	Queues      []QueueStatus `json:"queues"`
	Archive     ArchiveStatus `json:"archive"`
	// Quarantined counts records that failed their checksum.
	Quarantined int `json:"quarantined"`
	// FileBytes is the bbolt file's size; `pyrorelay compact` shrinks it.
	FileBytes int64 `json:"file_bytes"`
	// LogBytes is the size of the record log's segment files; a segment
	// is removed once nothing in it waits.
	LogBytes int64 `json:"log_bytes"`
}

// QueueStatus is one destination's queue and dead-letter list.
type QueueStatus struct {
	Name string `json:"name"`
	// Configured says whether a configured destination drains the queue;
	// absent when that is unknown (a data dir read without a config). A
	// queue with entries and configured=false is an orphan.
	Configured       *bool      `json:"configured,omitempty"`
	Entries          int64      `json:"entries"`
	Bytes            int64      `json:"bytes"`
	Oldest           *time.Time `json:"oldest,omitempty"`
	Newest           *time.Time `json:"newest,omitempty"`
	OldestAgeSeconds float64    `json:"oldest_age_seconds"`
	DeadLetters      int64      `json:"dead_letters"`
	DeadLetterBytes  int64      `json:"dead_letter_bytes"`
	// Receivers are the receivers that forward to the destination (by
	// forward_to or a route); absent when unknown or none.
	Receivers []string `json:"receivers,omitempty"`
}

// SetReceivers fills in which receivers feed each queue, from feeds:
// destination name -> receiver names.
func (st *QueuesStatus) SetReceivers(feeds map[string][]string) {
	for i := range st.Queues {
		if r := feeds[st.Queues[i].Name]; len(r) > 0 {
			st.Queues[i].Receivers = append([]string(nil), r...)
			sort.Strings(st.Queues[i].Receivers)
		}
	}
}

// Orphan reports whether the queue holds entries no configured destination
// drains.
func (q QueueStatus) Orphan() bool {
	return q.Configured != nil && !*q.Configured && (q.Entries > 0 || q.DeadLetters > 0)
}

// ArchiveStatus is the archive of delivered entries.
type ArchiveStatus struct {
	// RetentionSeconds and MaxBytes are the relay's settings; absent when
	// it does not archive or they are unknown.
	RetentionSeconds float64    `json:"retention_seconds,omitempty"`
	MaxBytes         int64      `json:"max_bytes,omitempty"`
	Entries          int64      `json:"entries"`
	Bytes            int64      `json:"bytes"`
	Oldest           *time.Time `json:"oldest,omitempty"`
	Newest           *time.Time `json:"newest,omitempty"`
}

// BuildStatus turns a store summary into the status document. configured
// lists the destinations a relay drains, nil when unknown; every one of
// them is listed, even with nothing queued yet.
func BuildStatus(sum store.Summary, configured []string, now time.Time) QueuesStatus {
	st := QueuesStatus{
		GeneratedAt: now.UTC(),
		Quarantined: sum.Quarantined,
		FileBytes:   sum.FileBytes,
		LogBytes:    sum.LogBytes,
		Queues:      []QueueStatus{},
		Archive: ArchiveStatus{
			RetentionSeconds: sum.Archive.Retention.Seconds(),
			MaxBytes:         sum.Archive.MaxBytes,
			Entries:          sum.Archive.Entries,
			Bytes:            sum.Archive.Bytes,
			Oldest:           timePtr(sum.Archive.Oldest),
			Newest:           timePtr(sum.Archive.Newest),
		},
	}
	known := map[string]bool{}
	for _, n := range configured {
		known[n] = true
	}
	names := sum.QueueNames()
	for _, n := range configured {
		if _, ok := sum.Queues[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		q := sum.Queues[name]
		qs := QueueStatus{
			Name:            name,
			Entries:         q.Entries,
			Bytes:           q.Bytes,
			Oldest:          timePtr(q.Oldest),
			Newest:          timePtr(q.Newest),
			DeadLetters:     q.DeadEntries,
			DeadLetterBytes: q.DeadBytes,
		}
		if !q.Oldest.IsZero() {
			qs.OldestAgeSeconds = max(now.Sub(q.Oldest).Seconds(), 0)
		}
		if configured != nil {
			c := known[name]
			qs.Configured = &c
		}
		st.Queues = append(st.Queues, qs)
	}
	return st
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// statusHandler serves GET /api/v1/queues from src. The configured queues
// are the server's; a store-only relay keeps everything in the hold queue.
func (s *Server) statusHandler(src StatusSource) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, &InputError{Status: http.StatusMethodNotAllowed, Reason: r.Method + " is not allowed: GET the queue status"})
			return
		}
		sum, err := src.Summary()
		if err != nil {
			s.log.Error("queue status", "err", err)
			writeError(w, &InputError{Status: http.StatusServiceUnavailable, Reason: "read queue status: " + err.Error()})
			return
		}
		configured := append([]string{}, s.cfg.Queues...)
		var feeds map[string][]string
		if s.feeds != nil {
			// The relay's destinations, not only this receiver's.
			feeds = s.feeds()
			configured = configured[:0]
			for d := range feeds {
				configured = append(configured, d)
			}
		}
		if len(configured) == 0 {
			configured = []string{store.HoldQueue}
		}
		st := BuildStatus(sum, configured, time.Now())
		st.SetReceivers(feeds)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
	})
}

// ExportPath streams stored entries of the running relay as ndjson
// (`pyrorelay export --url`, `pyrorelay dead-letter list --url`); the
// handler is the caller's (Options.Export).
const ExportPath = "/api/v1/export"

// routeAdmin adds the admin API's routes o asks for to mux.
func (s *Server) routeAdmin(mux *http.ServeMux, o Options) {
	if o.Status != nil {
		mux.Handle(StatusPath, s.statusHandler(o.Status))
	}
	if o.Export != nil {
		mux.Handle(ExportPath, o.Export)
	}
	if o.Reload != nil {
		mux.Handle(ReloadPath, s.reloadHandler(o.Reload))
	}
}

// ReloadPath reloads the relay's configuration, as SIGHUP does (and as
// Prometheus's /-/reload). It needs the same credentials as the rest of
// the admin API.
const ReloadPath = "/-/reload"

// reloadHandler serves POST (or PUT) /-/reload: 200 once the configuration
// is reloaded, 500 with the reason when some of it did not load (the
// version in force stays). A reload may restart the very receiver that
// asked for it, which waits for this request to finish: then the answer is
// 202 without waiting for the outcome (the log and the metric
// pyrorelay_config_last_reload_successful have it).
func (s *Server) reloadHandler(reload func(context.Context) error) http.Handler {
	var once sync.Once
	stopping := make(chan struct{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			w.Header().Set("Allow", "POST, PUT")
			writeError(w, &InputError{Status: http.StatusMethodNotAllowed, Reason: r.Method + " is not allowed: POST to reload the configuration"})
			return
		}
		once.Do(func() {
			if srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server); ok {
				srv.RegisterOnShutdown(func() { close(stopping) })
			}
		})
		// The reload is not the request's: a client that hangs up does
		// not stop it half-way.
		done := make(chan error, 1)
		go func() { done <- reload(context.WithoutCancel(r.Context())) }()
		w.Header().Set("Cache-Control", "no-store")
		select {
		case err := <-done:
			if err != nil {
				s.log.Error("reload requested over HTTP failed", "err", err)
				writeError(w, &InputError{Status: http.StatusInternalServerError, Reason: "reload failed, the configuration in force stays: " + err.Error()})
				return
			}
			_, _ = io.WriteString(w, "configuration reloaded\n")
		case <-stopping:
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, "reloading: this receiver restarts with the new configuration; pyrorelay_config_last_reload_successful and the log say how it ended\n")
		}
	})
}

// AppName is the application name of an /ingest name, `app.cpu{k=v}`,
// without its labels and without a profile-type suffix the server would
// read off it (so "app.cpu" and "app.inuse_space" are both "app", but
// "my.app" stays "my.app"). It is what a Push series calls service_name.
func AppName(name string) string {
	app, _, _ := strings.Cut(name, "{")
	app = strings.TrimSpace(app)
	if i := strings.LastIndexByte(app, '.'); i >= 0 && profileTypes[app[i+1:]] {
		return app[:i]
	}
	return app
}
