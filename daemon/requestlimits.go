package daemon

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

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

// DefaultRequestLimits are the limits with no flag and no file.
func DefaultRequestLimits() RequestLimits {
	return RequestLimits{
		MaxRequestMemory:     httpserver.DefaultMaxRequestMemory,
		MinBodyRate:          httpserver.DefaultMinBodyRate,
		MaxConcurrentStreams: httpserver.DefaultMaxConcurrentStreams,
	}
}

// check refuses limits that would refuse every request.
func (l RequestLimits) check() error {
	switch {
	case l.MaxRequestMemory <= 0:
		return fmt.Errorf("max_request_memory: must be positive, got %d", l.MaxRequestMemory)
	case l.MinBodyRate < 0:
		return fmt.Errorf("min_body_rate: must not be negative, got %d", l.MinBodyRate)
	case l.MaxConcurrentStreams <= 0:
		return fmt.Errorf("max_concurrent_streams: must be positive, got %d", l.MaxConcurrentStreams)
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
