package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/adminapi"
	"github.com/pyrorelay/pyrorelay/daemon"
	"github.com/pyrorelay/pyrorelay/datadir"
	"github.com/pyrorelay/pyrorelay/progress"
	"github.com/pyrorelay/pyrorelay/relay"
	"github.com/pyrorelay/pyrorelay/replay"
	"github.com/pyrorelay/pyrorelay/store"
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
			durationFlag("max-backoff", nil, 30*time.Second, "wait at most `DURATION` between retries of one entry"),
		), inputCheckFlags()...),
		Action: runReplay,
	}
}

// parseRate reads --rate: "50", "50/s", "0.5".
func parseRate(v string) (float64, error) {
	v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "/s"))
	if v == "" {
		return 0, nil
	}
	r, err := strconv.ParseFloat(v, 64)
	if err != nil || r <= 0 {
		return 0, fmt.Errorf("--rate %q: want a positive number of entries per second, like 50 or 0.5/s", v)
	}
	return r, nil
}

// replayDestination builds the destination --to names.
func replayDestination(c *cli.Context, cfg daemon.Config) (relay.Destination, error) {
	to := c.String("to")
	var d relay.Destination
	if !strings.Contains(to, "://") {
		found := false
		for _, cd := range cfg.Destinations {
			if cd.Name == to {
				d, found = cd, true
				break
			}
		}
		if !found {
			return d, fmt.Errorf("--to %q: not a URL (http://host:port) nor a destination in --config", to)
		}
	} else {
		if u, err := url.Parse(to); err != nil || u.Host == "" {
			return d, fmt.Errorf("--to %q: not a URL: want http://host:port or https://host", to)
		}
		if err := daemon.CheckBaseURL(to); err != nil {
			return d, fmt.Errorf("--to: %w", err)
		}
		d = relay.Destination{Name: "replay", URL: to}
	}
	if d.Headers == nil {
		d.Headers = map[string]string{}
	}
	for _, h := range c.StringSlice("header") {
		k, v, ok := strings.Cut(h, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return d, fmt.Errorf("--header %q: want NAME=VALUE", h)
		}
		d.Headers[strings.TrimSpace(k)] = v
	}
	if f := c.String("bearer-token-file"); f != "" {
		d.BearerTokenFile, d.BearerToken, d.BasicAuth = f, "", nil
	}
	if t := c.String("tenant"); t != "" {
		d.TenantID = t
	}
	d.Concurrency = max(c.Int("concurrency"), 1)
	if c.IsSet("timeout") || d.Timeout == 0 {
		d.Timeout = c.Duration("timeout")
	}
	if c.IsSet("max-backoff") || d.MaxBackoff == 0 {
		d.MaxBackoff = c.Duration("max-backoff")
	}
	if d.MinBackoff > d.MaxBackoff {
		d.MinBackoff = d.MaxBackoff
	}
	d = d.WithDefaults()
	return d, d.Validate()
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
	rate, err := parseRate(c.String("rate"))
	if err != nil {
		return err
	}
	dry := c.Bool("dry-run")
	var dest relay.Destination
	switch {
	case c.String("to") != "":
		if dest, err = replayDestination(c, cfg); err != nil {
			return err
		}
	case !dry:
		return errors.New("replay needs --to URL: the Pyroscope (or relay) to send to; or --dry-run to list what would be sent")
	}

	// Where from: a data dir, an export directory, or stdin.
	from := c.String("from")
	fromStore := from == ""
	if from == "" {
		from = cfg.DataDir
	} else if from != "-" {
		fi, err := os.Stat(from)
		if err != nil || !fi.IsDir() {
			return fmt.Errorf("--from %s: want a data dir, an export directory, or - for ndjson on stdin", from)
		}
		if _, err := os.Stat(filepath.Join(from, store.FileName)); err == nil {
			fromStore = true
		}
	}
	if !fromStore && (c.String("destination") != "" || c.String("dead-letter") != "" || c.Bool("archive")) {
		return fmt.Errorf("--from %s is an export, not a data dir: --queue, --dead-letter and --archive choose what to read from a data dir", from)
	}

	// each feeds the entries to send; ack, if set, removes a delivered one.
	var each replay.Source
	var ack func(pos uint64) error
	what, total, totalBytes := from, -1, int64(0)
	if fromStore {
		mode := datadir.Read
		if c.String("destination") != "" && !c.Bool("keep") && !dry {
			mode = datadir.Write
		}
		st, err := datadir.Open(from, mode, datadir.StopRelayFirst)
		if err != nil {
			return err
		}
		defer st.Close()
		src, err := sourceFromFlags(c, st, from)
		if err != nil {
			return err
		}
		cnt, err := st.Count(ctx, src, sel.Filter)
		if err != nil {
			return err
		}
		what, total, totalBytes = src.String(), cnt.Entries, cnt.Bytes
		each = replay.FromStore(ctx, st, src, sel.Filter)
		if mode == datadir.Write {
			ack = func(pos uint64) error {
				return st.Ack(context.WithoutCancel(ctx), src.Queue, pos)
			}
		}
	} else {
		if from == "-" {
			what = "stdin"
		}
		chk, err := inputChecksFromFlags(c)
		if err != nil {
			return err
		}
		each = replay.FromExport(ctx, from, c.App.Reader, chk, sel, what)
	}

	if dry {
		return replay.DryRun(c.App.Writer, each, what, adminapi.RedactURL(dest.URL), sel)
	}
	retries := replay.NewRetryWatch(c.App.ErrWriter, slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sender, err := relay.NewSender(dest, slog.New(retries))
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.ErrWriter, "replaying %s to %s%s\n", what, adminapi.RedactURL(dest.URL), sel.Describe())
	prog := progress.NewWithStatus(c.App.Writer, "sent", total, totalBytes, retries.Last)
	res := replay.Run(ctx, each, replay.Options{
		Sender: sender, Concurrency: dest.Concurrency, Rate: rate, Ack: ack,
		Progress: prog, Errors: c.App.ErrWriter,
	})
	prog.Finish()
	sent, sentBytes, failed := prog.Counts()
	elapsed := prog.Elapsed().Round(time.Millisecond)
	fmt.Fprintf(c.App.Writer, "sent %d entries (%s) from %s to %s in %s", sent, progress.Bytes(sentBytes), what, adminapi.RedactURL(dest.URL), elapsed)
	if failed > 0 {
		fmt.Fprintf(c.App.Writer, "; %d not sent", failed)
	}
	fmt.Fprintln(c.App.Writer)
	switch {
	case ctx.Err() != nil:
		last := ""
		if l := retries.Last(); l != "" {
			last = " (" + l + ")"
		}
		return fmt.Errorf("replay interrupted after %d entries%s: nothing was lost; run it again (with --since, or from the queue, which only holds what was not delivered)", sent, last)
	case res.FeedErr != nil:
		return fmt.Errorf("replay stopped after %d entries: %w", sent, res.FeedErr)
	case failed > 0:
		return fmt.Errorf("%d entries were refused by %s (first: %s): see the lines above; fix the cause and replay them again", failed, adminapi.RedactURL(dest.URL), res.FirstFailure)
	}
	return nil
}
