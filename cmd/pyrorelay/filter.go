package main

import (
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/selection"
)

// selectFlags are the filters shared by export, replay and dead-letter.
func selectFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "since", Usage: "only entries received at or after `T`: RFC 3339 (2026-03-01T12:00:00Z), a date (2026-03-01, UTC) or relative to now (-2h, -30m, -7d)"},
		&cli.StringFlag{Name: "until", Usage: "only entries received before `T` (same forms as --since)"},
		&cli.StringFlag{Name: "app", Usage: "only entries of application `NAME`, in the ingest name syntax: myapp, myapp.cpu or myapp{env=prod} (labels must all match)"},
	}
}

// selectionFromFlags reads --since, --until and --app.
func selectionFromFlags(c *cli.Context, now time.Time) (selection.Selection, error) {
	return selection.Parse(c.String("since"), c.String("until"), c.String("app"), now)
}
