package main

// serve's flags, each with its PYRORELAY_* environment variable, and how
// those the user set go over the YAML file (loadConfig). config check
// takes exactly these flags, drain a few of them.

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/daemon"
	"github.com/pyrorelay/pyrorelay/httpserver"
	"github.com/pyrorelay/pyrorelay/relay"
	"github.com/pyrorelay/pyrorelay/store"
)

func env(name string) []string { return []string{"PYRORELAY_" + name} }

func serveFlags() []cli.Flag {
	d := daemon.DefaultConfig()
	return []cli.Flag{
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
		&cli.BoolFlag{Name: "keep-held", EnvVars: env("KEEP_HELD"),
			Usage: "leave what a store-only relay kept (queue " + store.HoldQueue + ") where it is when destinations are configured, instead of queueing it for every destination"},
		// Access to the listener: inbound authentication, TLS and client
		// certificates (package daemon, access.go, loads and reloads them).
		&cli.StringFlag{Name: "auth-basic-users", EnvVars: env("AUTH_BASIC_USERS"), Usage: "htpasswd file of bcrypt hashes (htpasswd -B): clients must send one of these users; reloaded on SIGHUP"},
		&cli.StringFlag{Name: "auth-bearer-token-file", EnvVars: env("AUTH_BEARER_TOKEN_FILE"), Usage: "file of accepted bearer tokens, one per line; reloaded on SIGHUP"},
		&cli.BoolFlag{Name: "auth-protect-metrics", EnvVars: env("AUTH_PROTECT_METRICS"), Usage: "require credentials on /metrics, /-/healthy and /-/ready too"},
		&cli.StringFlag{Name: "tls-cert-file", EnvVars: env("TLS_CERT_FILE"), Usage: "serve TLS with this PEM certificate (chain); reloaded on SIGHUP and when it changes"},
		&cli.StringFlag{Name: "tls-key-file", EnvVars: env("TLS_KEY_FILE"), Usage: "PEM private key of --tls-cert-file"},
		&cli.StringFlag{Name: "tls-client-ca-file", EnvVars: env("TLS_CLIENT_CA_FILE"), Usage: "require client certificates signed by these PEM CAs (mTLS)"},
		durationFlag("tls-reload-interval", env("TLS_RELOAD_INTERVAL"), daemon.DefaultTLSReloadInterval, "check the TLS files for a change every `DURATION`; 0 reloads on SIGHUP only"),
		// The archive of delivered profiles.
		durationFlag("archive-retention", env("ARCHIVE_RETENTION"), 0, "keep delivered profiles for `DURATION` (by receive time, e.g. 7d) for pyrorelay replay --archive; 0 keeps none"),
		&cli.StringFlag{Name: "archive-max-size", EnvVars: env("ARCHIVE_MAX_SIZE"), Value: "0", Usage: "bound on the archive, e.g. 1GiB; oldest dropped first; 0 is none"},
		// Request limits: what clients can take while their requests are read.
		&cli.StringFlag{Name: "max-request-memory", EnvVars: env("MAX_REQUEST_MEMORY"), Value: "256MiB",
			Usage: "request bytes held in memory at once, all receivers together; a request that finds no room within 5s is answered 503 with Retry-After"},
		&cli.StringFlag{Name: "min-body-rate", EnvVars: env("MIN_BODY_RATE"), Value: "1KiB",
			Usage: "slowest a request body may arrive, per second, after 5s; slower clients get 408 and lose their connection; 0 disables"},
		&cli.IntFlag{Name: "max-concurrent-streams", EnvVars: env("MAX_CONCURRENT_STREAMS"), Value: httpserver.DefaultMaxConcurrentStreams,
			Usage: "requests in progress on one HTTP/2 connection (all requests together stay within --max-connections)"},
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
		if err := daemon.LoadConfigFile(path, &cfg); err != nil {
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
	set("auth-basic-users", func() { cfg.AuthBasicUsers = c.String("auth-basic-users") })
	set("auth-bearer-token-file", func() { cfg.AuthBearerTokenFile = c.String("auth-bearer-token-file") })
	set("auth-protect-metrics", func() { cfg.AuthProtectMetrics = c.Bool("auth-protect-metrics") })
	set("tls-cert-file", func() { cfg.TLSCertFile = c.String("tls-cert-file") })
	set("tls-key-file", func() { cfg.TLSKeyFile = c.String("tls-key-file") })
	set("tls-client-ca-file", func() { cfg.TLSClientCAFile = c.String("tls-client-ca-file") })
	set("tls-reload-interval", func() { cfg.TLSReloadInterval = c.Duration("tls-reload-interval") })
	set("archive-retention", func() { cfg.ArchiveRetention = c.Duration("archive-retention") })
	set("max-concurrent-streams", func() { cfg.MaxConcurrentStreams = c.Int("max-concurrent-streams") })
	for flag, dst := range map[string]*daemon.ByteSize{"max-body-size": &cfg.MaxBodySize, "max-queue-size": &cfg.MaxQueueSize,
		"max-disk-usage": &cfg.MaxDiskUsage, "archive-max-size": &cfg.ArchiveMaxSize,
		"max-request-memory": &cfg.MaxRequestMemory, "min-body-rate": &cfg.MinBodyRate} {
		if c.IsSet(flag) {
			n, err := daemon.ParseByteSize(c.String(flag))
			if err != nil {
				return cfg, fmt.Errorf("--%s: %w", flag, err)
			}
			*dst = n
		}
	}
	for _, v := range c.StringSlice("forward-to") {
		d, err := parseForwardTo(v)
		if err != nil {
			return cfg, err
		}
		cfg.OverrideDestination(d)
	}
	return cfg, nil
}

// parseForwardTo reads a --forward-to value, NAME=URL.
func parseForwardTo(v string) (relay.Destination, error) {
	name, url, ok := strings.Cut(v, "=")
	if !ok || name == "" || url == "" {
		return relay.Destination{}, fmt.Errorf("--forward-to %q: want NAME=URL, for example prod=https://profiles.example.com", relay.RedactURL(v))
	}
	return relay.Destination{Name: name, URL: url}, nil
}
