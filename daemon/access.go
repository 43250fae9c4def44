package daemon

// Access to the listener: inbound authentication (htpasswd with bcrypt,
// bearer tokens), TLS with a certificate that reloads, and client
// certificates (mTLS). daemon.go calls in here at a few hook points; the
// rest of the relay does not know about any of it.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyrorelay/pyrorelay/httpserver"
	"github.com/pyrorelay/pyrorelay/tlsreload"
)

// DefaultTLSReloadInterval is how often the TLS files are checked for a
// change: rotations (cert-manager, certbot) are picked up within seconds,
// at the cost of reading three small files.
const DefaultTLSReloadInterval = 5 * time.Second

// finishAccess checks the access settings that go together, before any
// file is read.
func (c *Config) finishAccess() error {
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("tls_cert_file and tls_key_file go together")
	}
	if c.TLSClientCAFile != "" && c.TLSCertFile == "" {
		return errors.New("tls_client_ca_file needs tls_cert_file and tls_key_file: client certificates are checked during a TLS handshake")
	}
	if c.TLSReloadInterval < 0 {
		return errors.New("tls_reload_interval: must not be negative")
	}
	if c.AuthProtectMetrics && c.AuthBasicUsers == "" && c.AuthBearerTokenFile == "" {
		return errors.New("auth_protect_metrics needs auth_basic_users or auth_bearer_token_file")
	}
	return nil
}

// access is the listener's authentication and TLS, built from Config.
type access struct {
	auth     *httpserver.Authenticator // nil: no inbound auth
	tls      *tlsreload.Reloader       // nil: plain HTTP
	interval time.Duration
	log      *slog.Logger
	reloads  *prometheus.CounterVec
}

// newAccess loads the credential and TLS files; an error means the relay
// must not start. Its messages name files and lines, never their content.
func newAccess(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*access, error) {
	a := &access{interval: cfg.TLSReloadInterval, log: log}
	if cfg.AuthBasicUsers != "" || cfg.AuthBearerTokenFile != "" {
		auth, err := httpserver.NewAuthenticator(httpserver.AuthConfig{
			BasicUsersFile:  cfg.AuthBasicUsers,
			BearerTokenFile: cfg.AuthBearerTokenFile,
		})
		if err != nil {
			return nil, err
		}
		a.auth = auth
		warnWorldReadable(log, auth.Files()...)
	}
	a.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pyrorelay_access_reloads_total",
		Help: "Reloads of the auth files (on SIGHUP) and TLS files (on SIGHUP or change), by what and result (ok, error); on error the previous ones stay in force.",
	}, []string{"what", "result"})
	reg.MustRegister(a.reloads)
	if cfg.TLSCertFile != "" {
		r, err := tlsreload.New(tlsreload.Options{
			CertFile: cfg.TLSCertFile, KeyFile: cfg.TLSKeyFile, ClientCAFile: cfg.TLSClientCAFile,
			Logger: log,
			OnWatchLoad: func(err error) {
				a.reloads.WithLabelValues("tls", result(err)).Inc()
			},
		})
		if err != nil {
			return nil, err
		}
		a.tls = r
		warnWorldReadable(log, cfg.TLSKeyFile)
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pyrorelay_tls_certificate_not_after_timestamp_seconds",
			Help: "Expiry (Unix time) of the listener's TLS certificate in service: alert before it passes.",
		}, func() float64 { return float64(r.Leaf().NotAfter.Unix()) }))
	}

	if a.auth != nil {
		log.Info("inbound auth required", "accepts", a.auth.String(), "open_paths", !cfg.AuthProtectMetrics)
		if a.tls == nil && !allLoopback(&cfg) {
			log.Warn("inbound auth without TLS: passwords and tokens cross the network in clear text; set --tls-cert-file and --tls-key-file")
		}
	}
	if a.tls != nil {
		a.tls.LogLoaded("serving TLS")
	}
	return a, nil
}

// tlsConfig is the listener's TLS config, nil for plain HTTP.
func (a *access) tlsConfig() *tls.Config {
	if a.tls == nil {
		return nil
	}
	return a.tls.Config()
}

// start watches the TLS files until ctx ends or stop is called; stop also
// waits for the goroutine. SIGHUP is the configReloader's (reloader.go).
func (a *access) start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if a.tls != nil && a.interval > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.tls.Watch(ctx, a.interval)
		}()
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

// reload re-reads every access file; what fails keeps its previous version
// and is returned.
func (a *access) reload() error {
	if a.auth == nil && a.tls == nil {
		a.log.Info("reload: no auth or TLS files to reload")
		return nil
	}
	var errs []error
	if a.auth != nil {
		err := a.auth.Reload()
		a.reloads.WithLabelValues("auth", result(err)).Inc()
		if err != nil {
			a.log.Error("reload: auth files do not load: the previous users and tokens stay in force", "err", err)
			errs = append(errs, fmt.Errorf("auth files: %w", err))
		} else {
			a.log.Info("reload: auth files reloaded", "accepts", a.auth.String())
		}
	}
	if a.tls != nil {
		err := a.tls.Reload()
		a.reloads.WithLabelValues("tls", result(err)).Inc()
		if err != nil {
			a.log.Error("reload: TLS files do not load: still serving the previous certificate", "err", err)
			errs = append(errs, fmt.Errorf("TLS files: %w", err))
		} else {
			a.tls.LogLoaded("reload: TLS files reloaded")
		}
	}
	return errors.Join(errs...)
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// warnWorldReadable warns about secret files any local user can read.
func warnWorldReadable(log *slog.Logger, paths ...string) {
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o004 != 0 {
			log.Warn("secret file is readable by every local user: chmod o-r it", "file", p)
		}
	}
}

// allLoopback reports whether every receiver listens on loopback only.
func allLoopback(cfg *Config) bool {
	if len(cfg.receivers) == 0 {
		return loopbackListen(cfg.Listen)
	}
	for _, r := range cfg.receivers {
		if !loopbackListen(r.Listen) {
			return false
		}
	}
	return true
}

// loopbackListen reports whether addr only listens on a loopback address.
func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
