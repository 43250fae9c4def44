package main

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/httpserver"
)

// RequestLimits bound what clients can take of the relay while their
// requests are read: memory, connection slots held by slow bodies, and
// HTTP/2 streams. They apply to every receiver; changing them takes a
// restart.
type RequestLimits struct {
	// MaxRequestMemory is the one budget of request bytes held in memory
	// by all receivers together.
	MaxRequestMemory ByteSize `yaml:"max_request_memory"`
	// MinBodyRate is the slowest a body may arrive, per second, after a
	// few seconds' grace; 0 disables the check.
	MinBodyRate ByteSize `yaml:"min_body_rate"`
	// MaxConcurrentStreams bounds the requests in progress on one HTTP/2
	// connection.
	MaxConcurrentStreams int `yaml:"max_concurrent_streams"`
}

func defaultRequestLimits() RequestLimits {
	return RequestLimits{
		MaxRequestMemory:     httpserver.DefaultMaxRequestMemory,
		MinBodyRate:          httpserver.DefaultMinBodyRate,
		MaxConcurrentStreams: httpserver.DefaultMaxConcurrentStreams,
	}
}

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
func applyRequestLimitFlags(c *cli.Context, cfg *Config) error {
	for flag, dst := range map[string]*ByteSize{"max-request-memory": &cfg.MaxRequestMemory, "min-body-rate": &cfg.MinBodyRate} {
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

// newRequestBudget is the budget every receiver of the relay shares,
// registered with reg.
func newRequestBudget(l RequestLimits, reg prometheus.Registerer) *httpserver.Budget {
	b := httpserver.NewBudget(int64(l.MaxRequestMemory), 0)
	b.Register(reg)
	return b
}

// serverLimits fills in cfg's request limits.
func (l RequestLimits) serverLimits(cfg httpserver.Config) httpserver.Config {
	cfg.MinBodyRate = int64(l.MinBodyRate)
	if cfg.MinBodyRate == 0 {
		cfg.MinBodyRate = -1 // disabled
	}
	cfg.MaxConcurrentStreams = l.MaxConcurrentStreams
	return cfg
}
