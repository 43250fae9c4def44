package main

import (
	"fmt"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/datadir"
	"github.com/pyrorelay/pyrorelay/report"
)

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
	if cfg, err = datadir.DrainConfig(cfg); err != nil {
		return err
	}
	log := cfg.NewLogger(c.App.ErrWriter)
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	timeout := c.Duration("timeout")
	if timeout <= 0 {
		return fmt.Errorf("--timeout must be positive, got %s", timeout)
	}
	d, err := datadir.Drain(ctx, cfg, timeout, log)
	if err != nil {
		return err
	}
	report.Drain(c.App.Writer, d.Results, time.Now())
	if err := d.Err(); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "drained in %s\n", d.Took.Round(time.Millisecond))
	return nil
}
