package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyrorelay/pyrorelay/relay"
	"github.com/pyrorelay/pyrorelay/store"
)

// archiveSweepInterval is how often a running relay trims the archive. Entries
// outlive their retention by at most this much.
const archiveSweepInterval = time.Minute

// checkArchive refuses a negative archive_retention or archive_max_size.
func (c *Config) checkArchive() error {
	if c.ArchiveRetention < 0 {
		return fmt.Errorf("archive_retention: must not be negative, got %s", c.ArchiveRetention)
	}
	if c.ArchiveMaxSize < 0 {
		return fmt.Errorf("archive_max_size: must not be negative, got %d", c.ArchiveMaxSize)
	}
	return nil
}

// startArchiveSweeper trims the archive now and then every
// archiveSweepInterval, until the returned stop is called; stop waits for a
// sweep in progress, so call it before closing the store.
func startArchiveSweeper(st *store.Store, cfg Config, log *slog.Logger) (stop func()) {
	if cfg.ArchiveRetention <= 0 && cfg.ArchiveMaxSize <= 0 {
		return func() {}
	}
	log.Info("archiving delivered profiles", "retention", cfg.ArchiveRetention, "max_size", int64(cfg.ArchiveMaxSize))
	if cfg.ArchiveMaxSize <= 0 && cfg.MaxDiskUsage <= 0 {
		log.Warn("the archive has no size bound: it grows until the disk is full, then gives way to new profiles; set --archive-max-size or --max-disk-usage")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(archiveSweepInterval)
		defer t.Stop()
		for {
			res, err := st.SweepArchive(ctx, time.Now())
			switch {
			case err != nil && ctx.Err() == nil:
				log.Error("sweep archive", "err", err)
			case res.Entries > 0:
				log.Debug("archive swept", "entries", res.Entries, "bytes", res.Bytes)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// orphanCollector exports pyrorelay_orphan_queue_entries{destination}:
// entries waiting in the queue of a destination that is no longer
// configured (renamed or removed). They are kept; `pyrorelay queue move` or
// `pyrorelay replay --queue` sends them somewhere. The label is
// "destination", the former destination's name, like every other
// per-queue metric.
type orphanCollector struct {
	src        relay.StatsSource
	configured map[string]bool
	desc       *prometheus.Desc
}

func newOrphanCollector(src relay.StatsSource, configured []string) *orphanCollector {
	known := map[string]bool{}
	for _, n := range configured {
		known[n] = true
	}
	if len(configured) == 0 {
		known[store.HoldQueue] = true // store-only mode fills the hold queue on purpose
	}
	return &orphanCollector{
		src:        src,
		configured: known,
		desc: prometheus.NewDesc("pyrorelay_orphan_queue_entries",
			"Entries (dead letters included) in a queue that no configured destination drains; move them with `pyrorelay queue move`.",
			[]string{"destination"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (o *orphanCollector) Describe(ch chan<- *prometheus.Desc) { ch <- o.desc }

// Collect implements prometheus.Collector.
func (o *orphanCollector) Collect(ch chan<- prometheus.Metric) {
	stats, err := o.src.Stats()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(o.desc, err)
		return
	}
	for name, s := range stats {
		if o.configured[name] || (s.Entries == 0 && s.DeadEntries == 0) {
			continue
		}
		ch <- prometheus.MustNewConstMetric(o.desc, prometheus.GaugeValue, float64(s.Entries+s.DeadEntries), name)
	}
}
