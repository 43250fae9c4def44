package main

import (
	"errors"
	"fmt"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/adminapi"
	"github.com/pyrorelay/pyrorelay/daemon"
	"github.com/pyrorelay/pyrorelay/datadir"
	"github.com/pyrorelay/pyrorelay/progress"
	"github.com/pyrorelay/pyrorelay/store"
)

var errNoDestinations = errors.New("no destination configured: give --config with destinations, or --forward-to NAME=URL")

// drainFlagNames are the serve flags drain shares: where the data is and
// where it goes; nothing about serving HTTP.
var drainFlagNames = []string{"config", "data-dir", "forward-to", "forward-concurrency", "max-attempts", "log-level", "log-format"}

func drainCommand() *cli.Command {
	var flags []cli.Flag
	for _, f := range serveFlags() {
		if slices.Contains(drainFlagNames, f.Names()[0]) {
			flags = append(flags, f)
		}
	}
	flags = append(flags, durationFlag("timeout", nil, 10*time.Minute, "give up after `DURATION`; what is not delivered stays queued"))
	return &cli.Command{
		Name:      "drain",
		Usage:     "forward everything queued, without serving, and exit 0 once every queue is empty",
		ArgsUsage: " ",
		Description: `Runs the forwarders of the configured destinations (the same ones, with the
same retry policy, as serve) on a stopped relay's data dir until each of their
queues is empty, then exits 0. If the timeout passes first, it exits 1 with a
summary per destination: what is left, and the last error. Nothing is lost
either way: what is not delivered stays queued. For cron jobs on nodes whose
uplink comes and goes, with serve not running (or between its runs).

Entries a destination refuses for good go to its dead-letter list, as with
serve; see ` + "`pyrorelay dead-letter list`" + `.

Examples:
   pyrorelay drain --config /etc/pyrorelay.yaml --timeout 10m
   pyrorelay drain --data-dir /var/lib/pyrorelay --forward-to prod=https://profiles.example.com --timeout 30m`,
		Flags:  flags,
		Action: runDrain,
	}
}

func runDrain(c *cli.Context) error {
	if c.Args().Present() {
		return fmt.Errorf("drain takes no arguments, got %q", c.Args().Slice())
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	// drain serves nothing, so the receivers of the file do not matter:
	// a destination given with --forward-to is drained even though no
	// receiver feeds it.
	cfg.Receivers = nil
	if err := cfg.Finish(); err != nil {
		return err
	}
	if len(cfg.Destinations) == 0 {
		return errNoDestinations
	}
	log := newLogger(c.App.ErrWriter, cfg)
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	timeout := c.Duration("timeout")
	if timeout <= 0 {
		return fmt.Errorf("--timeout must be positive, got %s", timeout)
	}
	st, err := store.Open(cfg.DataDir, store.Options{
		LockTimeout:      datadir.LockTimeout,
		ArchiveRetention: cfg.ArchiveRetention,
		ArchiveMaxBytes:  int64(cfg.ArchiveMaxSize),
	})
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("data dir %s is in use by a running relay, which forwards already: watch it with `pyrorelay queue status --url %s`: %w", cfg.DataDir, adminapi.ListenURL(cfg.Listen), err)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	start := time.Now()
	results, why, err := daemon.Drain(ctx, st, cfg.Destinations, timeout, log)
	if err != nil {
		return err
	}
	left := 0
	for _, r := range results {
		b, a := r.Before, r.After
		dead := max(a.DeadEntries-b.DeadEntries, 0)
		delivered := max(b.Entries-a.Entries-dead, 0)
		line := fmt.Sprintf("%s: ", r.Destination)
		if a.Entries == 0 {
			line += fmt.Sprintf("empty; %d delivered", delivered)
		} else {
			left++
			line += fmt.Sprintf("%d entries (%s) left, oldest received %s; %d delivered", a.Entries, progress.Bytes(a.Bytes), ago(a.Oldest, time.Now()), delivered)
			if lf := r.LastFailure; lf != nil {
				line += fmt.Sprintf("; last failure %s: %s", ago(lf.At, time.Now()), lf.Reason)
			}
		}
		if dead > 0 {
			line += fmt.Sprintf("; %d moved to dead-letter (see `pyrorelay dead-letter list --destination %s`)", dead, r.Destination)
		}
		fmt.Fprintln(c.App.Writer, line)
	}
	if why != "" && left > 0 {
		return fmt.Errorf("drain %s: %d of %d destinations still have entries queued; they stay queued for the next run or serve", why, left, len(cfg.Destinations))
	}
	if why != "" && strings.HasPrefix(why, "reading") {
		return errors.New(why)
	}
	fmt.Fprintf(c.App.Writer, "drained in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}
