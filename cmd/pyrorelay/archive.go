package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/relay"
	"github.com/pyrorelay/pyrorelay/store"
)

// archiveSweepInterval is how often serve trims the archive. Entries
// outlive their retention by at most this much.
const archiveSweepInterval = time.Minute

// archiveFlags are serve's archive settings.
func archiveFlags() []cli.Flag {
	return []cli.Flag{
		durationFlag("archive-retention", env("ARCHIVE_RETENTION"), 0, "keep delivered profiles for `DURATION` (by receive time, e.g. 7d) for pyrorelay replay --archive; 0 keeps none"),
		&cli.StringFlag{Name: "archive-max-size", EnvVars: env("ARCHIVE_MAX_SIZE"), Value: "0", Usage: "bound on the archive, e.g. 1GiB; oldest dropped first; 0 is none"},
	}
}

// applyArchiveFlags reads the archive flags over the YAML and checks both.
func applyArchiveFlags(c *cli.Context, cfg *Config) error {
	if c.IsSet("archive-retention") {
		cfg.ArchiveRetention = c.Duration("archive-retention")
	}
	if c.IsSet("archive-max-size") {
		n, err := parseByteSize(c.String("archive-max-size"))
		if err != nil {
			return fmt.Errorf("--archive-max-size: %w", err)
		}
		cfg.ArchiveMaxSize = n
	}
	if cfg.ArchiveRetention < 0 {
		return fmt.Errorf("archive_retention: must not be negative, got %s", cfg.ArchiveRetention)
	}
	if cfg.ArchiveMaxSize < 0 {
		return fmt.Errorf("archive_max_size: must not be negative, got %d", cfg.ArchiveMaxSize)
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
