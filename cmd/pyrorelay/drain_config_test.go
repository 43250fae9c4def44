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

// TestAllLoopback: the auth-without-TLS warning looks at every receiver's
// address, not only the top-level listen.
func TestAllLoopback(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want bool
	}{
		{"flags, loopback", Config{Listen: "127.0.0.1:4040"}, true},
		{"flags, all interfaces", Config{Listen: ":4040"}, false},
		{"receivers, all loopback", Config{Listen: ":4040", receivers: []Receiver{{Listen: "127.0.0.1:4040"}, {Listen: "[::1]:4041"}}}, true},
		{"receivers, one public", Config{Listen: "127.0.0.1:4040", receivers: []Receiver{{Listen: "127.0.0.1:4040"}, {Listen: "0.0.0.0:4041"}}}, false},
	} {
		if got := allLoopback(&tc.cfg); got != tc.want {
			t.Errorf("%s: allLoopback = %v, want %v", tc.name, got, tc.want)
		}
	}
}
