package operations

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pyrorelay/pyrorelay/internal/testca"
)

// Generous: the first build may compile the relay from a cold cache on a
// loaded 2-core machine.
const (
	buildTimeout = 5 * time.Minute
	waitDeadline = 60 * time.Second
)

// family is one metric family of a scrape: its type and, per label, the
// values seen.
type family struct {
	typ    dto.MetricType
	labels map[string]map[string]bool
}

func (f *family) labelNames() []string { return keys(boolKeys(f.labels)) }

func boolKeys(m map[string]map[string]bool) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

// families is a parsed /metrics.
type families map[string]*family

// lookup finds a metric as a query names it: a histogram's _bucket (with
// its le label), _sum and _count series belong to the histogram's family.
func (fs families) lookup(name string) (*family, bool) {
	if f, ok := fs[name]; ok {
		return f, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		f, ok := fs[base]
		if !ok || (f.typ != dto.MetricType_HISTOGRAM && f.typ != dto.MetricType_SUMMARY) {
			continue
		}
		if suffix == "_bucket" {
			if f.typ != dto.MetricType_HISTOGRAM {
				continue
			}
			withLE := &family{typ: f.typ, labels: map[string]map[string]bool{"le": {}}}
			for k, v := range f.labels {
				withLE.labels[k] = v
			}
			return withLE, true
		}
		return f, true
	}
	return nil, false
}

func parseFamilies(r io.Reader) (families, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	out := families{}
	for name, mf := range mfs {
		f := &family{typ: mf.GetType(), labels: map[string]map[string]bool{}}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if f.labels[lp.GetName()] == nil {
					f.labels[lp.GetName()] = map[string]bool{}
				}
				f.labels[lp.GetName()][lp.GetValue()] = true
			}
		}
		out[name] = f
	}
	return out, nil
}

// goTool finds the go command that runs these tests.
func goTool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("these tests build the relay and need the go command: not on PATH nor in %s", p)
	}
	return p
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key into dir
// and returns their paths and a pool that trusts the certificate's CA.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	ca := testca.New(t, "pyrorelay-operations-test")
	certPEM, keyPEM := ca.Issue(t, 1, false)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, ca.Pool()
}

// scrapeRunningRelay builds and starts pyrorelay with one destination,
// serving TLS (so the certificate metrics exist), sends it one profile so
// every labelled series exists, and returns its parsed /metrics.
func scrapeRunningRelay(t *testing.T) families {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile, pool := selfSignedCert(t, dir)
	client := &http.Client{Timeout: waitDeadline, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(client.CloseIdleConnections)
	bin := filepath.Join(dir, "pyrorelay")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	build := exec.CommandContext(ctx, goTool(t), "build", "-o", bin, "../cmd/pyrorelay")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ../cmd/pyrorelay: %v\n%s", err, out)
	}

	var delivered atomic.Int64
	dest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		delivered.Add(1)
	}))
	t.Cleanup(dest.Close)

	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"),
		"--log-format", "json", "--forward-to", "ok="+dest.URL, "--max-disk-usage", "1GiB",
		"--tls-cert-file", certFile, "--tls-key-file", keyFile)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PYRORELAY_") { // the host must not change the test
			cmd.Env = append(cmd.Env, kv)
		}
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrCh := make(chan string, 1)
	var logBuf strings.Builder
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			logBuf.WriteString(sc.Text() + "\n")
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "serving" && rec.Addr != "" {
				select {
				case addrCh <- rec.Addr:
				default:
				}
			}
		}
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		exited := make(chan error, 1)
		go func() { <-logDone; exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("relay exit after SIGTERM: %v\n%s", err, logBuf.String())
			}
		case <-time.After(waitDeadline):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("relay did not stop within %s of SIGTERM", waitDeadline)
		}
	}
	t.Cleanup(stop)

	var base string
	select {
	case addr := <-addrCh:
		base = "https://" + addr
	case <-logDone:
		t.Fatalf("relay exited before serving")
	case <-time.After(waitDeadline):
		t.Fatalf("relay did not log \"serving\" within %s", waitDeadline)
	}

	q := url.Values{"name": {"app.cpu{env=ops}"}, "format": {"folded"}}
	resp, err := client.Post(base+"/ingest?"+q.Encode(), "text/plain", strings.NewReader("main;work 10\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /ingest: status %d", resp.StatusCode)
	}
	deadline := time.Now().Add(waitDeadline)
	for delivered.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the destination got nothing within %s", waitDeadline)
		}
		time.Sleep(20 * time.Millisecond)
	}

	resp, err = client.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	fams, err := parseFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	stop()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("relay exports %d metric families", len(fams))
	return fams
}
