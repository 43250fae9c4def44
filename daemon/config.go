package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/prometheus/common/model"

	"github.com/pyrorelay/pyrorelay/relay"
)

// Config is everything a running relay needs; it is the YAML file of
// `pyrorelay serve`, whose keys are the flag names with underscores. Call
// Finish before use: it fills in the defaults and checks everything.
type Config struct {
	Listen                string              `yaml:"listen"`
	DataDir               string              `yaml:"data_dir"`
	MaxBodySize           ByteSize            `yaml:"max_body_size"`
	MaxConnections        int                 `yaml:"max_connections"`
	ReadTimeout           time.Duration       `yaml:"read_timeout"`
	WriteTimeout          time.Duration       `yaml:"write_timeout"`
	IdleTimeout           time.Duration       `yaml:"idle_timeout"`
	ForwardConcurrency    int                 `yaml:"forward_concurrency"`
	ForwardMaxConcurrency int                 `yaml:"forward_max_concurrency"`
	MaxAttempts           int                 `yaml:"max_attempts"`
	TenantPassthrough     bool                `yaml:"tenant_passthrough"`
	ShutdownTimeout       time.Duration       `yaml:"shutdown_timeout"`
	LogLevel              string              `yaml:"log_level"`
	LogFormat             string              `yaml:"log_format"`
	Destinations          []relay.Destination `yaml:"destinations"`
	// Receivers are the relay's listeners (receivers.go); none means one,
	// "default", on listen, forwarding to every destination.
	Receivers []Receiver `yaml:"receivers,omitempty"`
	// receivers is the effective list finish builds: Receivers with
	// their limits filled in and routes compiled, or the default one.
	receivers []Receiver
	// MaxQueueSize bounds each destination's queue; 0 is no bound.
	MaxQueueSize ByteSize `yaml:"max_queue_size"`
	// MaxDiskUsage bounds all stored entries together; 0 is no bound.
	MaxDiskUsage ByteSize `yaml:"max_disk_usage"`
	// WhenFull is "reject" (answer 429) or "drop-oldest".
	WhenFull string `yaml:"when_full"`
	// MaxAge is the default max_age of destinations; 0 keeps entries
	// forever.
	MaxAge time.Duration `yaml:"max_age"`
	// Inbound auth and listener TLS (access.go). Files, never the secrets
	// themselves, so the config file can be shared and logged.
	AuthBasicUsers      string        `yaml:"auth_basic_users"`
	AuthBearerTokenFile string        `yaml:"auth_bearer_token_file"`
	AuthProtectMetrics  bool          `yaml:"auth_protect_metrics"`
	TLSCertFile         string        `yaml:"tls_cert_file"`
	TLSKeyFile          string        `yaml:"tls_key_file"`
	TLSClientCAFile     string        `yaml:"tls_client_ca_file"`
	TLSReloadInterval   time.Duration `yaml:"tls_reload_interval"`
	// ArchiveRetention and ArchiveMaxSize keep delivered profiles for
	// replay (archive.go); both 0 keeps none.
	ArchiveRetention time.Duration `yaml:"archive_retention"`
	ArchiveMaxSize   ByteSize      `yaml:"archive_max_size"`
	// SelfProfile sends the relay's own CPU, heap and goroutine profiles
	// through its queues to its destinations (selfprofile.go).
	SelfProfile bool `yaml:"self_profile"`
	// KeepHeld leaves what a store-only relay kept in the hold queue when
	// destinations are configured (held.go); otherwise it is queued for
	// every destination at start.
	KeepHeld bool `yaml:"keep_held"`
	// SelfProfileInterval is the profile period; a hidden flag for tests,
	// 0 means the default of 10s.
	SelfProfileInterval time.Duration `yaml:"-"`
	// NoGroupCommit gives every store write its own fsync'd transaction.
	// It exists only to measure what group commit buys (pyrorelay-bench);
	// it is a hidden flag and has no YAML key.
	NoGroupCommit bool `yaml:"-"`
	// RequestLimits bound what clients can take while their requests
	// are read (requestlimits.go).
	RequestLimits `yaml:",inline"`
}

// DefaultConfig is the configuration of `pyrorelay serve` with no flag
// and no file.
func DefaultConfig() Config {
	return Config{
		Listen:                ":4040",
		DataDir:               "./pyrorelay-data",
		MaxBodySize:           4 << 20, // the Pyroscope server's default profile size limit
		MaxConnections:        100,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           120 * time.Second,
		ForwardConcurrency:    relay.DefaultConcurrency,
		ForwardMaxConcurrency: relay.DefaultMaxConcurrency,
		MaxAttempts:           relay.DefaultMaxAttempts,
		ShutdownTimeout:       30 * time.Second,
		LogLevel:              "info",
		LogFormat:             "text",
		WhenFull:              "reject",
		TLSReloadInterval:     DefaultTLSReloadInterval,
		RequestLimits:         DefaultRequestLimits(),
	}
}

// endpointSuffixes are the paths the relay adds to a destination's URL.
var endpointSuffixes = []string{"/ingest", "/push.v1.PusherService/Push", "/push.v1.PusherService"}

// CheckBaseURL refuses a destination URL that names an endpoint: the relay
// adds /ingest and the Push path to the base URL itself, so
// http://x/ingest would be sent http://x/ingest/ingest.
func CheckBaseURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return nil // Validate says what is wrong with it
	}
	p := strings.TrimRight(u.Path, "/")
	for _, suffix := range endpointSuffixes {
		if strings.HasSuffix(p, suffix) {
			u.Path = strings.TrimSuffix(p, suffix)
			return fmt.Errorf("url %s ends in %s: give the server's base URL, %s; the relay adds /ingest and the Push path itself",
				relay.RedactURL(raw), suffix, relay.RedactURL(u.String()))
		}
	}
	return nil
}

// Finish applies the global destination defaults and checks everything,
// naming the field that is wrong.
func (c *Config) Finish() error {
	if err := c.checkArchive(); err != nil {
		return err
	}
	if err := c.RequestLimits.check(); err != nil {
		return err
	}
	if c.Listen == "" {
		return errors.New("listen: must not be empty")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: %q is not host:port: %v", c.Listen, err)
	}
	if c.DataDir == "" {
		return errors.New("data_dir: must not be empty")
	}
	if c.MaxBodySize <= 0 {
		return fmt.Errorf("max_body_size: must be positive, got %d", c.MaxBodySize)
	}
	if c.MaxConnections <= 0 {
		return fmt.Errorf("max_connections: must be positive, got %d", c.MaxConnections)
	}
	if c.ForwardConcurrency <= 0 {
		return fmt.Errorf("forward_concurrency: must be positive, got %d", c.ForwardConcurrency)
	}
	if c.ForwardMaxConcurrency <= 0 {
		return fmt.Errorf("forward_max_concurrency: must be positive, got %d", c.ForwardMaxConcurrency)
	}
	if c.MaxAttempts <= 0 {
		return fmt.Errorf("max_attempts: must be positive, got %d", c.MaxAttempts)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("log_format: %q is not text or json", c.LogFormat)
	}
	if _, err := ParseLevel(c.LogLevel); err != nil {
		return err
	}
	switch c.WhenFull {
	case "reject", "drop-oldest":
	default:
		return fmt.Errorf("when_full: %q is not reject or drop-oldest", c.WhenFull)
	}
	if c.MaxQueueSize < 0 || c.MaxDiskUsage < 0 || c.MaxAge < 0 {
		return errors.New("max_queue_size, max_disk_usage and max_age must not be negative")
	}
	if err := c.finishAccess(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i := range c.Destinations {
		d := &c.Destinations[i]
		if d.Concurrency == 0 {
			d.Concurrency = c.ForwardConcurrency
		}
		if d.MaxConcurrency == 0 {
			// A top-level maximum below a destination's own concurrency
			// is no reason to refuse the file: it just adds nothing there.
			d.MaxConcurrency = max(c.ForwardMaxConcurrency, d.Concurrency)
		}
		if d.MaxAttempts == 0 {
			d.MaxAttempts = c.MaxAttempts
		}
		if d.MaxAge == 0 {
			d.MaxAge = c.MaxAge
		}
		if err := d.Validate(); err != nil {
			return fmt.Errorf("destinations[%d]: %w", i, err)
		}
		if err := CheckBaseURL(d.URL); err != nil {
			return fmt.Errorf("destinations[%d] %q: %w", i, d.Name, err)
		}
		if seen[d.Name] {
			return fmt.Errorf("destinations[%d]: name %q is used twice", i, d.Name)
		}
		seen[d.Name] = true
	}
	return c.FinishReceivers()
}

// ByteSize is a size in bytes that reads "64MiB", "2GiB", "500KB" or "1024".
type ByteSize int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// ParseByteSize reads a size: a number with an optional unit (KiB, MiB,
// GiB, TiB, KB, MB, GB, TB, B).
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	}
	mult := int64(1)
	num := s
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			mult, num = u.mult, strings.TrimSpace(strings.TrimSuffix(s, u.suffix))
			break
		}
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional unit (KiB, MiB, GiB, KB, MB, GB)", s)
	}
	return ByteSize(n * float64(mult)), nil
}

// ParseLevel reads a log level: debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log_level: %q is not debug, info, warn or error", s)
	}
	return l, nil
}

// OverrideDestination adds d to the destinations, or puts it in place of
// the one of the same name: d (a --forward-to) says everything about it,
// so nothing of the old one is kept, its credentials least of all, which
// must not go to a new URL.
func (c *Config) OverrideDestination(d relay.Destination) {
	for i := range c.Destinations {
		if c.Destinations[i].Name == d.Name {
			c.Destinations[i] = d
			return
		}
	}
	c.Destinations = append(c.Destinations, d)
}

// CheckDataDir refuses a data_dir that exists and is not a directory; one
// that does not exist yet is fine (serve creates it).
func (c *Config) CheckDataDir() error {
	if fi, err := os.Stat(c.DataDir); err == nil && !fi.IsDir() {
		return fmt.Errorf("data_dir: %s is not a directory", c.DataDir)
	}
	return nil
}

// DestinationNames lists the destinations in config order.
func (c *Config) DestinationNames() []string {
	names := make([]string, 0, len(c.Destinations))
	for _, d := range c.Destinations {
		names = append(names, d.Name)
	}
	return names
}

// Feeds maps each destination to the receivers that can send to it (by
// forward_to or a route); in store-only mode the hold queue is fed by every
// receiver. It is empty before Finish.
func (c *Config) Feeds() map[string][]string { return feeds(c.receivers) }

// MarshalYAML writes a size the way it is read: "64MiB" rather than
// 67108864, so the printed configuration reads like the file.
func (b ByteSize) MarshalYAML() (any, error) {
	n := int64(b)
	if n <= 0 {
		return n, nil
	}
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix, nil
		}
	}
	return n, nil
}

// ParseDuration reads Go durations ("1.5h", "250ms") and Prometheus ones,
// which add days, weeks and years ("7d", "2w", "1d12h"): the form of every
// duration in the config file and the flags.
func ParseDuration(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	d, err := model.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: want a number and a unit, such as 30s, 15m, 12h, 7d or 2w", s)
	}
	return time.Duration(d), nil
}
