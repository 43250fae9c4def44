// Package relay delivers what the store holds to Pyroscope destinations:
// one Forwarder per destination drains that destination's queue with its
// own workers, its own HTTP client and its own retry policy, so one slow or
// dead destination never holds back another.
//
// It reads from the store and never from the HTTP server; an entry leaves a
// queue only after a 2xx from its destination, or into dead-letter with a
// reason.
package relay

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// Destination is one Pyroscope server (or another relay) to forward to.
type Destination struct {
	Name            string            `yaml:"name"`
	URL             string            `yaml:"url"`
	Headers         map[string]string `yaml:"headers,omitempty"`
	BasicAuth       *BasicAuth        `yaml:"basic_auth,omitempty"`
	BearerToken     string            `yaml:"bearer_token,omitempty"`
	BearerTokenFile string            `yaml:"bearer_token_file,omitempty"`
	// TenantID is sent as X-Scope-OrgID, overriding a passed-through tenant.
	TenantID string        `yaml:"tenant_id,omitempty"`
	Timeout  time.Duration `yaml:"timeout,omitempty"`
	// MinBackoff and MaxBackoff bound the exponential backoff between
	// attempts of one entry; MaxBackoff also caps a Retry-After pause.
	MinBackoff time.Duration `yaml:"min_backoff,omitempty"`
	MaxBackoff time.Duration `yaml:"max_backoff,omitempty"`
	// ProbeInterval caps the wait between probes of a down destination
	// (and max_backoff caps it too): how long a destination that is back
	// may wait to be noticed.
	ProbeInterval time.Duration `yaml:"probe_interval,omitempty"`
	TLS           TLSConfig     `yaml:"tls,omitempty"`
	// Concurrency is how many requests are in flight to this destination
	// while its queue keeps up.
	Concurrency int `yaml:"concurrency,omitempty"`
	// MaxConcurrency is how many may be in flight while a backlog drains
	// and the destination keeps answering (see limiter).
	MaxConcurrency int `yaml:"max_concurrency,omitempty"`
	// MaxAttempts is the poison cap: how many failures that single the
	// entry out (see Outcome.Strike) it may have before it is dead-lettered.
	MaxAttempts int `yaml:"max_attempts,omitempty"`
	// MaxAge moves entries that waited longer to dead-letter with reason
	// "expired"; 0 keeps them forever.
	MaxAge time.Duration `yaml:"max_age,omitempty"`
}

// BasicAuth is a username and password for HTTP basic authentication.
type BasicAuth struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// PasswordFile holds the password instead of Password; it is read
	// per request, so a rotated password is picked up.
	PasswordFile string `yaml:"password_file,omitempty"`
}

// password is the password to send: Password, or PasswordFile's content
// without surrounding white space.
func (b *BasicAuth) password() (string, error) {
	if b.PasswordFile == "" {
		return b.Password, nil
	}
	pw, err := os.ReadFile(b.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("read basic_auth.password_file: %w", err)
	}
	return strings.TrimSpace(string(pw)), nil
}

// TLSConfig configures how a destination's certificate is checked and which
// client certificate is presented.
type TLSConfig struct {
	CAFile             string `yaml:"ca_file,omitempty"`
	CertFile           string `yaml:"cert_file,omitempty"`
	KeyFile            string `yaml:"key_file,omitempty"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify,omitempty"`
}

// Defaults for destination settings left at zero.
const (
	DefaultTimeout    = 30 * time.Second
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Minute
	// DefaultProbeInterval brings a destination back within seconds of
	// its return, however long it was down, at a cost of one request per
	// interval while it is down.
	DefaultProbeInterval = 10 * time.Second
	DefaultConcurrency   = 4
	// DefaultMaxConcurrency is where the limiter stops growing behind a
	// backlog: enough requests in flight to drain a backlog well faster
	// than it was built (BENCHMARKS.md, backlog).
	DefaultMaxConcurrency = 16
	DefaultMaxAttempts    = 10
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.\-]*$`)

// ErrInvalidDestination is wrapped by every error of Destination.Validate.
var ErrInvalidDestination = errors.New("invalid destination")

// WithDefaults returns d with zero settings replaced by defaults.
func (d Destination) WithDefaults() Destination {
	if d.Timeout <= 0 {
		d.Timeout = DefaultTimeout
	}
	// A default never contradicts the bound the operator did set: a lone
	// max_backoff of 100ms must not meet a 500ms default minimum and fail
	// validation with a complaint about a field nobody wrote.
	if d.MinBackoff <= 0 {
		d.MinBackoff = DefaultMinBackoff
		if d.MaxBackoff > 0 {
			d.MinBackoff = min(d.MinBackoff, d.MaxBackoff)
		}
	}
	if d.MaxBackoff <= 0 {
		d.MaxBackoff = max(DefaultMaxBackoff, d.MinBackoff)
	}
	if d.ProbeInterval <= 0 {
		d.ProbeInterval = DefaultProbeInterval
	}
	if d.Concurrency <= 0 {
		d.Concurrency = DefaultConcurrency
	}
	if d.MaxConcurrency <= 0 {
		d.MaxConcurrency = max(DefaultMaxConcurrency, d.Concurrency)
	}
	if d.MaxAttempts <= 0 {
		d.MaxAttempts = DefaultMaxAttempts
	}
	d.URL = strings.TrimRight(d.URL, "/")
	return d
}

// Validate reports the first wrong field, naming it.
func (d Destination) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w %q: %s: %s", ErrInvalidDestination, d.Name, field, fmt.Sprintf(format, args...))
	}
	if !nameRE.MatchString(d.Name) {
		return bad("name", "must be letters, digits, '_', '.', '-', starting with a letter or digit")
	}
	u, err := url.Parse(d.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("url", "%q is not an http:// or https:// URL", RedactURL(d.URL))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return bad("url", "must not carry a query or fragment")
	}
	if d.BearerToken != "" && d.BearerTokenFile != "" {
		return bad("bearer_token_file", "set bearer_token or bearer_token_file, not both")
	}
	if d.BasicAuth != nil && (d.BearerToken != "" || d.BearerTokenFile != "") {
		return bad("basic_auth", "set basic auth or a bearer token, not both")
	}
	if b := d.BasicAuth; b != nil && b.PasswordFile != "" {
		if b.Password != "" {
			return bad("basic_auth.password_file", "set password or password_file, not both")
		}
		if _, err := os.Stat(b.PasswordFile); err != nil {
			return bad("basic_auth.password_file", "%v", err)
		}
	}
	if d.MinBackoff > 0 && d.MaxBackoff > 0 && d.MinBackoff > d.MaxBackoff {
		return bad("min_backoff", "%s is above max_backoff %s", d.MinBackoff, d.MaxBackoff)
	}
	if (d.TLS.CertFile == "") != (d.TLS.KeyFile == "") {
		return bad("tls", "cert_file and key_file go together")
	}
	if d.BearerTokenFile != "" {
		if _, err := os.Stat(d.BearerTokenFile); err != nil {
			return bad("bearer_token_file", "%v", err)
		}
	}
	if _, err := d.tlsConfig(); err != nil {
		return bad("tls", "%v", err)
	}
	for _, n := range []int{d.Concurrency, d.MaxConcurrency, d.MaxAttempts} {
		if n < 0 {
			return bad("concurrency/max_concurrency/max_attempts", "must not be negative")
		}
	}
	if d.MaxConcurrency > 0 && d.MaxConcurrency < d.Concurrency {
		return bad("max_concurrency", "%d is below concurrency %d", d.MaxConcurrency, d.Concurrency)
	}
	return nil
}

func (d Destination) tlsConfig() (*tls.Config, error) {
	t := d.TLS
	if t.CAFile == "" && t.CertFile == "" && !t.InsecureSkipVerify {
		return nil, nil
	}
	cfg := &tls.Config{InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // the operator asked for it
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate found", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert_file/key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// httpClient builds the destination's own client: its own connection pool,
// so a destination that hangs cannot starve another of connections.
func (d Destination) httpClient() (*http.Client, error) {
	tlsCfg, err := d.tlsConfig()
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	tr.MaxIdleConnsPerHost = max(d.Concurrency, d.MaxConcurrency)
	// Room for the headers and a typical profile in one write: with the
	// default 4 KiB the body goes out through a fresh copy buffer each time.
	tr.WriteBufferSize = 64 << 10
	// A destination's answers are a few bytes: asking for them gzipped
	// only makes it compress and us decompress, with a fresh gzip state
	// each time.
	tr.DisableCompression = true
	tr.ResponseHeaderTimeout = d.Timeout
	// Connect's gRPC protocol needs HTTP/2; plain http URLs speak Connect
	// over HTTP/1.1, which Pyroscope serves.
	tr.ForceAttemptHTTP2 = true
	return &http.Client{Transport: tr, Timeout: d.Timeout}, nil
}

// authorize adds the destination's credentials, tenant and headers to h.
// tenant is the passed-through tenant of the entry, if any.
func (d Destination) authorize(h http.Header, tenant string) error {
	for k, v := range d.Headers {
		h.Set(k, v)
	}
	switch {
	case d.BasicAuth != nil:
		pw, err := d.BasicAuth.password()
		if err != nil {
			return err
		}
		r := http.Request{Header: h}
		r.SetBasicAuth(d.BasicAuth.Username, pw)
	case d.BearerToken != "":
		h.Set("Authorization", "Bearer "+d.BearerToken)
	case d.BearerTokenFile != "":
		// Read per request so that a rotated token is picked up.
		tok, err := os.ReadFile(d.BearerTokenFile)
		if err != nil {
			return fmt.Errorf("read bearer_token_file: %w", err)
		}
		h.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	switch {
	case d.TenantID != "":
		h.Set("X-Scope-OrgID", d.TenantID)
	case tenant != "":
		h.Set("X-Scope-OrgID", tenant)
	}
	return nil
}
