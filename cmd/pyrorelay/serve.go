package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/adminapi"
	"github.com/pyrorelay/pyrorelay/buildinfo"
	"github.com/pyrorelay/pyrorelay/daemon"
)

func env(name string) []string { return []string{"PYRORELAY_" + name} }

func serveFlags() []cli.Flag {
	d := daemon.DefaultConfig()
	return append([]cli.Flag{
		&cli.StringFlag{Name: "config", EnvVars: env("CONFIG"), Usage: "YAML config file; flags given as well override it"},
		&cli.StringFlag{Name: "listen", EnvVars: env("LISTEN"), Value: d.Listen, Usage: "address to serve the ingest and Push APIs on (127.0.0.1:4040 to stay local)"},
		&cli.StringFlag{Name: "data-dir", EnvVars: env("DATA_DIR"), Value: d.DataDir, Usage: "directory of the bbolt queue file"},
		&cli.StringSliceFlag{Name: "forward-to", EnvVars: env("FORWARD_TO"), Usage: "destination NAME=URL, repeatable (env: comma-separated); none means store-only"},
		&cli.StringFlag{Name: "max-body-size", EnvVars: env("MAX_BODY_SIZE"), Value: "4MiB", Usage: "largest request body accepted (413 above); 4MiB is the Pyroscope server's default profile size limit (-validation.max-profile-size-bytes)"},
		&cli.IntFlag{Name: "max-connections", EnvVars: env("MAX_CONNECTIONS"), Value: d.MaxConnections, Usage: "most client connections served at once"},
		durationFlag("read-timeout", env("READ_TIMEOUT"), d.ReadTimeout, "read a whole request within `DURATION`"),
		durationFlag("write-timeout", env("WRITE_TIMEOUT"), d.WriteTimeout, "answer a request within `DURATION`"),
		durationFlag("idle-timeout", env("IDLE_TIMEOUT"), d.IdleTimeout, "close an idle keep-alive connection after `DURATION`"),
		&cli.IntFlag{Name: "forward-concurrency", EnvVars: env("FORWARD_CONCURRENCY"), Value: d.ForwardConcurrency, Usage: "requests in flight per destination while its queue keeps up"},
		&cli.IntFlag{Name: "forward-max-concurrency", EnvVars: env("FORWARD_MAX_CONCURRENCY"), Value: d.ForwardMaxConcurrency, Usage: "most requests in flight per destination while a backlog drains and it keeps answering (never below --forward-concurrency; equal to it keeps the number fixed)"},
		&cli.IntFlag{Name: "max-attempts", EnvVars: env("MAX_ATTEMPTS"), Value: d.MaxAttempts, Usage: "poison cap: failures singling an entry out before it is dead-lettered"},
		&cli.BoolFlag{Name: "tenant-passthrough", EnvVars: env("TENANT_PASSTHROUGH"), Usage: "forward the client's X-Scope-OrgID (a destination's tenant_id still wins)"},
		durationFlag("shutdown-timeout", env("SHUTDOWN_TIMEOUT"), d.ShutdownTimeout, "on SIGTERM, wait up to `DURATION` for requests and forwards in flight"),
		&cli.StringFlag{Name: "max-queue-size", EnvVars: env("MAX_QUEUE_SIZE"), Value: "0", Usage: "bound on each destination's queue, e.g. 2GiB; 0 is none"},
		&cli.StringFlag{Name: "max-disk-usage", EnvVars: env("MAX_DISK_USAGE"), Value: "0", Usage: "bound on all stored profiles together, e.g. 10GiB; 0 is none"},
		&cli.StringFlag{Name: "when-full", EnvVars: env("WHEN_FULL"), Value: d.WhenFull, Usage: "at a size bound: reject (answer 429 with Retry-After) or drop-oldest"},
		durationFlag("max-age", env("MAX_AGE"), 0, "move entries queued longer than `DURATION` (e.g. 7d) to dead-letter (reason expired); 0 keeps them forever"),
		&cli.StringFlag{Name: "log-level", EnvVars: env("LOG_LEVEL"), Value: d.LogLevel, Usage: "debug, info, warn or error"},
		&cli.StringFlag{Name: "log-format", EnvVars: env("LOG_FORMAT"), Value: d.LogFormat, Usage: "text or json"},
		&cli.BoolFlag{Name: "self-profile", EnvVars: env("SELF_PROFILE"), Usage: "profile the relay itself (CPU, heap, goroutines) and send the profiles through its own queues to every destination, as service_name=pyrorelay"},
		// Hidden: short profile periods let tests see self-profiles quickly.
		hidden(durationFlag("self-profile-interval", env("SELF_PROFILE_INTERVAL"), 0, "period of the self-profiles, a `DURATION` (default 10s)")),
		// Hidden: one fsync'd transaction per write, to measure what group
		// commit buys against it in the same benchmark run.
		&cli.BoolFlag{Name: "no-group-commit", EnvVars: env("NO_GROUP_COMMIT"), Hidden: true, Usage: "benchmarking only: one fsync per write"},
		keepHeldFlag(),
	}, append(append(accessFlags(), archiveFlags()...), requestLimitFlags()...)...)
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
// then every flag the user set; then it checks it all.
func configFromFlags(c *cli.Context) (daemon.Config, error) {
	cfg, err := loadConfig(c)
	if err != nil {
		return cfg, err
	}
	return cfg, cfg.Finish()
}

// loadConfig is configFromFlags without the final check, for commands that
// use only part of the configuration.
func loadConfig(c *cli.Context) (daemon.Config, error) {
	cfg := daemon.DefaultConfig()
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
	set("forward-max-concurrency", func() { cfg.ForwardMaxConcurrency = c.Int("forward-max-concurrency") })
	set("max-attempts", func() { cfg.MaxAttempts = c.Int("max-attempts") })
	set("tenant-passthrough", func() { cfg.TenantPassthrough = c.Bool("tenant-passthrough") })
	set("shutdown-timeout", func() { cfg.ShutdownTimeout = c.Duration("shutdown-timeout") })
	set("log-level", func() { cfg.LogLevel = c.String("log-level") })
	set("log-format", func() { cfg.LogFormat = c.String("log-format") })
	set("no-group-commit", func() { cfg.NoGroupCommit = c.Bool("no-group-commit") })
	set("self-profile", func() { cfg.SelfProfile = c.Bool("self-profile") })
	set("self-profile-interval", func() { cfg.SelfProfileInterval = c.Duration("self-profile-interval") })
	set("when-full", func() { cfg.WhenFull = c.String("when-full") })
	set("max-age", func() { cfg.MaxAge = c.Duration("max-age") })
	set("keep-held", func() { cfg.KeepHeld = c.Bool("keep-held") })
	for flag, dst := range map[string]*daemon.ByteSize{"max-queue-size": &cfg.MaxQueueSize, "max-disk-usage": &cfg.MaxDiskUsage} {
		if c.IsSet(flag) {
			n, err := parseByteSize(c.String(flag))
			if err != nil {
				return cfg, fmt.Errorf("--%s: %w", flag, err)
			}
			*dst = n
		}
	}
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
		cfg.Destinations = overrideDestination(cfg.Destinations, d)
	}
	applyAccessFlags(c, &cfg)
	if err := applyArchiveFlags(c, &cfg); err != nil {
		return cfg, err
	}
	if err := applyRequestLimitFlags(c, &cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func newLogger(w io.Writer, cfg daemon.Config) *slog.Logger {
	level, _ := daemon.ParseLevel(cfg.LogLevel)
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
	setGCDefault()

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
	// A reload reads the config file again, and the flags and environment
	// still override it.
	return serve(ctx, cfg, log, func() (daemon.Config, error) { return configFromFlags(c) })
}

// defaultGOGC is the garbage collector's target for `serve` when the
// environment sets no GOGC. Every request allocates its body, and bbolt
// allocates the pages it writes: with the Go default of 100 the relay
// spends a large share of its CPU allocating and collecting, for a heap
// only a little smaller (BENCHMARKS.md has the figures). GOMEMLIMIT, if
// set, still caps the heap.
const defaultGOGC = 200

// setGCDefault applies defaultGOGC unless GOGC is set, as Prometheus does
// with its own default.
func setGCDefault() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGOGC)
	}
}

// serve runs the relay of cfg until ctx ends; load, if not nil, reads the
// configuration again on SIGHUP and POST /-/reload.
func serve(ctx context.Context, cfg daemon.Config, log *slog.Logger, load func() (daemon.Config, error)) error {
	reg := prometheus.NewRegistry()
	buildinfo.Register(reg, buildinfo.Read(version, revision))
	d, err := daemon.New(cfg, daemon.Options{Logger: log, Registry: reg, Version: version, Load: load, Export: adminapi.ExportHandler})
	if err != nil {
		return err
	}
	return d.Run(ctx)
}
