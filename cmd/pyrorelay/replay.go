package main

import (
	"errors"
	"fmt"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/adminapi"
	"github.com/pyrorelay/pyrorelay/exportfile"
	"github.com/pyrorelay/pyrorelay/progress"
	"github.com/pyrorelay/pyrorelay/relay"
	"github.com/pyrorelay/pyrorelay/replay"
	"github.com/pyrorelay/pyrorelay/report"
)

func replayCommand() *cli.Command {
	return &cli.Command{
		Name:      "replay",
		Usage:     "send stored or exported profiles to any Pyroscope (or another relay)",
		ArgsUsage: " ",
		Description: `Sends entries with the relay's own client and retry policy (backoff, Retry-After,
poison cap) to --to, from a stopped relay's data dir (--queue, --dead-letter or
--archive), from an export directory, or from ndjson on stdin (--from -).
Entries are read in bounded pages, so any number of them replays in bounded
memory. Progress (entries, bytes, rate, ETA) is redrawn on a terminal and
logged as plain lines otherwise.

Replaying a --queue removes each entry from it once delivered, the way the
relay would (use it to drain an orphan queue somewhere); --keep leaves them.
Dead letters and the archive are never changed by a replay.

A Pyroscope server refuses profiles older than its -validation.reject-older-than
(1h by default): replay old data to a server started with a larger window.

Examples:
   pyrorelay replay --archive --since -6h --to http://pyroscope:4040 --data-dir /var/lib/pyrorelay
   pyrorelay replay --queue old-backend --to https://profiles.example.com --rate 50
   pyrorelay replay --from /tmp/prod-backlog --to http://127.0.0.1:4040 --app 'checkout{env=prod}' --dry-run
   ssh edge-7 pyrorelay export --archive --out - | pyrorelay replay --from - --to http://pyroscope:4040`,
		Flags: append(append(append(append(dataDirFlags(), sourceFlags("the queue of destination `NAME` (delivered entries leave it unless --keep)")...), selectFlags()...),
			&cli.StringFlag{Name: "to", Usage: "where to send (required unless --dry-run): a Pyroscope or relay base `URL`, or the name of a destination in --config (its credentials and TLS settings are used)"},
			&cli.StringFlag{Name: "from", Usage: "read from `PATH`: a data dir, an export directory, or - for ndjson on stdin (default: --data-dir)"},
			&cli.StringFlag{Name: "rate", Usage: "send at most `N` entries per second (50 or 50/s); default: as fast as the destination takes them"},
			&cli.IntFlag{Name: "concurrency", Value: relay.DefaultConcurrency, Usage: "requests in flight (1 keeps the order exactly)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "list what would be sent, send nothing"},
			&cli.BoolFlag{Name: "keep", Usage: "with --queue: leave delivered entries in the queue"},
			&cli.StringSliceFlag{Name: "header", Usage: "extra request header `K=V`, repeatable (for example X-Scope-OrgID=tenant-a)"},
			&cli.StringFlag{Name: "bearer-token-file", Usage: "send the token in `FILE` as Authorization: Bearer"},
			&cli.StringFlag{Name: "tenant", Usage: "send X-Scope-OrgID `ID`, replacing the stored tenant"},
			durationFlag("timeout", nil, relay.DefaultTimeout, "allow `DURATION` for one request"),
			durationFlag("max-backoff", nil, replay.DefaultMaxBackoff, "wait at most `DURATION` between retries of one entry"),
		), inputCheckFlags()...),
		Action: runReplay,
	}
}

// replayTarget reads --to and the flags that adjust its destination.
func replayTarget(c *cli.Context) replay.Target {
	t := replay.Target{To: c.String("to"), Headers: c.StringSlice("header"), BearerTokenFile: c.String("bearer-token-file"),
		Tenant: c.String("tenant"), Concurrency: c.Int("concurrency")}
	if c.IsSet("timeout") {
		d := c.Duration("timeout")
		t.Timeout = &d
	}
	if c.IsSet("max-backoff") {
		d := c.Duration("max-backoff")
		t.MaxBackoff = &d
	}
	return t
}

func runReplay(c *cli.Context) error {
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cfg, err := adminConfig(c)
	if err != nil {
		return err
	}
	sel, err := selectionFromFlags(c, time.Now())
	if err != nil {
		return err
	}
	rate, err := replay.ParseRate(c.String("rate"))
	if err != nil {
		return err
	}
	dry := c.Bool("dry-run")
	var dest relay.Destination
	switch {
	case c.String("to") != "":
		if dest, err = replay.Destination(cfg.Destinations, replayTarget(c)); err != nil {
			return err
		}
	case !dry:
		return errors.New("replay needs --to URL: the Pyroscope (or relay) to send to; or --dry-run to list what would be sent")
	}
	in, err := replay.Open(ctx, replay.From{Path: c.String("from"), DataDir: cfg.DataDir,
		Queue: c.String("destination"), DeadLetter: c.String("dead-letter"), Archive: c.Bool("archive"),
		Keep: c.Bool("keep"), DryRun: dry, Selection: sel, Stdin: c.App.Reader,
		Checks: func() (exportfile.Checks, error) { return inputChecksFromFlags(c) }})
	if err != nil {
		return err
	}
	defer in.Close()
	to := adminapi.RedactURL(dest.URL)
	if dry {
		return replay.DryRun(c.App.Writer, in.Source, in.What, to, sel)
	}
	sender, retries, err := replay.NewSender(dest, c.App.ErrWriter)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.ErrWriter, "replaying %s to %s%s\n", in.What, to, sel.Describe())
	prog := progress.NewWithStatus(c.App.Writer, "sent", in.Entries, in.Bytes, retries.Last)
	res := replay.Run(ctx, in.Source, replay.Options{
		Sender: sender, Concurrency: dest.Concurrency, Rate: rate, Ack: in.Ack,
		Progress: prog, Errors: c.App.ErrWriter,
	})
	prog.Finish()
	sent, sentBytes, failed := prog.Counts()
	report.Replayed(c.App.Writer, sent, sentBytes, failed, in.What, to, prog.Elapsed())
	return res.Err(ctx, sent, failed, to, retries.Last())
}
