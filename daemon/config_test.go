package daemon

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/relay"
)

// TestFinishChecksArchiveAndRequestLimits: Finish refuses the archive
// settings and request limits that cannot work, naming the YAML key,
// whether they came from the file, a flag or a library caller.
func TestFinishChecksArchiveAndRequestLimits(t *testing.T) {
	for _, c := range []struct {
		name string
		set  func(*Config)
		want string
	}{
		{"defaults", func(*Config) {}, ""},
		{"negative retention", func(c *Config) { c.ArchiveRetention = -time.Hour }, "archive_retention: must not be negative, got -1h0m0s"},
		{"negative archive size", func(c *Config) { c.ArchiveMaxSize = -1 }, "archive_max_size: must not be negative, got -1"},
		{"no request memory", func(c *Config) { c.MaxRequestMemory = 0 }, "max_request_memory: must be positive, got 0"},
		{"negative body rate", func(c *Config) { c.MinBodyRate = -1 }, "min_body_rate: must not be negative, got -1"},
		{"no streams", func(c *Config) { c.MaxConcurrentStreams = 0 }, "max_concurrent_streams: must be positive, got 0"},
		// Checked before the rest, as the flags' own checks were.
		{"before listen", func(c *Config) { c.ArchiveMaxSize = -1; c.Listen = "" }, "archive_max_size: must not be negative, got -1"},
	} {
		cfg := DefaultConfig()
		c.set(&cfg)
		err := cfg.Finish()
		if (err == nil) != (c.want == "") || (err != nil && err.Error() != c.want) {
			t.Errorf("%s: Finish = %v, want %q", c.name, err, c.want)
		}
	}
}

func TestNewLogger(t *testing.T) {
	for _, c := range []struct {
		level, format string
		want          string
		dropsInfo     bool
	}{
		{"info", "text", `level=INFO msg=hello k=v`, false},
		{"warn", "json", `"level":"INFO"`, true},
		{"debug", "json", `"msg":"hello","k":"v"`, false},
	} {
		var b bytes.Buffer
		cfg := DefaultConfig()
		cfg.LogLevel, cfg.LogFormat = c.level, c.format
		cfg.NewLogger(&b).Info("hello", "k", "v")
		if got := b.String(); c.dropsInfo != (got == "") || (!c.dropsInfo && !strings.Contains(got, c.want)) {
			t.Errorf("%s/%s: logged %q", c.level, c.format, got)
		}
	}
}

// TestOverrideDestination: a destination of the same name is replaced
// whole (its credentials do not follow to the new URL); a new one is added.
func TestOverrideDestination(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Destinations = []relay.Destination{{Name: "prod", URL: "https://old", BearerToken: "secret"}, {Name: "staging", URL: "http://s"}}
	cfg.OverrideDestination(relay.Destination{Name: "prod", URL: "http://new"})
	cfg.OverrideDestination(relay.Destination{Name: "dev", URL: "http://d"})
	want := []relay.Destination{{Name: "prod", URL: "http://new"}, {Name: "staging", URL: "http://s"}, {Name: "dev", URL: "http://d"}}
	if !reflect.DeepEqual(cfg.Destinations, want) {
		t.Errorf("destinations %+v, want %+v", cfg.Destinations, want)
	}
}

func TestCheckDataDir(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{dir: "", filepath.Join(dir, "new"): "", file: "data_dir: " + file + " is not a directory"} {
		cfg := Config{DataDir: path}
		err := cfg.CheckDataDir()
		if (err == nil) != (want == "") || (err != nil && err.Error() != want) {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
	}
}
