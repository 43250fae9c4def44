package main

import (
	"os"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// revision is the VCS commit, set at build time where the Go toolchain
// cannot read it (a Docker build without .git):
// -ldflags "-X main.revision=$(git rev-parse HEAD)".
var revision = ""

// versionInfo is what `pyrorelay version` prints and pyrorelay_build_info
// exports. The linker flags win; otherwise the module and VCS data the Go
// toolchain embeds, so `go install ...@v1.2.3` reports v1.2.3.
func versionInfo() (ver, rev, goVersion string) {
	ver, rev, goVersion = version, revision, runtime.Version()
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		if rev == "" {
			rev = "unknown"
		}
		return ver, rev, goVersion
	}
	if ver == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		ver = bi.Main.Version
	}
	if bi.GoVersion != "" {
		goVersion = bi.GoVersion
	}
	if rev == "" {
		modified := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev != "" && modified {
			rev += "-dirty"
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	return ver, rev, goVersion
}

// registerBuildInfo exports pyrorelay_build_info, the usual constant-1
// gauge whose labels say what runs, so a dashboard can show the versions
// across a fleet and join them onto other series.
func registerBuildInfo(reg prometheus.Registerer) {
	ver, rev, goVersion := versionInfo()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "pyrorelay_build_info",
		Help:        "Always 1; the labels say which version, commit and Go version run.",
		ConstLabels: prometheus.Labels{"version": ver, "revision": rev, "goversion": goVersion},
	})
	g.Set(1)
	reg.MustRegister(g)
}

// storeSizeCollector exports the bbolt file's size, read at scrape time.
// The file only grows (freed pages are reused, never returned), so this is
// the disk the relay really holds, unlike the queue byte counts.
type storeSizeCollector struct {
	path string
	desc *prometheus.Desc
}

func newStoreSizeCollector(path string) *storeSizeCollector {
	return &storeSizeCollector{
		path: path,
		desc: prometheus.NewDesc("pyrorelay_store_size_bytes",
			"Size of the bbolt queue file on disk (it never shrinks; freed pages are reused).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *storeSizeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector. A failed stat leaves the series
// out of this scrape rather than failing the whole scrape.
func (c *storeSizeCollector) Collect(ch chan<- prometheus.Metric) {
	fi, err := os.Stat(c.path)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(fi.Size()))
}

// commitCounter is what commitCollector reads: *store.Store.
type commitCounter interface {
	CommitCounts() (commits, writes uint64)
}

// commitCollector exports the store's commit and write counters from one
// reading, so that writes/commits in a scrape is a true group-commit
// factor: two separate counter functions would read the store at two
// moments, and a commit could fall between them.
type commitCollector struct {
	src            commitCounter
	commits, wrote *prometheus.Desc
}

func newCommitCollector(src commitCounter) *commitCollector {
	return &commitCollector{
		src: src,
		commits: prometheus.NewDesc("pyrorelay_store_commits_total",
			"Store transactions committed (each one fsync).", nil, nil),
		wrote: prometheus.NewDesc("pyrorelay_store_writes_total",
			"Writes carried by store transactions; writes/commits is the group-commit factor.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *commitCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.commits
	ch <- c.wrote
}

// Collect implements prometheus.Collector.
func (c *commitCollector) Collect(ch chan<- prometheus.Metric) {
	commits, writes := c.src.CommitCounts()
	ch <- prometheus.MustNewConstMetric(c.commits, prometheus.CounterValue, float64(commits))
	ch <- prometheus.MustNewConstMetric(c.wrote, prometheus.CounterValue, float64(writes))
}
