package main

// The serve flags of access to the listener: inbound authentication,
// TLS and client certificates. Package daemon (access.go) loads and
// reloads them.

import (
	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/daemon"
)

// accessFlags are the serve flags for inbound auth and TLS.
func accessFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "auth-basic-users", EnvVars: env("AUTH_BASIC_USERS"), Usage: "htpasswd file of bcrypt hashes (htpasswd -B): clients must send one of these users; reloaded on SIGHUP"},
		&cli.StringFlag{Name: "auth-bearer-token-file", EnvVars: env("AUTH_BEARER_TOKEN_FILE"), Usage: "file of accepted bearer tokens, one per line; reloaded on SIGHUP"},
		&cli.BoolFlag{Name: "auth-protect-metrics", EnvVars: env("AUTH_PROTECT_METRICS"), Usage: "require credentials on /metrics, /-/healthy and /-/ready too"},
		&cli.StringFlag{Name: "tls-cert-file", EnvVars: env("TLS_CERT_FILE"), Usage: "serve TLS with this PEM certificate (chain); reloaded on SIGHUP and when it changes"},
		&cli.StringFlag{Name: "tls-key-file", EnvVars: env("TLS_KEY_FILE"), Usage: "PEM private key of --tls-cert-file"},
		&cli.StringFlag{Name: "tls-client-ca-file", EnvVars: env("TLS_CLIENT_CA_FILE"), Usage: "require client certificates signed by these PEM CAs (mTLS)"},
		durationFlag("tls-reload-interval", env("TLS_RELOAD_INTERVAL"), daemon.DefaultTLSReloadInterval, "check the TLS files for a change every `DURATION`; 0 reloads on SIGHUP only"),
	}
}

// applyAccessFlags copies the access flags the user set into cfg.
func applyAccessFlags(c *cli.Context, cfg *daemon.Config) {
	set := func(name string, apply func()) {
		if c.IsSet(name) {
			apply()
		}
	}
	set("auth-basic-users", func() { cfg.AuthBasicUsers = c.String("auth-basic-users") })
	set("auth-bearer-token-file", func() { cfg.AuthBearerTokenFile = c.String("auth-bearer-token-file") })
	set("auth-protect-metrics", func() { cfg.AuthProtectMetrics = c.Bool("auth-protect-metrics") })
	set("tls-cert-file", func() { cfg.TLSCertFile = c.String("tls-cert-file") })
	set("tls-key-file", func() { cfg.TLSKeyFile = c.String("tls-key-file") })
	set("tls-client-ca-file", func() { cfg.TLSClientCAFile = c.String("tls-client-ca-file") })
	set("tls-reload-interval", func() { cfg.TLSReloadInterval = c.Duration("tls-reload-interval") })
}
