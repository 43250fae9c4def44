package daemon

import (
	"maps"
	"slices"
	"testing"

	"github.com/pyrorelay/pyrorelay/relay"
)

// TestDefaultReceiver: without receivers:, the flags' relay is one
// receiver, "default", on listen with the top-level limits, forwarding to
// every destination.
func TestDefaultReceiver(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:4041"
	cfg.MaxConnections = 7
	cfg.Destinations = []relay.Destination{{Name: "prod", URL: "http://127.0.0.1:9"}, {Name: "staging", URL: "http://127.0.0.1:10"}}
	if err := cfg.Finish(); err != nil {
		t.Fatal(err)
	}
	if len(cfg.receivers) != 1 {
		t.Fatalf("%d receivers, want 1", len(cfg.receivers))
	}
	r := cfg.receivers[0]
	if r.Name != defaultReceiver || r.Listen != "127.0.0.1:4041" || r.MaxConnections != 7 || r.MaxBodySize != cfg.MaxBodySize ||
		!slices.Equal(r.ForwardTo, []string{"prod", "staging"}) || !slices.Equal(r.table.Route(nil, ""), []string{"prod", "staging"}) {
		t.Errorf("default receiver %+v", r)
	}
	if len(cfg.Receivers) != 0 {
		t.Errorf("the default receiver leaked into the YAML field: %+v", cfg.Receivers)
	}
	if f := cfg.Feeds(); !maps.EqualFunc(f, map[string][]string{"prod": {"default"}, "staging": {"default"}}, slices.Equal) {
		t.Errorf("feeds %v", f)
	}

	storeOnly := DefaultConfig()
	if err := storeOnly.Finish(); err != nil {
		t.Fatal(err)
	}
	if f := feeds(storeOnly.receivers); !maps.EqualFunc(f, map[string][]string{"_hold": {"default"}}, slices.Equal) {
		t.Errorf("store-only feeds %v", f)
	}
}

// TestRestartOnlyChanges: a reload applies receivers and destinations and
// names every other setting it had to leave as it was.
func TestRestartOnlyChanges(t *testing.T) {
	old := DefaultConfig()
	next := old
	next.Listen = "127.0.0.1:9999"
	next.MaxBodySize = 1
	next.Receivers = []Receiver{{Name: "x"}}
	if got := restartOnlyChanges(old, next); len(got) != 0 {
		t.Errorf("reloadable changes reported as needing a restart: %v", got)
	}
	next.DataDir = "/elsewhere"
	next.LogLevel = "debug"
	next.TenantPassthrough = true
	got := restartOnlyChanges(old, next)
	if !slices.Equal(got, []string{"data_dir", "tenant_passthrough", "log_level"}) {
		t.Errorf("restartOnlyChanges = %v", got)
	}
	kept := keepStatic(old, next)
	if kept.DataDir != old.DataDir || kept.LogLevel != old.LogLevel || kept.TenantPassthrough || kept.Listen != next.Listen || kept.MaxBodySize != 1 {
		t.Errorf("keepStatic: %+v", kept)
	}
}
