// Package tlsreload serves TLS with a certificate, key and optional client
// CA read from files, and reloads them without a restart: on demand
// (Reload, wired to SIGHUP) and when the files change (Watch, which polls
// their content; it needs no inotify and sees Kubernetes' symlink swaps of
// mounted secrets the same way as an in-place rewrite).
//
// A reload that fails (a half-written file, a key that does not match its
// certificate) keeps the previous certificate in service: a relay that
// already serves never stops serving because of a bad rotation.
package tlsreload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Options name the files to serve from.
type Options struct {
	CertFile string
	KeyFile  string
	// ClientCAFile, when set, requires every client to present a
	// certificate signed by one of its CAs (mTLS).
	ClientCAFile string
	// Logger receives reload results; nil discards them.
	Logger *slog.Logger
	// OnWatchLoad, if set, is called after Watch found the files changed
	// and tried to load them, with the error if any (for a metric).
	OnWatchLoad func(err error)
}

// Reloader holds the current certificate and client CAs. Create it with
// New; it is safe for concurrent use.
type Reloader struct {
	o   Options
	log *slog.Logger
	cur atomic.Pointer[state]

	// mu serialises loads; lastSum is the content of the files at the
	// last load attempt, good or bad, so a broken file is reported once,
	// not at every poll.
	mu      sync.Mutex
	lastSum [sha256.Size]byte

	polls atomic.Int64 // checks done by Watch, for tests
}

// state is one loaded generation: a ready-made config per generation, so a
// handshake only loads a pointer.
type state struct {
	cfg  *tls.Config
	leaf *x509.Certificate
}

// New loads the files once; an error here means the relay should not
// start.
func New(o Options) (*Reloader, error) {
	if o.CertFile == "" || o.KeyFile == "" {
		return nil, errors.New("tls: the certificate and key files go together")
	}
	r := &Reloader{o: o, log: o.Logger}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if _, err := r.load(true); err != nil {
		return nil, err
	}
	return r, nil
}

// Config returns the server TLS config to hand to http.Server: every
// handshake gets the generation loaded last. It offers h2 and http/1.1 by
// ALPN (gRPC needs h2) and refuses TLS below 1.2.
func (r *Reloader) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.cur.Load().cfg, nil
		},
		// Also set for code that looks at GetCertificate only; the config
		// from GetConfigForClient is what the handshake uses.
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return &r.cur.Load().cfg.Certificates[0], nil
		},
	}
}

// Leaf is the certificate in service.
func (r *Reloader) Leaf() *x509.Certificate { return r.cur.Load().leaf }

// MutualTLS reports whether client certificates are required.
func (r *Reloader) MutualTLS() bool { return r.o.ClientCAFile != "" }

// Reload reads the files now. On error the previous certificate stays in
// service.
func (r *Reloader) Reload() error {
	_, err := r.load(true)
	return err
}

// Watch checks the files every interval until ctx ends, and loads them
// when their content changed. The caller runs it in a goroutine of its
// own; it returns when ctx is done.
func (r *Reloader) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, err := r.load(false)
		r.polls.Add(1)
		if (changed || err != nil) && r.o.OnWatchLoad != nil {
			r.o.OnWatchLoad(err)
		}
		switch {
		case err != nil:
			r.log.Error("TLS files changed but do not load: still serving the previous certificate", "err", err)
		case changed:
			r.LogLoaded("TLS files changed: certificate reloaded")
		}
	}
}

// LogLoaded logs the certificate in service with msg (at start, after a
// SIGHUP), and warns when it has expired: the files were loaded, but
// clients will refuse them.
func (r *Reloader) LogLoaded(msg string) {
	leaf := r.Leaf()
	args := []any{"subject", leaf.Subject.String(), "serial", leaf.SerialNumber.String(),
		"not_after", leaf.NotAfter.UTC().Format(time.RFC3339), "client_certs_required", r.MutualTLS()}
	if time.Now().After(leaf.NotAfter) {
		r.log.Warn(msg+"; the certificate has EXPIRED: clients will refuse it", args...)
		return
	}
	r.log.Info(msg, args...)
}

// load reads the files and, if force is set or they changed since the last
// attempt, builds and installs a new generation. It reports whether it
// installed one.
func (r *Reloader) load(force bool) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	certPEM, err := os.ReadFile(r.o.CertFile)
	if err != nil {
		return false, fmt.Errorf("tls cert file: %w", err)
	}
	keyPEM, err := os.ReadFile(r.o.KeyFile)
	if err != nil {
		return false, fmt.Errorf("tls key file: %w", err)
	}
	var caPEM []byte
	if r.o.ClientCAFile != "" {
		if caPEM, err = os.ReadFile(r.o.ClientCAFile); err != nil {
			return false, fmt.Errorf("tls client CA file: %w", err)
		}
	}
	sum := contentSum(certPEM, keyPEM, caPEM)
	if !force && sum == r.lastSum {
		return false, nil
	}
	r.lastSum = sum
	st, err := build(r.o, certPEM, keyPEM, caPEM)
	if err != nil {
		return false, err
	}
	r.cur.Store(st)
	return true, nil
}

func contentSum(parts ...[]byte) [sha256.Size]byte {
	h := sha256.New()
	for _, p := range parts {
		// Length-prefix each part so that bytes cannot move between files
		// unnoticed.
		fmt.Fprintf(h, "%d:", len(p))
		h.Write(p)
	}
	var s [sha256.Size]byte
	h.Sum(s[:0])
	return s
}

// build parses the files into a generation. Errors name the files; the
// crypto/tls errors they wrap never quote key material.
func build(o Options, certPEM, keyPEM, caPEM []byte) (*state, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls cert file %s / key file %s: %w", o.CertFile, o.KeyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tls cert file %s: %w", o.CertFile, err)
		}
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
		Certificates: []tls.Certificate{cert},
	}
	if o.ClientCAFile != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(bytes.TrimSpace(caPEM)) {
			return nil, fmt.Errorf("tls client CA file %s: no PEM certificate in it", o.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return &state{cfg: cfg, leaf: leaf}, nil
}
