package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pyrorelay/pyrorelay/store"
)

// scrapeFamilies fetches /metrics over a connection of its own (no
// keep-alive, so it leaves no idle connection behind) and parses it with
// the Prometheus text parser.
func scrapeFamilies(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// documentedMetric is one row of the metrics table in docs/operations.md.
type documentedMetric struct {
	name, typ string
	labels    []string
}

var backticked = regexp.MustCompile("`([^`]+)`")

// metricsDoc is the document whose "Metrics" table TestMetricsExported
// checks against the relay's /metrics.
var metricsDoc = filepath.Join("..", "..", "docs", "operations.md")

// documentedMetrics parses the table under metricsDoc's "Metrics" heading:
// first column the metric names, second the type, third the labels (the
// backticked words).
func documentedMetrics(t *testing.T) []documentedMetric {
	t.Helper()
	f, err := os.Open(metricsDoc)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []documentedMetric
	inSection, inTable := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			if inSection && (inTable || len(out) > 0) {
				break
			}
			inSection = strings.TrimSpace(strings.TrimLeft(line, "#")) == "Metrics"
			continue
		}
		if !inSection {
			continue
		}
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break // the table ended
			}
			continue
		}
		inTable = true
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) < 3 || strings.Contains(cells[0], "---") || strings.TrimSpace(cells[0]) == "metric" {
			continue
		}
		var labels []string
		for _, m := range backticked.FindAllStringSubmatch(cells[2], -1) {
			labels = append(labels, m[1])
		}
		for _, m := range backticked.FindAllStringSubmatch(cells[0], -1) {
			out = append(out, documentedMetric{name: m[1], typ: strings.TrimSpace(cells[1]), labels: labels})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf(`%s: no metrics table under a "Metrics" heading`, metricsDoc)
	}
	return out
}

func labelNames(mf *dto.MetricFamily) map[string]bool {
	out := map[string]bool{}
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			out[l.GetName()] = true
		}
	}
	return out
}

// TestMetricsExported runs the relay, sends one profile through it and
// checks its /metrics: every metric docs/operations.md documents, with the
// documented type and labels; the operational metrics of issue 7; and the
// naming conventions of every pyrorelay_ metric.
func TestMetricsExported(t *testing.T) {
	rec := newRecorder(t, nil)
	dataDir := t.TempDir()
	p := startRelay(t, dataDir, "--forward-to", "ok="+rec.URL(), "--max-connections", "37")
	mustPostFolded(t, p.URL, "metrics-1")
	waitFor(t, deliverDeadline, "the profile at the destination", func() (bool, string) {
		return len(rec.accepted()) > 0, "nothing yet"
	})
	fams := scrapeFamilies(t, p.URL)

	t.Run("documented in docs/operations.md", func(t *testing.T) {
		for _, d := range documentedMetrics(t) {
			mf, ok := fams[d.name]
			if !ok {
				t.Errorf("%s is in %s but not exported", d.name, metricsDoc)
				continue
			}
			if got := strings.ToLower(mf.GetType().String()); got != d.typ {
				t.Errorf("%s: type %s, %s says %s", d.name, got, metricsDoc, d.typ)
			}
			have := labelNames(mf)
			for _, l := range d.labels {
				if !have[l] {
					t.Errorf("%s: no label %q, which %s documents", d.name, l, metricsDoc)
				}
			}
		}
	})

	t.Run("conventions", func(t *testing.T) {
		nameRE := regexp.MustCompile(`^pyrorelay_[a-z][a-z0-9_]*[a-z0-9]$`)
		for name, mf := range fams {
			if !strings.HasPrefix(name, "pyrorelay_") {
				continue
			}
			if !nameRE.MatchString(name) {
				t.Errorf("%s: want pyrorelay_ and lower snake case", name)
			}
			if mf.GetHelp() == "" {
				t.Errorf("%s has no HELP", name)
			}
			isCounter := mf.GetType() == dto.MetricType_COUNTER
			if isCounter != strings.HasSuffix(name, "_total") {
				t.Errorf("%s: a %s; counters and only counters end in _total", name, mf.GetType())
			}
			for _, bad := range []string{"_ms", "millis", "_kb", "_mb", "_kib", "_mib", "_minutes", "_hours"} {
				if strings.Contains(name, bad) {
					t.Errorf("%s: use base units, _seconds and _bytes", name)
				}
			}
			for l := range labelNames(mf) {
				if l == "dest" || l == "queue" || l == "destination_name" {
					t.Errorf("%s: label %q; destinations are labelled destination", name, l)
				}
			}
		}
	})

	t.Run("build info", func(t *testing.T) {
		mf := fams["pyrorelay_build_info"]
		if mf == nil || len(mf.GetMetric()) != 1 {
			t.Fatalf("pyrorelay_build_info: want one series, got %v", mf)
		}
		m := mf.GetMetric()[0]
		if m.GetGauge().GetValue() != 1 {
			t.Errorf("pyrorelay_build_info = %v, want 1", m.GetGauge().GetValue())
		}
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["version"] == "" || labels["revision"] == "" || labels["goversion"] != runtime.Version() {
			t.Errorf("pyrorelay_build_info labels %v: want version and revision set and goversion %s", labels, runtime.Version())
		}
	})

	t.Run("store size", func(t *testing.T) {
		mf := fams["pyrorelay_store_size_bytes"]
		if mf == nil {
			t.Fatal("pyrorelay_store_size_bytes is not exported")
		}
		fi, err := os.Stat(filepath.Join(dataDir, store.FileName))
		if err != nil {
			t.Fatal(err)
		}
		// The file only grows, so the scrape before the stat is at most it.
		if got := mf.GetMetric()[0].GetGauge().GetValue(); got <= 0 || got > float64(fi.Size()) {
			t.Errorf("pyrorelay_store_size_bytes = %v, file is %d bytes", got, fi.Size())
		}
	})

	t.Run("destination series exist before any event", func(t *testing.T) {
		// The alert on dead letters needs the series at 0 before the
		// first one, or increase() never sees it.
		for _, want := range []struct{ metric, label, value string }{
			{"pyrorelay_dead_lettered_total", "reason", "permanent"},
			{"pyrorelay_dead_lettered_total", "reason", "poison"},
			{"pyrorelay_forward_attempts_total", "result", "permanent"},
			{"pyrorelay_quarantined_total", "destination", "ok"},
		} {
			found := false
			for _, m := range fams[want.metric].GetMetric() {
				for _, l := range m.GetLabel() {
					found = found || (l.GetName() == want.label && l.GetValue() == want.value)
				}
			}
			if !found {
				t.Errorf("%s{%s=%q} is not exported at 0", want.metric, want.label, want.value)
			}
		}
	})

	t.Run("connections against the limit", func(t *testing.T) {
		gauge := func(name string) float64 {
			mf := scrapeFamilies(t, p.URL)[name]
			if mf == nil || len(mf.GetMetric()) != 1 {
				t.Fatalf("%s: want one series", name)
			}
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
		if got := gauge("pyrorelay_http_connections_limit"); got != 37 {
			t.Errorf("pyrorelay_http_connections_limit = %v, want 37 (--max-connections)", got)
		}
		// Only the scrape's own connection open: the scrape client keeps
		// none, and the shared test client lets its idle ones go.
		httpClient.CloseIdleConnections()
		waitFor(t, deliverDeadline, "no connection but the scrape's", func() (bool, string) {
			got := gauge("pyrorelay_http_connections")
			return got == 1, fmt.Sprintf("got %v", got)
		})
		const base = 1
		addr := strings.TrimPrefix(p.URL, "http://")
		var conns []net.Conn
		for range 3 {
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		waitFor(t, deliverDeadline, "3 more open connections", func() (bool, string) {
			got := gauge("pyrorelay_http_connections")
			return got >= base+3, fmt.Sprintf("got %v, %v before", got, base)
		})
		for _, c := range conns {
			c.Close()
		}
		waitFor(t, deliverDeadline, "the connections closed", func() (bool, string) {
			got := gauge("pyrorelay_http_connections")
			return got <= base, fmt.Sprintf("got %v, %v before", got, base)
		})
	})
	p.stop()
}

// TestVersionCommand checks `pyrorelay version` both from the toolchain's
// build information and with the linker flags packaging sets.
func TestVersionCommand(t *testing.T) {
	out, err := runCLI(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	platform := runtime.GOOS + "/" + runtime.GOARCH
	want := regexp.MustCompile(`^pyrorelay \S+ \(revision \S+, ` + regexp.QuoteMeta(runtime.Version()+", "+platform) + `\)\n$`)
	if !want.MatchString(out) {
		t.Errorf("version printed %q, want it to match %s", out, want)
	}
	if flag, err := runCLI(t, "--version"); err != nil || flag != out {
		t.Errorf("--version printed %q (%v), version %q: want the same", flag, err, out)
	}

	if testing.Short() {
		t.Skip("the linker-flag build takes a while")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	bin := filepath.Join(t.TempDir(), "pyrorelay")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, goTool, "build", "-o", bin, "-ldflags", "-X main.version=v9.8.7 -X main.revision=abc1234", ".")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	got, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if w := "pyrorelay v9.8.7 (revision abc1234, " + runtime.Version() + ", " + platform + ")\n"; string(got) != w {
		t.Errorf("version printed %q, want %q", got, w)
	}
}

// TestShellCompletion checks the completion hook the packaged completion
// scripts call.
func TestShellCompletion(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"--generate-bash-completion"}, []string{"serve", "config", "version"}},
		{[]string{"config", "--generate-bash-completion"}, []string{"check"}},
	}
	for _, tc := range tests {
		// The real binary: urfave/cli answers completion requests on the
		// process's stdout.
		p := launch(t, relayOpts{rawArgs: true}, tc.args...)
		if code := p.waitExit(stopDeadline); code != 0 {
			t.Fatalf("%v: exit code %d\n%s", tc.args, code, p.Stderr.String())
		}
		words := strings.Fields(p.Stdout.String())
		for _, w := range tc.want {
			if !slices.Contains(words, w) {
				t.Errorf("%v offers %q, want %q among them", tc.args, words, w)
			}
		}
	}
}

// TestServeGCDefault: serve runs the collector at defaultGOGC unless GOGC
// says otherwise.
func TestServeGCDefault(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  []string
		want float64
	}{
		{"no GOGC", nil, defaultGOGC},
		{"GOGC set", []string{"GOGC=50"}, 50},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := startRelayOpts(t, relayOpts{env: tt.env}, baseArgs(t.TempDir())...)
			if got := scrape(t, p.URL)["go_gc_gogc_percent"]; got != tt.want {
				t.Errorf("go_gc_gogc_percent = %v, want %v", got, tt.want)
			}
		})
	}
}
