package daemon

import (
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyrorelay/pyrorelay/store"
)

// storeSizeCollector exports the bbolt file's size and the record log's,
// read at scrape time. The file only grows (freed pages are reused, never
// returned); a segment of the log goes once nothing in it is live. Their
// sum is the disk the relay really holds, unlike the queue byte counts.
type storeSizeCollector struct {
	path    string
	desc    *prometheus.Desc
	logDesc *prometheus.Desc
}

func newStoreSizeCollector(path string) *storeSizeCollector {
	return &storeSizeCollector{
		path: path,
		desc: prometheus.NewDesc("pyrorelay_store_size_bytes",
			"Size of the bbolt queue file on disk (it never shrinks; freed pages are reused).", nil, nil),
		logDesc: prometheus.NewDesc("pyrorelay_store_log_bytes",
			"Size of the record log's segment files on disk, beside the bbolt file (a segment goes once nothing in it is live).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *storeSizeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	ch <- c.logDesc
}

// Collect implements prometheus.Collector. A failed stat leaves the series
// out of this scrape rather than failing the whole scrape.
func (c *storeSizeCollector) Collect(ch chan<- prometheus.Metric) {
	fi, err := os.Stat(c.path)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(fi.Size()))
	if n, err := store.LogBytes(filepath.Dir(c.path)); err == nil {
		ch <- prometheus.MustNewConstMetric(c.logDesc, prometheus.GaugeValue, float64(n))
	}
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
