package main

import (
	"strings"
	"testing"
)

// TestDrainIgnoresReceivers: drain serves nothing, so a destination added
// with --forward-to to a config whose receivers do not feed it is drained,
// not refused as "fed by no receiver".
func TestDrainIgnoresReceivers(t *testing.T) {
	cfg := writeCheckConfig(t, `
destinations:
  - name: prod
    url: http://127.0.0.1:1
receivers:
  - name: public
    listen: 127.0.0.1:0
    forward_to: [prod]
`)
	_, err := runCLI(t, "drain", "--config", cfg, "--data-dir", t.TempDir(),
		"--forward-to", "extra=http://127.0.0.1:1", "--timeout", "30s")
	if err != nil {
		t.Fatalf("drain of empty queues with an extra destination: %v", err)
	}
	// serve, which does serve, still refuses the same configuration.
	_, err = runCLI(t, "config", "check", "--config", cfg, "--forward-to", "extra=http://127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "extra") {
		t.Fatalf("config check: %v; want an error naming destination extra", err)
	}
}
