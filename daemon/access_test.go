package daemon

import (
	"strings"
	"testing"
	"time"
)

// TestAccessConfigChecks: access settings that cannot work together are
// refused before any file is read.
func TestAccessConfigChecks(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*Config)
		want string // "" means valid
	}{
		{"nothing", func(*Config) {}, ""},
		{"tls", func(c *Config) { c.TLSCertFile, c.TLSKeyFile = "c", "k" }, ""},
		{"mtls", func(c *Config) { c.TLSCertFile, c.TLSKeyFile, c.TLSClientCAFile = "c", "k", "ca" }, ""},
		{"cert without key", func(c *Config) { c.TLSCertFile = "c" }, "go together"},
		{"key without cert", func(c *Config) { c.TLSKeyFile = "k" }, "go together"},
		{"client CA without TLS", func(c *Config) { c.TLSClientCAFile = "ca" }, "tls_client_ca_file needs"},
		{"negative reload interval", func(c *Config) { c.TLSReloadInterval = -time.Second }, "tls_reload_interval"},
		{"protect metrics without auth", func(c *Config) { c.AuthProtectMetrics = true }, "auth_protect_metrics needs"},
		{"protect metrics with tokens", func(c *Config) { c.AuthProtectMetrics, c.AuthBearerTokenFile = true, "t" }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.set(&c)
			err := c.finishAccess()
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("finishAccess = %v, want %q", err, tc.want)
			}
		})
	}
	for addr, want := range map[string]bool{
		"127.0.0.1:4040": true, "[::1]:4040": true, "localhost:4040": true,
		":4040": false, "0.0.0.0:4040": false, "10.0.0.1:4040": false, "nohost": false,
	} {
		if got := loopbackListen(addr); got != want {
			t.Errorf("loopbackListen(%q) = %v, want %v", addr, got, want)
		}
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
