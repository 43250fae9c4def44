package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pyrorelay/pyrorelay/httpserver"
	"github.com/pyrorelay/pyrorelay/relay"
	"github.com/pyrorelay/pyrorelay/store"
)

// ErrNotRunning refuses a Reload before Run has started the relay or after
// it returned.
var ErrNotRunning = errors.New("the relay is not running")

// Options are what a Daemon takes besides its Config: where it logs, what
// it registers its metrics with, and the parts the binary supplies.
type Options struct {
	// Logger receives every log line; nil discards them.
	Logger *slog.Logger
	// Registry is where the metrics go and what /metrics serves; nil
	// makes a new one. Run adds the Go and process collectors, so it
	// must not hold them already.
	Registry *prometheus.Registry
	// Version is shown in each receiver's "serving" line.
	Version string
	// Load reads the configuration again for a reload on SIGHUP or POST
	// /-/reload; nil reloads only the auth and TLS files there.
	Load func() (Config, error)
	// Export, if not nil, builds the handler of GET /api/v1/export over
	// the open store.
	Export func(st *store.Store, log *slog.Logger) http.Handler
}

// Daemon is one running relay: its store, receivers and forwarders.
type Daemon struct {
	cfg  Config
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	rt       *runningRelay   // set while Run runs
	reloader *configReloader // set while Run runs
}

// New checks cfg (finishing it if Finish was not called) and returns a
// Daemon that Run starts; nothing is opened or bound yet.
func New(cfg Config, opts Options) (*Daemon, error) {
	if cfg.receivers == nil {
		if err := cfg.Finish(); err != nil {
			return nil, fmt.Errorf("configuration: %w", err)
		}
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Daemon{cfg: cfg, opts: opts, log: log}, nil
}

// Run opens the store, starts the forwarders and the receivers, and serves
// until ctx ends or a receiver fails by itself; then it shuts down in
// order: stop accepting (requests in progress finish), stop forwarders,
// close the store. SIGHUP reloads the configuration while it runs. Run
// registers the relay's metrics with the Registry, so it runs once per
// Daemon.
func (d *Daemon) Run(ctx context.Context) error {
	return d.serve(ctx, d.cfg, d.log, d.opts.Load)
}

// Reload moves the running relay to cfg, as SIGHUP does, after re-reading
// the auth and TLS files. Destinations added get forwarders, removed ones
// have them stopped (their queues stay), changed ones restart; receivers
// added start, removed ones stop gracefully, those with a new address or
// limits restart, those with new forward_to or routes re-route in place.
// Settings only a restart applies (data_dir, logging, ...) keep their
// running values, with a warning. What fails keeps the configuration in
// force and is returned; ErrNotRunning outside Run.
func (d *Daemon) Reload(ctx context.Context, cfg Config) error {
	d.mu.Lock()
	r := d.reloader
	d.mu.Unlock()
	if r == nil {
		return ErrNotRunning
	}
	return r.reload(ctx, "Reload", func() (Config, error) {
		if cfg.receivers == nil {
			return cfg, cfg.Finish()
		}
		return cfg, nil
	})
}

// Ready reports whether the relay serves: Run has started its receivers
// and is not shutting down.
func (d *Daemon) Ready() bool {
	d.mu.Lock()
	rt := d.rt
	d.mu.Unlock()
	return rt != nil && rt.ready.Load()
}

// Addrs maps each serving receiver to the address it listens on (the port
// the system chose, for a listen address with port 0); empty unless Run
// runs.
func (d *Daemon) Addrs() map[string]string {
	d.mu.Lock()
	rt := d.rt
	d.mu.Unlock()
	if rt == nil {
		return map[string]string{}
	}
	return rt.addrs()
}

// serve is Run: it runs the relay until ctx ends.
func (d *Daemon) serve(ctx context.Context, cfg Config, log *slog.Logger, load func() (Config, error)) error {
	reg := d.opts.Registry
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	commitSeconds := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "pyrorelay_store_commit_duration_seconds",
		Help:    "Time of one store transaction, fsync included.",
		Buckets: prometheus.ExponentialBuckets(0.0002, 2, 14),
	})
	commitWrites := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "pyrorelay_store_commit_writes",
		Help:    "Writes (puts, acks, moves) folded into one store transaction.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 10),
	})
	reg.MustRegister(commitSeconds, commitWrites)
	// Auth and TLS files load before the store opens: a typo in them
	// fails the start at once.
	acc, err := newAccess(cfg, log, reg)
	if err != nil {
		return err
	}

	if cfg.NoGroupCommit {
		log.Warn("group commit is off: one fsync per write (benchmarking only)")
	}
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pyrorelay_dropped_total",
		Help: "Entries dropped, oldest first, to make room under --when-full drop-oldest, by destination.",
	}, []string{"destination"})
	reg.MustRegister(dropped)
	dropLog := newDropLogger(log, 10*time.Second)
	defer dropLog.close()
	st, err := store.Open(cfg.DataDir, store.Options{
		NoGroupCommit: cfg.NoGroupCommit,
		OnCommit: func(d time.Duration, n int) {
			commitSeconds.Observe(d.Seconds())
			commitWrites.Observe(float64(n))
		},
		Limits: store.Limits{
			MaxQueueBytes: int64(cfg.MaxQueueSize),
			MaxTotalBytes: int64(cfg.MaxDiskUsage),
			DropOldest:    cfg.WhenFull == "drop-oldest",
			OnDrop: func(queue string, n int) {
				dropped.WithLabelValues(queue).Add(float64(n))
				dropLog.dropped(queue, n)
			},
		},
		MaxFileSize:      fileSizeCap(cfg.MaxDiskUsage),
		ArchiveRetention: cfg.ArchiveRetention,
		ArchiveMaxBytes:  int64(cfg.ArchiveMaxSize),
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("close store", "err", err)
		}
	}()
	for _, l := range st.RemovedLeftovers() {
		log.Warn("removed the leftover of an interrupted compact", "file", l.Path, "bytes", l.Bytes)
	}
	reg.MustRegister(relay.NewQueueCollector(st), newStoreSizeCollector(st.Path()))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pyrorelay_stored_bytes",
		Help: "Record bytes of all queued entries (dead letters included), each counted once however many queues hold it; the archive is not in it, though --max-disk-usage bounds both together.",
	}, func() float64 { _, b, _ := st.TotalBytes(); return float64(b) }))
	budget := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pyrorelay_disk_budget_bytes",
		Help: "The --max-disk-usage budget in bytes; 0 when there is none.",
	})
	budget.Set(float64(cfg.MaxDiskUsage))
	reg.MustRegister(budget)
	reg.MustRegister(newCommitCollector(st))

	names := cfg.DestinationNames()
	var ready atomic.Bool
	// Receivers and forwarders live in rt, which a SIGHUP reload changes
	// (reload.go).
	rt := newRunningRelay(cfg, st, reg, log, relay.NewMetrics(reg), dropped, acc, &ready)
	rt.version = d.opts.Version
	if d.opts.Export != nil {
		rt.exportAPI = d.opts.Export(st, log)
	}
	if err := rt.startForwarders(); err != nil {
		return err
	}
	// Receivers finish the requests in progress (and so their commits),
	// then forwarders finish the attempts in flight (bounded by each
	// destination's timeout) and ack what succeeded; the rest stays
	// queued. Deferred for the early returns; the normal way out calls
	// it below.
	shutdown := sync.OnceFunc(func() { rt.shutdown(cfg.ShutdownTimeout) })
	defer shutdown()
	known := names
	if len(names) > 0 && !cfg.KeepHeld {
		known = append(slices.Clone(names), store.HoldQueue) // released below
	}
	reportOrphans(st, known, log)
	// Deferred after st.Close, so it runs before it.
	defer startReleaseHeld(st, cfg, log)()
	// Deferred after st.Close, so it runs before it.
	defer startArchiveSweeper(st, cfg, log)()
	if len(names) == 0 {
		log.Warn("no destination configured: running store-only; every push is kept on disk in queue " + store.HoldQueue)
	}
	if cfg.SelfProfile {
		if len(names) == 0 {
			log.Warn("self-profiling in store-only mode: the relay's own profiles are kept on disk with the rest")
		}
		// rt puts into every destination in force, reloads included.
		stopProfile, err := startSelfProfile(rt, names, cfg.SelfProfileInterval, log)
		if err != nil {
			return err
		}
		// Deferred after st.Close, so it runs before it: the last CPU
		// profile is queued while the store is still open.
		defer stopProfile()
	}

	// Signals are caught before the first "serving" line: a SIGHUP sent
	// once the relay says it serves must reload, never kill it.
	stopAccess := acc.start(ctx) // TLS file watch
	defer stopAccess()
	// SIGHUP and POST /-/reload reload the auth and TLS files, receivers
	// and destinations.
	reloader := newConfigReloader(acc, rt, load, log, reg)
	rt.reloadAPI = func(ctx context.Context) error { return reloader.Reload(ctx, "POST "+httpserver.ReloadPath) }
	stopReload := reloader.watch(ctx)
	defer stopReload()
	d.setRunning(rt, reloader)
	defer d.setRunning(nil, nil)
	ready.Store(true)
	if err := rt.startReceivers(); err != nil {
		ready.Store(false)
		return err
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down: no new requests; finishing those in progress")
	case err := <-rt.errs:
		runErr = err
	}
	ready.Store(false)
	stopReload() // no reload may start receivers while they stop
	shutdown()
	log.Info("stopped")
	return runErr
}

// reportOrphans logs queues on disk that no configured destination drains.
func reportOrphans(st *store.Store, configured []string, log *slog.Logger) {
	stats, err := st.Stats()
	if err != nil {
		log.Error("read queue stats", "err", err)
		return
	}
	known := map[string]bool{}
	for _, n := range configured {
		known[n] = true
	}
	for name, s := range stats {
		if known[name] || (s.Entries == 0 && s.DeadEntries == 0) {
			continue
		}
		log.Warn("queue has no configured destination: kept as it is", "queue", name, "entries", s.Entries, "dead_letters", s.DeadEntries)
	}
}

// fileSizeCap is bbolt's hard cap on the file behind the byte budget: well
// above it, because pages are never full and deletes need free pages, and
// acks must always be able to commit on a store that is at its budget.
func fileSizeCap(budget ByteSize) int {
	if budget <= 0 {
		return 0
	}
	return int(2*budget + 64<<20)
}

func (d *Daemon) setRunning(rt *runningRelay, r *configReloader) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rt, d.reloader = rt, r
}
