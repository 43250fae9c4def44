package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/daemon"
	"github.com/pyrorelay/pyrorelay/httpserver"
)

// requestLimitFlags are serve's request limit settings.
func requestLimitFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "max-request-memory", EnvVars: env("MAX_REQUEST_MEMORY"), Value: "256MiB",
			Usage: "request bytes held in memory at once, all receivers together; a request that finds no room within 5s is answered 503 with Retry-After"},
		&cli.StringFlag{Name: "min-body-rate", EnvVars: env("MIN_BODY_RATE"), Value: "1KiB",
			Usage: "slowest a request body may arrive, per second, after 5s; slower clients get 408 and lose their connection; 0 disables"},
		&cli.IntFlag{Name: "max-concurrent-streams", EnvVars: env("MAX_CONCURRENT_STREAMS"), Value: httpserver.DefaultMaxConcurrentStreams,
			Usage: "requests in progress on one HTTP/2 connection (all requests together stay within --max-connections)"},
	}
}

// applyRequestLimitFlags reads the request limit flags over the YAML and
// checks them.
func applyRequestLimitFlags(c *cli.Context, cfg *daemon.Config) error {
	for flag, dst := range map[string]*daemon.ByteSize{"max-request-memory": &cfg.MaxRequestMemory, "min-body-rate": &cfg.MinBodyRate} {
		if c.IsSet(flag) {
			n, err := parseByteSize(c.String(flag))
			if err != nil {
				return fmt.Errorf("--%s: %w", flag, err)
			}
			*dst = n
		}
	}
	if c.IsSet("max-concurrent-streams") {
		cfg.MaxConcurrentStreams = c.Int("max-concurrent-streams")
	}
	switch {
	case cfg.MaxRequestMemory <= 0:
		return fmt.Errorf("max_request_memory: must be positive, got %d", cfg.MaxRequestMemory)
	case cfg.MinBodyRate < 0:
		return fmt.Errorf("min_body_rate: must not be negative, got %d", cfg.MinBodyRate)
	case cfg.MaxConcurrentStreams <= 0:
		return fmt.Errorf("max_concurrent_streams: must be positive, got %d", cfg.MaxConcurrentStreams)
	}
	return nil
}
