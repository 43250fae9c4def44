package main

import (
	"path/filepath"
	"testing"
)

// TestRequestLimitsFromFileFlagAndEnv: --max-request-memory is read from
// the YAML file, its environment variable and the flag, the flag winning,
// and shows as pyrorelay_request_memory_limit_bytes.
func TestRequestLimitsFromFileFlagAndEnv(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "max_request_memory: 8MiB\nmin_body_rate: 2KiB\nmax_concurrent_streams: 4\n")
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want float64
	}{
		{"default", nil, nil, 256 << 20},
		{"file", nil, []string{"--config", cfg}, 8 << 20},
		{"env", []string{"PYRORELAY_MAX_REQUEST_MEMORY=32MiB"}, nil, 32 << 20},
		{"flag over file", nil, []string{"--config", cfg, "--max-request-memory", "16MiB"}, 16 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(baseArgs(filepath.Join(t.TempDir(), "data")), tc.args...)
			relay := startRelayOpts(t, relayOpts{env: tc.env}, args...)
			if got := metric(scrape(t, relay.URL), "pyrorelay_request_memory_limit_bytes"); got != tc.want {
				t.Errorf("pyrorelay_request_memory_limit_bytes = %.0f, want %.0f", got, tc.want)
			}
			relay.stop()
		})
	}
}
