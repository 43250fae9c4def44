package tlsreload

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/internal/syncbuf"
	"github.com/pyrorelay/pyrorelay/internal/testca"
)

// pollDeadline bounds every wait on a condition, generous for loaded CI
// machines.
const pollDeadline = 30 * time.Second

// files are the cert, key and CA paths of one test.
type files struct{ cert, key, ca string }

func newFiles(t *testing.T) files {
	d := t.TempDir()
	return files{filepath.Join(d, "tls.crt"), filepath.Join(d, "tls.key"), filepath.Join(d, "ca.crt")}
}

// writeFile replaces path atomically, the way cert-manager and certbot
// deploy hooks do.
func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// serveTLS accepts TLS connections with cfg, answers "ok" on each and
// returns the address. Handshake errors end the connection.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(pollDeadline))
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				_, _ = io.WriteString(c, "ok")
			}()
		}
	}()
	return ln.Addr().String()
}

// dial handshakes with addr trusting roots, presenting client if set, and
// returns the server's serial and negotiated protocol.
func dial(addr string, roots *x509.CertPool, client *tls.Certificate, protos ...string) (serial int64, proto string, err error) {
	cfg := &tls.Config{RootCAs: roots, NextProtos: protos, MinVersion: tls.VersionTLS12}
	if client != nil {
		cfg.Certificates = []tls.Certificate{*client}
	}
	d := &net.Dialer{Timeout: pollDeadline}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(pollDeadline))
	// With TLS 1.3 a refused client certificate shows on the first read.
	b, err := io.ReadAll(c)
	if err != nil {
		return 0, "", err
	}
	if string(b) != "ok" {
		return 0, "", errors.New("no answer")
	}
	st := c.ConnectionState()
	return st.PeerCertificates[0].SerialNumber.Int64(), st.NegotiatedProtocol, nil
}

func pool(pems ...[]byte) *x509.CertPool {
	p := x509.NewCertPool()
	for _, b := range pems {
		p.AppendCertsFromPEM(b)
	}
	return p
}

// waitSerial polls new connections until the server presents want.
func waitSerial(t *testing.T, addr string, roots *x509.CertPool, want int64) {
	t.Helper()
	deadline := time.Now().Add(pollDeadline)
	for {
		got, _, err := dial(addr, roots, nil)
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server still presents serial %d (err %v), want %d", got, err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitPolls waits until r's Watch has checked the files n more times.
func waitPolls(t *testing.T, r *Reloader, n int64) {
	t.Helper()
	want := r.polls.Load() + n
	deadline := time.Now().Add(pollDeadline)
	for r.polls.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("Watch did not check the files %d more times", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReloadOnFileChange(t *testing.T) {
	ca := testca.New(t, "ca")
	f := newFiles(t)
	c1, k1 := ca.Issue(t, 1, false)
	writeFile(t, f.cert, c1)
	writeFile(t, f.key, k1)
	var logs syncbuf.Buffer
	var mu sync.Mutex
	var watchLoads []error
	r, err := New(Options{CertFile: f.cert, KeyFile: f.key, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		OnWatchLoad: func(err error) {
			mu.Lock()
			watchLoads = append(watchLoads, err)
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, r.Config())
	roots := pool(ca.PEM)
	serial, proto, err := dial(addr, roots, nil, "h2", "http/1.1")
	if err != nil || serial != 1 {
		t.Fatalf("first handshake: serial %d, err %v", serial, err)
	}
	if proto != "h2" {
		t.Errorf("ALPN chose %q, want h2 (gRPC needs it)", proto)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Watch(ctx, 10*time.Millisecond)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	// Rotation, with the key written after the certificate: in between,
	// the pair does not match and the old one must stay in service.
	c2, k2 := ca.Issue(t, 2, false)
	writeFile(t, f.cert, c2)
	if got, _, err := dial(addr, roots, nil); err != nil || (got != 1 && got != 2) {
		t.Fatalf("during a half-done rotation: serial %d, err %v", got, err)
	}
	writeFile(t, f.key, k2)
	waitSerial(t, addr, roots, 2)
	if r.Leaf().SerialNumber.Int64() != 2 {
		t.Errorf("Leaf serial %v, want 2", r.Leaf().SerialNumber)
	}

	// Garbage: the previous certificate stays, the error is logged once
	// (not at every poll) and says which file.
	before := len(logs.String())
	writeFile(t, f.cert, []byte("not a certificate"))
	since := func() string { return logs.String()[before:] }
	deadline := time.Now().Add(pollDeadline)
	for !strings.Contains(since(), "do not load") {
		if time.Now().After(deadline) {
			t.Fatalf("no log line about the broken file:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got, _, err := dial(addr, roots, nil); err != nil || got != 2 {
		t.Fatalf("after a broken rotation: serial %d, err %v; want the previous certificate", got, err)
	}
	// Let Watch look at the broken file a few more times: it must not
	// report it again.
	waitPolls(t, r, 3)
	if n := strings.Count(since(), "do not load"); n != 1 {
		t.Errorf("the broken file was reported %d times, want once:\n%s", n, logs.String())
	}

	// Fixed again: picked up.
	c3, k3 := ca.Issue(t, 3, false)
	writeFile(t, f.key, k3)
	writeFile(t, f.cert, c3)
	waitSerial(t, addr, roots, 3)

	mu.Lock()
	defer mu.Unlock()
	var ok, bad int
	for _, err := range watchLoads {
		if err == nil {
			ok++
		} else {
			bad++
		}
	}
	if ok < 2 || bad < 1 {
		t.Errorf("OnWatchLoad saw %d good and %d failed loads, want >= 2 and >= 1", ok, bad)
	}
}

// TestReloadOnDemand is the SIGHUP path: no watcher, Reload loads what is
// there now, and a failed Reload keeps the certificate in service.
func TestReloadOnDemand(t *testing.T) {
	ca := testca.New(t, "ca")
	f := newFiles(t)
	c1, k1 := ca.Issue(t, 1, false)
	writeFile(t, f.cert, c1)
	writeFile(t, f.key, k1)
	r, err := New(Options{CertFile: f.cert, KeyFile: f.key})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, r.Config())
	roots := pool(ca.PEM)

	c2, k2 := ca.Issue(t, 2, false)
	writeFile(t, f.cert, c2)
	writeFile(t, f.key, k2)
	if got, _, err := dial(addr, roots, nil); err != nil || got != 1 {
		t.Fatalf("without Reload or Watch nothing may change: serial %d, err %v", got, err)
	}
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if got, _, err := dial(addr, roots, nil); err != nil || got != 2 {
		t.Fatalf("after Reload: serial %d, err %v, want 2", got, err)
	}

	// A key of another certificate.
	_, other := ca.Issue(t, 9, false)
	writeFile(t, f.key, other)
	err = r.Reload()
	if err == nil {
		t.Fatal("Reload accepted a key that does not match the certificate")
	}
	if !strings.Contains(err.Error(), f.key) {
		t.Errorf("error %q does not name the key file", err)
	}
	if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), string(other[40:60])) {
		t.Errorf("error quotes key material: %q", err)
	}
	if got, _, err := dial(addr, roots, nil); err != nil || got != 2 {
		t.Fatalf("after a failed Reload: serial %d, err %v, want 2", got, err)
	}
	// A file that disappears (a botched deploy) is an error too.
	if err := os.Remove(f.cert); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Reload of a missing file: %v", err)
	}
	if got, _, err := dial(addr, roots, nil); err != nil || got != 2 {
		t.Fatalf("after a missing file: serial %d, err %v, want 2", got, err)
	}
}

func TestMutualTLS(t *testing.T) {
	ca := testca.New(t, "server ca")
	clientCA := testca.New(t, "client ca")
	otherCA := testca.New(t, "other ca")
	f := newFiles(t)
	c, k := ca.Issue(t, 1, false)
	writeFile(t, f.cert, c)
	writeFile(t, f.key, k)
	writeFile(t, f.ca, clientCA.PEM)
	r, err := New(Options{CertFile: f.cert, KeyFile: f.key, ClientCAFile: f.ca})
	if err != nil {
		t.Fatal(err)
	}
	if !r.MutualTLS() {
		t.Error("MutualTLS() = false with a client CA")
	}
	addr := serveTLS(t, r.Config())
	roots := pool(ca.PEM)
	keyPair := func(ca *testca.CA) *tls.Certificate {
		cp, kp := ca.Issue(t, 7, true)
		kpair, err := tls.X509KeyPair(cp, kp)
		if err != nil {
			t.Fatal(err)
		}
		return &kpair
	}
	good, stranger := keyPair(clientCA), keyPair(otherCA)

	if _, _, err := dial(addr, roots, nil); err == nil {
		t.Error("a client without a certificate got through")
	}
	if _, _, err := dial(addr, roots, stranger); err == nil {
		t.Error("a client certificate of another CA got through")
	}
	if _, _, err := dial(addr, roots, good); err != nil {
		t.Errorf("a valid client certificate was refused: %v", err)
	}

	// The client CA reloads too: switch trust to the other CA.
	writeFile(t, f.ca, otherCA.PEM)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := dial(addr, roots, stranger); err != nil {
		t.Errorf("after the CA reload, its client was refused: %v", err)
	}
	if _, _, err := dial(addr, roots, good); err == nil {
		t.Error("after the CA reload, a client of the old CA got through")
	}

	// A CA file without a certificate fails the reload and keeps the CA.
	writeFile(t, f.ca, []byte("# empty\n"))
	if err := r.Reload(); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("Reload with an empty CA file: %v", err)
	}
	if _, _, err := dial(addr, roots, stranger); err != nil {
		t.Errorf("after a failed reload, the previous CA must stay: %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	ca := testca.New(t, "ca")
	f := newFiles(t)
	c, k := ca.Issue(t, 1, false)
	writeFile(t, f.cert, c)
	writeFile(t, f.key, k)
	writeFile(t, f.ca, []byte("junk"))
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no key", Options{CertFile: f.cert}, "go together"},
		{"missing cert", Options{CertFile: missing, KeyFile: f.key}, "tls cert file"},
		{"missing key", Options{CertFile: f.cert, KeyFile: missing}, "tls key file"},
		{"key for cert", Options{CertFile: f.key, KeyFile: f.key}, f.key},
		{"junk CA", Options{CertFile: f.cert, KeyFile: f.key, ClientCAFile: f.ca}, "no PEM certificate"},
		{"missing CA", Options{CertFile: f.cert, KeyFile: f.key, ClientCAFile: missing}, "tls client CA file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "BEGIN") {
				t.Errorf("error quotes PEM content: %q", err)
			}
		})
	}
}
