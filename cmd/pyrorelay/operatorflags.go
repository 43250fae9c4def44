package main

// The flags the operator commands (queue, export, import, replay,
// dead-letter, archive, compact, salvage, drain) share, and how they are
// read: which data dir and config, what to read from it, the filters, the
// checks of an export's entries, and --url for a running relay.

import (
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/adminapi"
	"github.com/pyrorelay/pyrorelay/daemon"
	"github.com/pyrorelay/pyrorelay/datadir"
	"github.com/pyrorelay/pyrorelay/exportfile"
	"github.com/pyrorelay/pyrorelay/selection"
)

// dataDirFlags locate the store: --data-dir, or the data_dir of --config.
func dataDirFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "data-dir", EnvVars: env("DATA_DIR"), Value: daemon.DefaultConfig().DataDir, Usage: "the relay's data directory"},
		&cli.StringFlag{Name: "config", EnvVars: env("CONFIG"), Usage: "take data_dir (and the destinations) from this YAML config; --data-dir wins"},
	}
}

// adminConfig is the config an operator command works with: defaults, then
// --config, then --data-dir if given.
func adminConfig(c *cli.Context) (daemon.Config, error) {
	cfg := daemon.DefaultConfig()
	if path := c.String("config"); path != "" {
		if err := daemon.LoadConfigFile(path, &cfg); err != nil {
			return cfg, err
		}
	}
	if c.IsSet("data-dir") {
		cfg.DataDir = c.String("data-dir")
	}
	if cfg.DataDir == "" {
		return cfg, errors.New("--data-dir is empty: name the relay's data directory")
	}
	return cfg, nil
}

// warnNotConfigured warns, when --config is given, that nothing sends the
// queue name, which the command just filled, while it is no destination
// of the config.
func warnNotConfigured(c *cli.Context, cfg daemon.Config, name string) {
	if c.String("config") != "" && !datadir.DestinationConfigured(cfg, name) {
		fmt.Fprintf(c.App.ErrWriter, "warning: %q is not a destination in %s: nothing will send these entries until it is\n", name, c.String("config"))
	}
}

// sourceFlags choose what to read from a data dir.
func sourceFlags(queueUsage string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "destination", Aliases: []string{"queue"}, Usage: queueUsage},
		&cli.StringFlag{Name: "dead-letter", Usage: "the dead letters of destination `NAME`"},
		&cli.BoolFlag{Name: "archive", Usage: "the archive of delivered entries (serve --archive-retention)"},
	}
}

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

// inputCheckFlags are import's and replay's flags for the checks of
// every entry read from an export (exportfile.Checks).
func inputCheckFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "no-verify", Usage: "accept export entries without a body_sha256 (or whose body does not match it)"},
		&cli.StringFlag{Name: "max-body-size", Value: "4MiB", Usage: "refuse export entries with a larger body, as serve --max-body-size does"},
	}
}

// inputChecksFromFlags reads --no-verify and --max-body-size.
func inputChecksFromFlags(c *cli.Context) (exportfile.Checks, error) {
	n, err := daemon.ParseByteSize(c.String("max-body-size"))
	if err != nil || n <= 0 {
		return exportfile.Checks{}, fmt.Errorf("--max-body-size %q: want a positive size such as 4MiB", c.String("max-body-size"))
	}
	return exportfile.Checks{NoVerify: c.Bool("no-verify"), MaxBodySize: int64(n)}, nil
}

// adminURLFlags ask a running relay instead of reading its data dir.
func adminURLFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "url", EnvVars: env("URL"), Usage: "ask the relay serving at `URL` (its --listen address) instead of reading a stopped relay's data dir; credentials may go in the URL"},
		&cli.StringFlag{Name: "bearer-token-file", Usage: "send the token in `FILE` to the relay at --url"},
		&cli.StringFlag{Name: "ca-file", Usage: "trust the CA certificates in `FILE` for an https --url"},
	}
}

// adminClientOf reads --url, --bearer-token-file and --ca-file.
func adminClientOf(c *cli.Context) adminapi.Client {
	return adminapi.Client{URL: c.String("url"), TokenFile: c.String("bearer-token-file"), CAFile: c.String("ca-file")}
}
