package main

// End-to-end tests of access to the relay: inbound auth, TLS with reload,
// mTLS, tenant isolation between destinations, and secrets that must never
// show in logs, metrics, /api answers or error messages. They run the real
// binary through the harness in harness_test.go.

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/grafana/pyroscope-go/upstream"
	"github.com/grafana/pyroscope-go/upstream/remote"
	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/grafana/pyroscope/api/gen/proto/go/push/v1/pushv1connect"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/proto"

	"github.com/pyrorelay/pyrorelay/internal/testca"
)

// accessWrite writes content to dir/name (atomically, by rename, the way
// secret mounts and deploy hooks replace files) and returns the path.
func accessWrite(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// accessHtpasswd is an htpasswd line for user at the lowest bcrypt cost,
// with the $2y$ prefix `htpasswd -B` writes.
func accessHtpasswd(t *testing.T, user, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return user + ":$2y$" + string(h[4:]) + "\n"
}

// accessDo sends a request and returns the status, headers and body; an
// error means no HTTP answer (refused handshake, for example).
func accessDo(c *http.Client, method, u string, body []byte, hdr map[string]string) (int, http.Header, string, error) {
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, "", err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b), nil
}

func basicHeader(user, pw string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
}

// accessPush pushes one series labelled req_id=id with the given headers.
func accessPush(t *testing.T, c pushv1connect.PusherServiceClient, id string, hdr map[string]string) error {
	t.Helper()
	req := connect.NewRequest(pushRequest(id, readTestdata(t, "cpu.pb.gz")))
	for k, v := range hdr {
		req.Header().Set(k, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.Push(ctx, req)
	return err
}

// h2cClient speaks HTTP/2 without TLS, as gRPC clients do to a plain port.
func h2cClient() *http.Client {
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// signalRelay sends sig to the relay process.
func signalRelay(t *testing.T, p *relayProc, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// TestAccessAuth: with --auth-basic-users and --auth-bearer-token-file,
// /ingest, Push (Connect and gRPC) and /api need credentials, /metrics and
// the health checks do not; nothing unauthenticated is stored; SIGHUP
// reloads both files, and a broken file keeps the previous ones.
func TestAccessAuth(t *testing.T) {
	dir := t.TempDir()
	users := accessWrite(t, dir, "htpasswd", "# relay users\n"+accessHtpasswd(t, "alice", "alice-pw")+accessHtpasswd(t, "bob", "bob-pw"))
	tokens := accessWrite(t, dir, "tokens", "tok-one\n")
	dest := newRecorder(t, nil)
	cfg := writeConfig(t, dir, fastDestinations(map[string]string{"d": dest.URL()}))
	relay := startRelay(t, filepath.Join(dir, "data"), "--config", cfg, "--auth-basic-users", users, "--auth-bearer-token-file", tokens)

	alice := map[string]string{"Authorization": basicHeader("alice", "alice-pw")}
	bearer := map[string]string{"Authorization": "Bearer tok-one"}
	wrongPW := map[string]string{"Authorization": basicHeader("alice", "bob-pw")}
	tokTwo := map[string]string{"Authorization": "Bearer tok-two"} // wrong until the reload

	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		want               int
	}{
		{"ingest without credentials", "POST", "/ingest", nil, 401},
		{"ingest with a wrong password", "POST", "/ingest", wrongPW, 401},
		{"ingest with a wrong token", "POST", "/ingest", tokTwo, 401},
		{"ingest as alice", "POST", "/ingest", alice, 200},
		{"ingest with the token", "POST", "/pyroscope/ingest", bearer, 200},
		{"admin API without credentials", "GET", "/api/v1/queues", nil, 401},
		{"admin API with the token", "GET", "/api/v1/queues", bearer, 200},
		{"metrics open", "GET", "/metrics", nil, 200},
		{"healthy open", "GET", "/-/healthy", nil, 200},
		{"ready open", "GET", "/-/ready", nil, 200},
	} {
		u := relay.URL + tc.path
		if tc.method == "POST" {
			u = ingestURL(relay.URL, tc.name)
			u = strings.Replace(u, "/ingest?", tc.path+"?", 1)
		}
		status, h, body, err := accessDo(httpClient, tc.method, u, foldedBody(tc.name), tc.hdr)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if status != tc.want {
			t.Errorf("%s: status %d, want %d: %s", tc.name, status, tc.want, body)
		}
		if status == 401 {
			if !strings.Contains(body, `"code":"unauthenticated"`) {
				t.Errorf("%s: body %q", tc.name, body)
			}
			if ch := strings.Join(h.Values("WWW-Authenticate"), " | "); !strings.Contains(ch, "Basic realm=") || !strings.Contains(ch, "Bearer realm=") {
				t.Errorf("%s: WWW-Authenticate %q", tc.name, ch)
			}
		}
	}

	connectC := pushv1connect.NewPusherServiceClient(httpClient, relay.URL)
	grpcC := pushv1connect.NewPusherServiceClient(h2cClient(), relay.URL, connect.WithGRPC())
	for _, tc := range []struct {
		name string
		c    pushv1connect.PusherServiceClient
		hdr  map[string]string
		want connect.Code // 0: success
	}{
		{"push-none", connectC, nil, connect.CodeUnauthenticated},
		{"push-wrong", connectC, tokTwo, connect.CodeUnauthenticated},
		{"push-bearer", connectC, bearer, 0},
		{"grpc-none", grpcC, nil, connect.CodeUnauthenticated},
		{"grpc-alice", grpcC, alice, 0},
	} {
		err := accessPush(t, tc.c, tc.name, tc.hdr)
		if got := connect.CodeOf(err); (err == nil) != (tc.want == 0) || (err != nil && got != tc.want) {
			t.Errorf("%s: err %v, want code %v", tc.name, err, tc.want)
		}
	}

	// Only the four authenticated requests reach the destination, and
	// without the client's credentials: they are the relay's, not the
	// destination's.
	waitFor(t, deliverDeadline, "the authenticated requests at the destination", func() (bool, string) {
		n := len(dest.accepted()) + len(dest.acceptedPushes())
		return n == 4, fmt.Sprintf("%d of 4", n)
	})
	for _, r := range dest.requests() {
		if a := r.Header.Get("Authorization"); a != "" {
			t.Errorf("the client's Authorization reached the destination: %q", a)
		}
	}
	ids := dest.ingestIDs()
	if len(ids) != 2 || ids["ingest as alice"] != 1 || ids["ingest with the token"] != 1 {
		t.Errorf("forwarded ingest requests %v, want only the two authenticated ones", ids)
	}
	m := scrape(t, relay.URL)
	if metric(m, `pyrorelay_auth_failures_total{reason="missing",receiver="default"}`) < 3 || metric(m, `pyrorelay_auth_failures_total{reason="invalid",receiver="default"}`) < 3 {
		t.Errorf("auth failures not counted: missing %g, invalid %g",
			metric(m, `pyrorelay_auth_failures_total{reason="missing",receiver="default"}`), metric(m, `pyrorelay_auth_failures_total{reason="invalid",receiver="default"}`))
	}

	// Rotate: a new token replaces the old, bob is removed. SIGHUP.
	accessWrite(t, dir, "tokens", "tok-two\n")
	accessWrite(t, dir, "htpasswd", accessHtpasswd(t, "alice", "alice-pw"))
	bobH := map[string]string{"Authorization": basicHeader("bob", "bob-pw")}
	if st, _, _, _ := accessDo(httpClient, "POST", ingestURL(relay.URL, "bob-before"), foldedBody("b"), bobH); st != 200 {
		t.Fatalf("bob before the reload: %d", st)
	}
	signalRelay(t, relay, syscall.SIGHUP)
	waitMetric(t, relay.URL, `pyrorelay_access_reloads_total{result="ok",what="auth"}`, 1)
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"old-token", bearer, 401},
		{"new-token", tokTwo, 200},
		{"removed-bob", bobH, 401},
		{"alice", alice, 200},
	} {
		if st, _, body, err := accessDo(httpClient, "POST", ingestURL(relay.URL, tc.name), foldedBody(tc.name), tc.hdr); err != nil || st != tc.want {
			t.Errorf("after SIGHUP, %s: status %d (%v), want %d: %s", tc.name, st, err, tc.want, body)
		}
	}

	// A broken edit: the reload fails, the previous credentials stay.
	accessWrite(t, dir, "htpasswd", "alice:plaintext\n")
	signalRelay(t, relay, syscall.SIGHUP)
	waitMetric(t, relay.URL, `pyrorelay_access_reloads_total{result="error",what="auth"}`, 1)
	if st, _, _, _ := accessDo(httpClient, "POST", ingestURL(relay.URL, "alice-after-broken"), foldedBody("a"), alice); st != 200 {
		t.Errorf("after a failed reload alice gets %d, want 200", st)
	}
	if !strings.Contains(relay.Stderr.String(), "auth files do not load") {
		t.Errorf("the failed reload was not logged")
	}
	relay.stop()
}

// TestAccessProtectMetrics: with --auth-protect-metrics, /metrics and the
// health checks need credentials as well.
func TestAccessProtectMetrics(t *testing.T) {
	dir := t.TempDir()
	tokens := accessWrite(t, dir, "tokens", "metrics-tok\n")
	relay := startRelay(t, filepath.Join(dir, "data"), "--auth-bearer-token-file", tokens, "--auth-protect-metrics")
	for _, path := range []string{"/metrics", "/-/healthy", "/-/ready", "/api/v1/queues"} {
		if st, _, _, err := accessDo(httpClient, "GET", relay.URL+path, nil, nil); err != nil || st != 401 {
			t.Errorf("GET %s without credentials: %d (%v), want 401", path, st, err)
		}
		if st, _, _, err := accessDo(httpClient, "GET", relay.URL+path, nil, map[string]string{"Authorization": "Bearer metrics-tok"}); err != nil || st != 200 {
			t.Errorf("GET %s with the token: %d (%v), want 200", path, st, err)
		}
	}
	relay.stop()
}

// accessCA issues test certificates, as strings for the config files.
type accessCA struct{ *testca.CA }

func newAccessCA(t *testing.T, name string) *accessCA { return &accessCA{testca.New(t, name)} }

// issue returns a PEM certificate and key: for 127.0.0.1 as a server, or a
// client certificate.
func (ca *accessCA) issue(t *testing.T, serial int64, client bool) (string, string) {
	c, k := ca.Issue(t, serial, client)
	return string(c), string(k)
}

// tlsClient trusts ca, presents client if set, and speaks HTTP/2 when the
// server offers it (gRPC needs it).
func tlsClient(ca *accessCA, client *tls.Certificate) *http.Client {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.PEM)
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if client != nil {
		cfg.Certificates = []tls.Certificate{*client}
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true, DisableKeepAlives: false}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// serverSerial handshakes with addr (a fresh connection) and returns the
// serial of the certificate the relay presents.
func serverSerial(addr string, ca *accessCA) (int64, error) {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.PEM)
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", addr, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

// waitServerSerial waits until new connections see serial.
func waitServerSerial(t *testing.T, addr string, ca *accessCA, serial int64) {
	t.Helper()
	waitFor(t, deliverDeadline, fmt.Sprintf("the relay to present certificate %d", serial), func() (bool, string) {
		got, err := serverSerial(addr, ca)
		return err == nil && got == serial, fmt.Sprintf("serial %d, err %v", got, err)
	})
}

// TestAccessTLS: the listener serves TLS with HTTP/2 by ALPN (gRPC Push
// works), refuses plain HTTP, reloads the certificate when the files change
// and on SIGHUP, and keeps the old one when the new files are broken.
func TestAccessTLS(t *testing.T) {
	ca := newAccessCA(t, "test ca")
	dir := t.TempDir()
	c1, k1 := ca.issue(t, 1, false)
	certFile, keyFile := accessWrite(t, dir, "tls.crt", c1), accessWrite(t, dir, "tls.key", k1)
	dest := newRecorder(t, nil)
	cfg := writeConfig(t, dir, fastDestinations(map[string]string{"d": dest.URL()}))
	relay := startRelay(t, filepath.Join(dir, "data"), "--config", cfg,
		"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-reload-interval", "50ms")
	addr := strings.TrimPrefix(relay.URL, "http://")
	base := "https://" + addr
	client := tlsClient(ca, nil)

	req, _ := http.NewRequest(http.MethodPost, ingestURL(base, "tls-ingest"), bytes.NewReader(foldedBody("tls-ingest")))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST /ingest over TLS: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("POST /ingest over TLS: status %d, %s; want 200 over HTTP/2", resp.StatusCode, resp.Proto)
	}
	for name, opts := range map[string][]connect.ClientOption{
		"tls-grpc":     {connect.WithGRPC()},
		"tls-connect":  nil,
		"tls-grpc-web": {connect.WithGRPCWeb()},
	} {
		if err := accessPush(t, pushv1connect.NewPusherServiceClient(client, base, opts...), name, nil); err != nil {
			t.Errorf("%s push over TLS: %v", name, err)
		}
	}
	if st, _, _, err := accessDo(httpClient, "POST", ingestURL(relay.URL, "plain"), foldedBody("plain"), nil); err == nil && st == 200 {
		t.Errorf("plain HTTP to the TLS port was accepted")
	}
	waitFor(t, deliverDeadline, "the TLS requests at the destination", func() (bool, string) {
		n := len(dest.accepted()) + len(dest.acceptedPushes())
		return n == 4, fmt.Sprintf("%d of 4", n)
	})

	// Rotation by file change (polled every 50ms).
	c2, k2 := ca.issue(t, 2, false)
	accessWrite(t, dir, "tls.key", k2)
	accessWrite(t, dir, "tls.crt", c2)
	waitServerSerial(t, addr, ca, 2)
	// The connection pool may hold a connection from before: requests
	// keep working across a rotation.
	if st, _, _, err := accessDo(client, "POST", ingestURL(base, "after-rotation"), foldedBody("r"), nil); err != nil || st != 200 {
		t.Errorf("after rotation: %d, %v", st, err)
	}

	// A broken rotation: serial 2 stays in service, the error is logged.
	// (The rotation above may have failed once already, had a poll fallen
	// between the key and the certificate.)
	const tlsErrors = `pyrorelay_access_reloads_total{result="error",what="tls"}`
	before := metricTLS(t, base, client, tlsErrors)
	accessWrite(t, dir, "tls.crt", "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
	waitFor(t, deliverDeadline, "a failed TLS reload", func() (bool, string) {
		got := metricTLS(t, base, client, tlsErrors)
		return got > before, fmt.Sprintf("%g failures, %g before", got, before)
	})
	if got, err := serverSerial(addr, ca); err != nil || got != 2 {
		t.Errorf("after a broken rotation: serial %d, err %v; want 2", got, err)
	}
	relay.stop()
	if !strings.Contains(relay.Stderr.String(), "still serving the previous certificate") {
		t.Errorf("the broken rotation was not logged")
	}
}

// TestAccessTLSReloadOnSIGHUP: with polling off, only SIGHUP reloads.
func TestAccessTLSReloadOnSIGHUP(t *testing.T) {
	ca := newAccessCA(t, "test ca")
	dir := t.TempDir()
	c1, k1 := ca.issue(t, 1, false)
	certFile, keyFile := accessWrite(t, dir, "tls.crt", c1), accessWrite(t, dir, "tls.key", k1)
	relay := startRelay(t, filepath.Join(dir, "data"), "--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-reload-interval", "0")
	addr := strings.TrimPrefix(relay.URL, "http://")
	c2, k2 := ca.issue(t, 2, false)
	accessWrite(t, dir, "tls.key", k2)
	accessWrite(t, dir, "tls.crt", c2)
	if got, err := serverSerial(addr, ca); err != nil || got != 1 {
		t.Fatalf("without SIGHUP and polling nothing may change: serial %d, err %v", got, err)
	}
	signalRelay(t, relay, syscall.SIGHUP)
	waitServerSerial(t, addr, ca, 2)
	c := tlsClient(ca, nil)
	if got := metricTLS(t, "https://"+addr, c, `pyrorelay_access_reloads_total{result="ok",what="tls"}`); got != 1 {
		t.Errorf("TLS reloads counted: %g, want the one SIGHUP", got)
	}
	m := scrapeTLS(t, "https://"+addr, c)
	if !strings.Contains(m, "pyrorelay_tls_certificate_not_after_timestamp_seconds") {
		t.Errorf("no certificate expiry metric")
	}
	relay.stop()
}

// metricTLS returns the value of sample (written as /metrics writes it,
// labels sorted) from base over c; a missing sample reads as 0.
func metricTLS(t *testing.T, base string, c *http.Client, sample string) float64 {
	t.Helper()
	for _, line := range strings.Split(scrapeTLS(t, base, c), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	return 0
}

// scrapeTLS returns the raw /metrics text over c.
func scrapeTLS(t *testing.T, base string, c *http.Client) string {
	t.Helper()
	st, _, body, err := accessDo(c, "GET", base+"/metrics", nil, nil)
	if err != nil || st != 200 {
		t.Fatalf("GET /metrics: %d, %v", st, err)
	}
	return body
}

// TestAccessMutualTLS: with --tls-client-ca-file, only clients with a
// certificate of that CA get through, over HTTP/1.1 and HTTP/2 (gRPC).
func TestAccessMutualTLS(t *testing.T) {
	ca, clientCA, otherCA := newAccessCA(t, "server ca"), newAccessCA(t, "client ca"), newAccessCA(t, "other ca")
	dir := t.TempDir()
	c1, k1 := ca.issue(t, 1, false)
	certFile, keyFile := accessWrite(t, dir, "tls.crt", c1), accessWrite(t, dir, "tls.key", k1)
	caFile := accessWrite(t, dir, "client-ca.crt", string(clientCA.PEM))
	dest := newRecorder(t, nil)
	cfg := writeConfig(t, dir, fastDestinations(map[string]string{"d": dest.URL()}))
	relay := startRelay(t, filepath.Join(dir, "data"), "--config", cfg,
		"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-client-ca-file", caFile)
	base := "https://" + strings.TrimPrefix(relay.URL, "http://")
	pair := func(ca *accessCA) *tls.Certificate {
		c, k := ca.issue(t, 5, true)
		p, err := tls.X509KeyPair([]byte(c), []byte(k))
		if err != nil {
			t.Fatal(err)
		}
		return &p
	}
	for _, tc := range []struct {
		name   string
		client *tls.Certificate
		ok     bool
	}{
		{"no client certificate", nil, false},
		{"certificate of another CA", pair(otherCA), false},
		{"certificate of the client CA", pair(clientCA), true},
	} {
		c := tlsClient(ca, tc.client)
		st, _, _, err := accessDo(c, "POST", ingestURL(base, "mtls-"+tc.name), foldedBody("m"), nil)
		if tc.ok != (err == nil && st == 200) {
			t.Errorf("%s: /ingest status %d, err %v; want success %v", tc.name, st, err, tc.ok)
		}
		err = accessPush(t, pushv1connect.NewPusherServiceClient(c, base, connect.WithGRPC()), "mtls-grpc-"+tc.name, nil)
		if tc.ok != (err == nil) {
			t.Errorf("%s: gRPC push err %v; want success %v", tc.name, err, tc.ok)
		}
		_, _, _, err = accessDo(c, "GET", base+"/metrics", nil, nil)
		if tc.ok != (err == nil) {
			t.Errorf("%s: /metrics err %v; want success %v (mTLS is checked before any path)", tc.name, err, tc.ok)
		}
	}
	waitFor(t, deliverDeadline, "the mTLS requests at the destination", func() (bool, string) {
		n := len(dest.accepted()) + len(dest.acceptedPushes())
		return n == 2, fmt.Sprintf("%d of 2", n)
	})
	relay.stop()
}

// TestAccessTenantIsolation: two destinations, one with tenant_id and
// basic auth, one with a bearer token and no tenant. A client tenant
// reaches only the destination without its own, and only with
// --tenant-passthrough; each destination sees only its own credentials;
// the client's credentials reach none.
func TestAccessTenantIsolation(t *testing.T) {
	for _, pass := range []bool{true, false} {
		t.Run(fmt.Sprintf("passthrough=%v", pass), func(t *testing.T) {
			dir := t.TempDir()
			fixed, open := newRecorder(t, nil), newRecorder(t, nil)
			cfg := writeConfig(t, dir, fmt.Sprintf(`destinations:
  - name: fixed
    url: %s
    tenant_id: fixed
    basic_auth: {username: dest-one, password: dest-one-pw}
    min_backoff: 10ms
    max_backoff: 50ms
  - name: open
    url: %s
    bearer_token: dest-two-token
    min_backoff: 10ms
    max_backoff: 50ms
`, fixed.URL(), open.URL()))
			tokens := accessWrite(t, dir, "tokens", "client-token\n")
			args := []string{"--config", cfg, "--auth-bearer-token-file", tokens}
			if pass {
				args = append(args, "--tenant-passthrough")
			}
			relay := startRelay(t, filepath.Join(dir, "data"), args...)
			auth := map[string]string{"Authorization": "Bearer client-token"}
			withTenant := map[string]string{"Authorization": "Bearer client-token", "X-Scope-OrgID": "client-t"}
			for id, hdr := range map[string]map[string]string{"with-tenant": withTenant, "no-tenant": auth} {
				if st, _, body, err := accessDo(httpClient, "POST", ingestURL(relay.URL, id), foldedBody(id), hdr); err != nil || st != 200 {
					t.Fatalf("ingest %s: %d %v %s", id, st, err, body)
				}
				if err := accessPush(t, pushv1connect.NewPusherServiceClient(httpClient, relay.URL), "push-"+id, hdr); err != nil {
					t.Fatalf("push %s: %v", id, err)
				}
			}
			for _, d := range []*recorder{fixed, open} {
				waitFor(t, deliverDeadline, "four requests at "+d.URL(), func() (bool, string) {
					n := len(d.accepted()) + len(d.acceptedPushes())
					return n == 4, fmt.Sprintf("%d of 4", n)
				})
			}
			check := func(name string, d *recorder, wantAuth string, wantTenant func(id string) string, foreign ...string) {
				for _, r := range d.requests() {
					id := requestID(t, r)
					tenant := wantTenant("no-tenant")
					if strings.Contains(id, "with-tenant") {
						tenant = wantTenant("with-tenant")
					}
					if got := r.Header.Get("X-Scope-OrgID"); got != tenant {
						t.Errorf("%s %s (%s): X-Scope-OrgID %q, want %q", name, r.Path, id, got, tenant)
					}
					if got := r.Header.Get("Authorization"); got != wantAuth {
						t.Errorf("%s %s: Authorization %q, want %q", name, r.Path, got, wantAuth)
					}
					var all strings.Builder
					for k, v := range r.Header {
						fmt.Fprintf(&all, "%s: %s\n", k, strings.Join(v, ","))
					}
					all.Write(r.Body)
					for _, f := range foreign {
						if strings.Contains(all.String(), f) {
							t.Errorf("%s received %q, which is not its own", name, f)
						}
					}
				}
			}
			check("fixed", fixed, basicHeader("dest-one", "dest-one-pw"),
				func(string) string { return "fixed" },
				"client-token", "dest-two-token", "client-t")
			check("open", open, "Bearer dest-two-token",
				func(id string) string {
					if pass && id == "with-tenant" {
						return "client-t"
					}
					return ""
				},
				"client-token", "dest-one", base64.StdEncoding.EncodeToString([]byte("dest-one:dest-one-pw")), "fixed")
			relay.stop()
		})
	}
}

// requestID is the req_id of a recorded /ingest or Push request.
func requestID(t *testing.T, r recorded) string {
	t.Helper()
	if r.Path == "/ingest" {
		q, _ := url.ParseQuery(r.RawQuery)
		return q.Get("req_id")
	}
	body := r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("push body: %v", err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			t.Fatalf("push body: %v", err)
		}
	}
	msg := new(pushv1.PushRequest)
	if err := proto.Unmarshal(body, msg); err != nil {
		t.Fatalf("push body: %v", err)
	}
	for _, s := range msg.GetSeries() {
		for _, l := range s.GetLabels() {
			if l.GetName() == "req_id" {
				return l.GetValue()
			}
		}
	}
	return ""
}

// echoServer is a destination that refuses everything with 401 and echoes
// the request's headers in its answer, as some proxies do: the worst case
// for keeping a destination's secrets out of logs and dead letters.
func echoServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		var b strings.Builder
		for k, v := range r.Header {
			fmt.Fprintf(&b, "%s: %s; ", k, strings.Join(v, ","))
		}
		if strings.HasPrefix(r.URL.Path, "/push.v1.") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]string{"code": "unauthenticated", "message": "denied; you sent " + b.String()})
			return
		}
		http.Error(w, "denied; you sent "+b.String(), http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestAccessSecretsNeverLeak configures a unique marker in every secret:
// destination passwords, tokens (inline and in a file), header values, URL
// credentials, and the inbound users and tokens. It drives traffic with
// failures (a destination that answers 401 and echoes the credentials,
// wrong inbound credentials, a broken SIGHUP reload, invalid configs) at
// debug log level, then greps stderr, /metrics and /api for the markers.
func TestAccessSecretsNeverLeak(t *testing.T) {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	mark := "SECRET" + hex.EncodeToString(rnd[:])
	secret := func(what string) string { return what + "-" + mark }
	var (
		destPW     = secret("destpw")
		destTok    = secret("desttok")
		destTokF   = secret("desttokfile")
		destHdr    = secret("desthdr")
		urlPW      = secret("urlpw")
		inboundPW  = secret("inpw")
		inboundTok = secret("intok")
		wrongPW    = secret("wrongpw")
		wrongTok   = secret("wrongtok")
	)
	dir := t.TempDir()
	echo := echoServer(t)
	good := newRecorder(t, nil)
	tokFile := accessWrite(t, dir, "dest-token", destTokF+"\n")
	users := accessWrite(t, dir, "htpasswd", accessHtpasswd(t, "alice", inboundPW))
	tokens := accessWrite(t, dir, "tokens", inboundTok+"\n")
	goodURL := strings.Replace(good.URL(), "http://", "http://relayuser:"+urlPW+"@", 1)
	cfg := writeConfig(t, dir, fmt.Sprintf(`log_level: debug
destinations:
  - name: echo-basic
    url: %[1]s
    basic_auth: {username: relay, password: %[2]s}
    headers: {X-Api-Key: %[3]s}
    min_backoff: 10ms
    max_backoff: 50ms
  - name: echo-token
    url: %[1]s
    bearer_token: %[4]s
    min_backoff: 10ms
    max_backoff: 50ms
  - name: echo-token-file
    url: %[1]s
    bearer_token_file: %[5]s
    min_backoff: 10ms
    max_backoff: 50ms
  - name: good
    url: %[6]s
    bearer_token: %[4]s
    min_backoff: 10ms
    max_backoff: 50ms
`, echo.URL, destPW, destHdr, destTok, tokFile, goodURL))
	relay := startRelay(t, filepath.Join(dir, "data"), "--config", cfg,
		"--auth-basic-users", users, "--auth-bearer-token-file", tokens)

	alice := map[string]string{"Authorization": basicHeader("alice", inboundPW)}
	bearer := map[string]string{"Authorization": "Bearer " + inboundTok}
	var answers []string // every body the relay answered
	for i, hdr := range []map[string]string{
		alice, bearer,
		{"Authorization": basicHeader("alice", wrongPW)},
		{"Authorization": basicHeader(wrongPW, wrongPW)},
		{"Authorization": "Bearer " + wrongTok},
		{"Authorization": "Basic " + wrongTok},
		{"Authorization": wrongTok},
	} {
		id := fmt.Sprintf("leak-%d", i)
		_, h, body, err := accessDo(httpClient, "POST", ingestURL(relay.URL, id), foldedBody(id), hdr)
		if err != nil {
			t.Fatal(err)
		}
		answers = append(answers, body, fmt.Sprint(h))
		if err := accessPush(t, pushv1connect.NewPusherServiceClient(httpClient, relay.URL), id, hdr); err != nil {
			answers = append(answers, err.Error())
		}
	}
	// Two ingest and two pushes were authenticated. Each echo destination
	// answers 401, which says it is misconfigured: it goes down, with the
	// echoed credentials in the reason it logs, and keeps all four queued
	// (tried at least twice over); good takes them.
	for _, d := range []string{"echo-basic", "echo-token", "echo-token-file"} {
		waitMetric(t, relay.URL, `pyrorelay_destination_up{destination="`+d+`"}`, 0)
		waitFor(t, deliverDeadline, d+" tried every entry", func() (bool, string) {
			n := metric(scrape(t, relay.URL), `pyrorelay_forward_attempts_total{destination="`+d+`",result="retry"}`)
			return n >= 8, fmt.Sprintf("%g attempts", n)
		})
	}
	waitFor(t, deliverDeadline, "four requests at good", func() (bool, string) {
		n := len(good.accepted()) + len(good.acceptedPushes())
		return n == 4, fmt.Sprintf("%d of 4", n)
	})
	// Inbound credentials are the relay's: no destination sees them.
	for _, r := range good.requests() {
		for k, v := range r.Header {
			if s := strings.Join(v, ","); strings.Contains(s, inboundPW) || strings.Contains(s, inboundTok) ||
				strings.Contains(s, base64.StdEncoding.EncodeToString([]byte("alice:"+inboundPW))) {
				t.Errorf("inbound credentials forwarded in %s: %s", k, s)
			}
		}
	}
	// A broken reload of the inbound files, with the secrets in them.
	accessWrite(t, dir, "htpasswd", "alice:"+inboundPW+"\n")
	accessWrite(t, dir, "tokens", inboundTok+" "+wrongTok+"\n")
	signalRelay(t, relay, syscall.SIGHUP)
	waitMetric(t, relay.URL, `pyrorelay_access_reloads_total{result="error",what="auth"}`, 1)

	var metricsText string
	if st, _, body, err := accessDo(httpClient, "GET", relay.URL+"/metrics", nil, nil); err == nil && st == 200 {
		metricsText = body
	} else {
		t.Fatalf("GET /metrics: %d %v", st, err)
	}
	for _, path := range []string{"/api/v1/queues", "/api/v1/queues?x=" + mark, "/api/v1/dead-letters", "/api/v1/config", "/api/v1/destinations"} {
		for _, hdr := range []map[string]string{alice, bearer, nil} {
			_, h, body, err := accessDo(httpClient, "GET", relay.URL+path, nil, hdr)
			if err != nil {
				t.Fatal(err)
			}
			answers = append(answers, body, fmt.Sprint(h))
		}
	}
	relay.stop()

	// Configurations that fail at start, each with a secret in it.
	exits := map[string][]string{}
	bad := func(name, yaml string, args ...string) {
		d := t.TempDir()
		a := baseArgs(filepath.Join(d, "data"))
		if yaml != "" {
			a = append(a, "--config", writeConfig(t, d, yaml))
		}
		exits[name] = append(a, args...)
	}
	bad("url with credentials and a bad scheme", "destinations:\n  - name: a\n    url: ftp://u:"+urlPW+"@host\n")
	bad("url with credentials and no scheme", "destinations:\n  - name: a\n    url: u:"+urlPW+"@host:4040\n")
	bad("url with credentials and a query", "destinations:\n  - name: a\n    url: https://u:"+urlPW+"@host/?a=b\n")
	bad("forward-to without a name", "", "--forward-to", "https://u:"+urlPW+"@host")
	bad("forward-to with a bad url", "", "--forward-to", "a=ftp://u:"+urlPW+"@host")
	bad("basic auth and token", "destinations:\n  - name: a\n    url: http://h\n    basic_auth: {username: u, password: "+destPW+"}\n    bearer_token: "+destTok+"\n")
	bad("basic auth as a string", "destinations:\n  - name: a\n    url: http://h\n    basic_auth: u:"+destPW+"\n")
	bad("basic auth with a typo", "destinations:\n  - name: a\n    url: http://h\n    basic_auth: {username: u, pasword: "+destPW+"}\n")
	bad("token as a list", "destinations:\n  - name: a\n    url: http://h\n    bearer_token: ["+destTok+"]\n")
	bad("token key typo", "destinations:\n  - name: a\n    url: http://h\n    bearer_tokn: "+destTok+"\n")
	bad("plain-text htpasswd", "", "--auth-basic-users", accessWrite(t, dir, "plain-htpasswd", "alice:"+inboundPW+"\n"))
	bad("token file with spaces", "", "--auth-bearer-token-file", accessWrite(t, dir, "bad-tokens", inboundTok+" x\n"))
	bad("key file of garbage", "", "--tls-cert-file", accessWrite(t, dir, "c.pem", destPW), "--tls-key-file", accessWrite(t, dir, "k.pem", destTok))
	var outs []string
	for name, args := range exits {
		code, out := runToExit(t, nil, args...)
		if code == 0 {
			t.Errorf("%s: the relay started", name)
		}
		if !strings.Contains(out, "pyrorelay:") {
			t.Errorf("%s: no error message:\n%s", name, out)
		}
		outs = append(outs, name+": "+out)
	}

	for what, s := range map[string]string{
		"stderr":        relay.Stderr.String(),
		"metrics":       metricsText,
		"answers":       strings.Join(answers, "\n"),
		"config errors": strings.Join(outs, "\n"),
	} {
		if strings.Contains(s, mark) {
			var lines []string
			for _, l := range strings.Split(s, "\n") {
				if strings.Contains(l, mark) {
					lines = append(lines, l)
				}
			}
			t.Errorf("a secret shows in %s:\n%s", what, strings.Join(lines, "\n"))
		}
	}
	// The failures were logged, with the masks where the echo was.
	stderr := relay.Stderr.String()
	for _, want := range []string{"destination down", "misconfigured: 401", "<redacted>", "auth files do not load", "refused requests without valid credentials"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
}

// accessClientLog is pyroscope-go's logger: it keeps the errors.
type accessClientLog struct {
	mu     sync.Mutex
	errors []string
}

func (l *accessClientLog) Infof(string, ...any)  {}
func (l *accessClientLog) Debugf(string, ...any) {}
func (l *accessClientLog) Errorf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errors = append(l.errors, fmt.Sprintf(format, args...))
}

func (l *accessClientLog) errs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.errors...)
}

// TestAccessPyroscopeGoClient: the real pyroscope-go client, with its
// basic auth and tenant settings, over TLS, through a relay that requires
// credentials; with a wrong password it is refused and nothing is stored.
func TestAccessPyroscopeGoClient(t *testing.T) {
	ca := newAccessCA(t, "test ca")
	dir := t.TempDir()
	c1, k1 := ca.issue(t, 1, false)
	certFile, keyFile := accessWrite(t, dir, "tls.crt", c1), accessWrite(t, dir, "tls.key", k1)
	users := accessWrite(t, dir, "htpasswd", accessHtpasswd(t, "app", "app-pw"))
	dest := newRecorder(t, nil)
	cfg := writeConfig(t, dir, fastDestinations(map[string]string{"d": dest.URL()}))
	relay := startRelay(t, filepath.Join(dir, "data"), "--config", cfg, "--tenant-passthrough",
		"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--auth-basic-users", users)
	base := "https://" + strings.TrimPrefix(relay.URL, "http://")
	profile := readTestdata(t, "cpu.pb.gz")

	upload := func(password, app string) []string {
		log := &accessClientLog{}
		r, err := remote.NewRemote(remote.Config{
			Address: base, BasicAuthUser: "app", BasicAuthPassword: password, TenantID: "team-x",
			Threads: 1, Timeout: 30 * time.Second, Logger: log, HTTPClient: tlsClient(ca, nil),
		})
		if err != nil {
			t.Fatal(err)
		}
		r.Start()
		end := time.Now()
		r.Upload(&upstream.UploadJob{
			Name: app + ".cpu{env=test}", StartTime: end.Add(-10 * time.Second), EndTime: end,
			SpyName: "gospy", SampleRate: 100, Units: "samples", AggregationType: "sum",
			Format: upstream.FormatPprof, Profile: profile,
		})
		r.Flush()
		r.Stop()
		return log.errs()
	}
	if errs := upload("wrong-pw", "refused"); len(errs) == 0 {
		t.Errorf("a wrong password raised no client error")
	}
	if errs := upload("app-pw", "accepted"); len(errs) > 0 {
		t.Fatalf("the client reported errors: %v", errs)
	}
	waitFor(t, deliverDeadline, "the profile at the destination", func() (bool, string) {
		return len(dest.accepted()) >= 1, "not yet"
	})
	got := dest.accepted()
	if len(got) != 1 || !strings.Contains(got[0].RawQuery, "accepted.cpu") {
		t.Fatalf("destination got %d requests, want only the accepted one", len(got))
	}
	if tenant := got[0].Header.Get("X-Scope-OrgID"); tenant != "team-x" {
		t.Errorf("X-Scope-OrgID %q, want team-x", tenant)
	}
	if a := got[0].Header.Get("Authorization"); a != "" {
		t.Errorf("the client's credentials were forwarded: %q", a)
	}
	relay.stop()
}
