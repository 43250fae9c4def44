package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"mime/multipart"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	pyroscope "github.com/grafana/pyroscope-go"
	"github.com/grafana/pyroscope-go/upstream"

	"github.com/pyrorelay/pyrorelay/store"
)

// Self-profiling: pyrorelay profiles itself with pyroscope-go and hands
// each profile to its own store, exactly as if a client had pushed it to
// /ingest. The profiles then take the same durable road as everyone
// else's: one copy per destination, retried, dead-lettered, counted. No
// network hop, so profiling the relay never depends on the relay's own
// listener (its auth, TLS, connection limit) being reachable.

const (
	// selfProfileApp is the application and service_name of the relay's
	// own profiles.
	selfProfileApp = "pyrorelay"
	// defaultSelfProfileInterval is the length of each CPU profile and the
	// period of the heap and goroutine snapshots.
	defaultSelfProfileInterval = 10 * time.Second
	// selfProfilePutTimeout bounds one store write; a store that cannot
	// take a profile in this time has bigger problems, and the profiler
	// must not stall behind it.
	selfProfilePutTimeout = 10 * time.Second
)

// selfProfileStore is the part of the store the self-profiler needs.
type selfProfileStore interface {
	Put(ctx context.Context, e *store.Entry, queues []string) error
}

// startSelfProfile starts profiling the process (CPU, heap, goroutines)
// every interval into st's queues. The returned stop ends profiling and
// queues the last CPU profile; call it before the store closes.
func startSelfProfile(st selfProfileStore, queues []string, interval time.Duration, log *slog.Logger) (stop func(), err error) {
	if interval <= 0 {
		interval = defaultSelfProfileInterval
	}
	log = log.With("component", "self-profile")
	tags := map[string]string{"service_name": selfProfileApp}
	if h, err := os.Hostname(); err == nil && h != "" {
		// Many relays send the same service_name; the host tells them apart.
		tags["hostname"] = h
	}
	up := &storeUpstream{st: st, queues: queues, log: log}
	session, err := pyroscope.NewSession(pyroscope.SessionConfig{
		Upstream: up,
		Logger:   pyroscopeLogger{log},
		AppName:  selfProfileApp,
		Tags:     tags,
		ProfilingTypes: []pyroscope.ProfileType{
			pyroscope.ProfileCPU,
			pyroscope.ProfileInuseObjects, pyroscope.ProfileAllocObjects,
			pyroscope.ProfileInuseSpace, pyroscope.ProfileAllocSpace,
			pyroscope.ProfileGoroutines,
		},
		UploadRate: interval,
	})
	if err != nil {
		return nil, fmt.Errorf("self-profile: %w", err)
	}
	if err := session.Start(); err != nil {
		return nil, fmt.Errorf("self-profile: %w", err)
	}
	log.Info("profiling the relay itself into its own queues", "service_name", selfProfileApp, "interval", interval)
	var once sync.Once
	return func() { once.Do(session.Stop) }, nil
}

// storeUpstream is a pyroscope-go upstream that stores each upload as the
// /ingest request pyroscope-go's HTTP upstream would have sent.
type storeUpstream struct {
	st     selfProfileStore
	queues []string
	log    *slog.Logger

	mu       sync.Mutex
	lastWarn time.Time
}

// Upload implements upstream.Upstream. It runs on the profiler's own
// goroutine and takes one group commit, a few milliseconds.
func (u *storeUpstream) Upload(j *upstream.UploadJob) {
	e, err := selfProfileEntry(j, time.Now())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), selfProfilePutTimeout)
		err = u.st.Put(ctx, e, u.queues)
		cancel()
	}
	if err != nil {
		u.warn("own profile not stored", "err", err)
	}
}

// Flush implements upstream.Upstream: Upload is synchronous, so there is
// nothing to wait for.
func (u *storeUpstream) Flush() {}

// warn logs at most once a minute: a full or closed store would otherwise
// log every few seconds for as long as it lasts.
func (u *storeUpstream) warn(msg string, args ...any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if now := time.Now(); now.Sub(u.lastWarn) >= time.Minute {
		u.lastWarn = now
		u.log.Warn(msg, args...)
	}
}

// selfProfileEntry shapes an upload like pyroscope-go's HTTP upstream: the
// query carries name, from/until in nanoseconds, spyName, sampleRate,
// units and aggregationType; the body is multipart with a `profile` part
// and, for multi-type profiles, a `sample_type_config` part.
func selfProfileEntry(j *upstream.UploadJob, now time.Time) (*store.Entry, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("profile", "profile.pprof")
	if err != nil {
		return nil, fmt.Errorf("self-profile body: %w", err)
	}
	if _, err := fw.Write(j.Profile); err != nil {
		return nil, fmt.Errorf("self-profile body: %w", err)
	}
	if j.SampleTypeConfig != nil {
		stc, err := json.Marshal(j.SampleTypeConfig)
		if err != nil {
			return nil, fmt.Errorf("self-profile sample_type_config: %w", err)
		}
		fw, err := mw.CreateFormFile("sample_type_config", "sample_type_config.json")
		if err != nil {
			return nil, fmt.Errorf("self-profile body: %w", err)
		}
		if _, err := fw.Write(stc); err != nil {
			return nil, fmt.Errorf("self-profile body: %w", err)
		}
	}
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("self-profile body: %w", err)
	}
	q := url.Values{}
	q.Set("name", j.Name)
	q.Set("from", strconv.FormatInt(j.StartTime.UnixNano(), 10))
	q.Set("until", strconv.FormatInt(j.EndTime.UnixNano(), 10))
	q.Set("spyName", j.SpyName)
	q.Set("sampleRate", strconv.FormatUint(uint64(j.SampleRate), 10))
	if j.Units != "" {
		q.Set("units", j.Units)
	}
	if j.AggregationType != "" {
		q.Set("aggregationType", j.AggregationType)
	}
	return &store.Entry{
		Kind:        store.KindIngest,
		ReceivedAt:  now,
		Query:       q.Encode(),
		ContentType: mw.FormDataContentType(),
		Body:        body.Bytes(),
	}, nil
}

// pyroscopeLogger sends pyroscope-go's messages to the relay's log. Its
// Infof lines describe the session's settings, debug material here.
type pyroscopeLogger struct{ log *slog.Logger }

func (l pyroscopeLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...))
}

func (l pyroscopeLogger) Debugf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...))
}

func (l pyroscopeLogger) Errorf(format string, args ...any) {
	l.log.Warn(fmt.Sprintf(format, args...))
}
