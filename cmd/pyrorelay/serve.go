package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/httpserver"
	"github.com/pyrorelay/pyrorelay/relay"
	"github.com/pyrorelay/pyrorelay/store"
)

func env(name string) []string { return []string{"PYRORELAY_" + name} }

func serveFlags() []cli.Flag {
	d := defaultConfig()
	return []cli.Flag{
		&cli.StringFlag{Name: "config", EnvVars: env("CONFIG"), Usage: "YAML config file; flags given as well override it"},
		&cli.StringFlag{Name: "listen", EnvVars: env("LISTEN"), Value: d.Listen, Usage: "address to serve the ingest and Push APIs on (127.0.0.1:4040 to stay local)"},
		&cli.StringFlag{Name: "data-dir", EnvVars: env("DATA_DIR"), Value: d.DataDir, Usage: "directory of the bbolt queue file"},
		&cli.StringSliceFlag{Name: "forward-to", EnvVars: env("FORWARD_TO"), Usage: "destination NAME=URL, repeatable (env: comma-separated); none means store-only"},
		&cli.StringFlag{Name: "max-body-size", EnvVars: env("MAX_BODY_SIZE"), Value: "64MiB", Usage: "largest request body accepted (413 above)"},
		&cli.IntFlag{Name: "max-connections", EnvVars: env("MAX_CONNECTIONS"), Value: d.MaxConnections, Usage: "most client connections served at once"},
		&cli.DurationFlag{Name: "read-timeout", EnvVars: env("READ_TIMEOUT"), Value: d.ReadTimeout, Usage: "time to read a whole request"},
		&cli.DurationFlag{Name: "write-timeout", EnvVars: env("WRITE_TIMEOUT"), Value: d.WriteTimeout, Usage: "time to answer a request"},
		&cli.DurationFlag{Name: "idle-timeout", EnvVars: env("IDLE_TIMEOUT"), Value: d.IdleTimeout, Usage: "how long an idle keep-alive connection stays open"},
		&cli.IntFlag{Name: "forward-concurrency", EnvVars: env("FORWARD_CONCURRENCY"), Value: d.ForwardConcurrency, Usage: "requests in flight per destination"},
		&cli.IntFlag{Name: "max-attempts", EnvVars: env("MAX_ATTEMPTS"), Value: d.MaxAttempts, Usage: "poison cap: failures singling an entry out before it is dead-lettered"},
		&cli.BoolFlag{Name: "tenant-passthrough", EnvVars: env("TENANT_PASSTHROUGH"), Usage: "forward the client's X-Scope-OrgID (a destination's tenant_id still wins)"},
		&cli.DurationFlag{Name: "shutdown-timeout", EnvVars: env("SHUTDOWN_TIMEOUT"), Value: d.ShutdownTimeout, Usage: "on SIGTERM, how long to wait for requests and forwards in flight"},
		&cli.StringFlag{Name: "log-level", EnvVars: env("LOG_LEVEL"), Value: d.LogLevel, Usage: "debug, info, warn or error"},
		&cli.StringFlag{Name: "log-format", EnvVars: env("LOG_FORMAT"), Value: d.LogFormat, Usage: "text or json"},
	}
}

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "accept profiles, store them durably, forward them to every destination",
		Description: `Examples:
   pyrorelay serve
   pyrorelay serve --data-dir /var/lib/pyrorelay \
     --forward-to staging=http://pyroscope-staging:4040 \
     --forward-to prod=https://profiles.example.com
   pyrorelay serve --config pyrorelay.yaml

With no destination, serve runs store-only: every push is kept on disk.`,
		Flags:  serveFlags(),
		Action: runServe,
	}
}

// configFromFlags builds the configuration: defaults, then the YAML file,
// then every flag the user set.
func configFromFlags(c *cli.Context) (Config, error) {
	cfg := defaultConfig()
	if path := c.String("config"); path != "" {
		if err := loadConfigFile(path, &cfg); err != nil {
			return cfg, err
		}
	}
	set := func(name string, apply func()) {
		if c.IsSet(name) {
			apply()
		}
	}
	set("listen", func() { cfg.Listen = c.String("listen") })
	set("data-dir", func() { cfg.DataDir = c.String("data-dir") })
	set("max-connections", func() { cfg.MaxConnections = c.Int("max-connections") })
	set("read-timeout", func() { cfg.ReadTimeout = c.Duration("read-timeout") })
	set("write-timeout", func() { cfg.WriteTimeout = c.Duration("write-timeout") })
	set("idle-timeout", func() { cfg.IdleTimeout = c.Duration("idle-timeout") })
	set("forward-concurrency", func() { cfg.ForwardConcurrency = c.Int("forward-concurrency") })
	set("max-attempts", func() { cfg.MaxAttempts = c.Int("max-attempts") })
	set("tenant-passthrough", func() { cfg.TenantPassthrough = c.Bool("tenant-passthrough") })
	set("shutdown-timeout", func() { cfg.ShutdownTimeout = c.Duration("shutdown-timeout") })
	set("log-level", func() { cfg.LogLevel = c.String("log-level") })
	set("log-format", func() { cfg.LogFormat = c.String("log-format") })
	if c.IsSet("max-body-size") {
		n, err := parseByteSize(c.String("max-body-size"))
		if err != nil {
			return cfg, fmt.Errorf("--max-body-size: %w", err)
		}
		cfg.MaxBodySize = n
	}
	for _, v := range c.StringSlice("forward-to") {
		d, err := parseForwardTo(v)
		if err != nil {
			return cfg, err
		}
		cfg.Destinations = append(cfg.Destinations, d)
	}
	return cfg, cfg.finish()
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log_level: %q is not debug, info, warn or error", s)
	}
	return l, nil
}

func newLogger(w io.Writer, cfg Config) *slog.Logger {
	level, _ := parseLevel(cfg.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func runServe(c *cli.Context) error {
	cfg, err := configFromFlags(c)
	if err != nil {
		return err
	}
	log := newLogger(c.App.ErrWriter, cfg)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		// After the first signal, a second one exits at once. Everything
		// acknowledged is already on disk, so this loses nothing.
		<-ctx.Done()
		stop()
		again := make(chan os.Signal, 1)
		signal.Notify(again, syscall.SIGTERM, syscall.SIGINT)
		<-again
		log.Warn("second signal: exiting now")
		os.Exit(1)
	}()
	return serve(ctx, cfg, log)
}

// serve runs the relay until ctx ends, then shuts down in order: stop
// accepting, stop forwarders, close the store.
func serve(ctx context.Context, cfg Config, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
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

	st, err := store.Open(cfg.DataDir, store.Options{OnCommit: func(d time.Duration, n int) {
		commitSeconds.Observe(d.Seconds())
		commitWrites.Observe(float64(n))
	}})
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("close store", "err", err)
		}
	}()
	reg.MustRegister(relay.NewQueueCollector(st))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "pyrorelay_store_commits_total", Help: "Store transactions committed (each one fsync).",
	}, func() float64 { c, _ := st.CommitCounts(); return float64(c) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "pyrorelay_store_writes_total", Help: "Writes carried by store transactions; writes/commits is the group-commit factor.",
	}, func() float64 { _, w := st.CommitCounts(); return float64(w) }))

	names := make([]string, 0, len(cfg.Destinations))
	metrics := relay.NewMetrics(reg)
	var forwarders []*relay.Forwarder
	for _, d := range cfg.Destinations {
		f, err := relay.NewForwarder(d, st, metrics, log)
		if err != nil {
			return err
		}
		forwarders = append(forwarders, f)
		names = append(names, d.Name)
	}
	reportOrphans(st, names, log)
	if len(names) == 0 {
		log.Warn("no destination configured: running store-only; every push is kept on disk in queue " + store.HoldQueue)
	}

	fwdCtx, stopForwarders := context.WithCancel(context.Background())
	defer stopForwarders()
	var fwdWG sync.WaitGroup
	for _, f := range forwarders {
		fwdWG.Add(1)
		go func() {
			defer fwdWG.Done()
			f.Run(fwdCtx)
		}()
	}

	var ready atomic.Bool
	srv := httpserver.New(httpserver.Config{
		Queues:            names,
		MaxBodySize:       int64(cfg.MaxBodySize),
		MaxConnections:    cfg.MaxConnections,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		TenantPassthrough: cfg.TenantPassthrough,
	}, httpserver.Options{Store: st, Logger: log, Registry: reg, Gatherer: reg, Ready: ready.Load})

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		stopForwarders()
		fwdWG.Wait()
		return fmt.Errorf("listen: %w", err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	ready.Store(true)
	log.Info("serving", "addr", ln.Addr().String(), "data_dir", cfg.DataDir, "destinations", strings.Join(names, ","), "version", version)

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down: no new requests; finishing those in progress")
	case err := <-serveErr:
		runErr = fmt.Errorf("serve: %w", err)
	}
	ready.Store(false)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("requests still in progress at the shutdown deadline", "err", err)
	}
	// Forwarders finish the attempts in flight (bounded by each
	// destination's timeout) and ack what succeeded; the rest stays queued.
	stopForwarders()
	fwdWG.Wait()
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
