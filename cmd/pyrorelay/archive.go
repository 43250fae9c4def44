package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/daemon"
)

// archiveFlags are serve's archive settings.
func archiveFlags() []cli.Flag {
	return []cli.Flag{
		durationFlag("archive-retention", env("ARCHIVE_RETENTION"), 0, "keep delivered profiles for `DURATION` (by receive time, e.g. 7d) for pyrorelay replay --archive; 0 keeps none"),
		&cli.StringFlag{Name: "archive-max-size", EnvVars: env("ARCHIVE_MAX_SIZE"), Value: "0", Usage: "bound on the archive, e.g. 1GiB; oldest dropped first; 0 is none"},
	}
}

// applyArchiveFlags reads the archive flags over the YAML and checks both.
func applyArchiveFlags(c *cli.Context, cfg *daemon.Config) error {
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
