package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/daemon"
	"github.com/pyrorelay/pyrorelay/datadir"
	"github.com/pyrorelay/pyrorelay/httpserver"
	"github.com/pyrorelay/pyrorelay/report"
)

func queueCommand() *cli.Command {
	return &cli.Command{
		Name:  "queue",
		Usage: "show and move what the relay has stored",
		Description: `Examples:
   pyrorelay queue status --url http://127.0.0.1:4040
   pyrorelay queue move --data-dir /var/lib/pyrorelay --from old-name --to new-name`,
		Subcommands: []*cli.Command{
			queueStatusCommand(),
			queueMoveCommand(),
		},
	}
}

func queueStatusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "per destination: entries, bytes, oldest and newest entry, dead letters; and the archive",
		Description: `Asks a running relay over its admin API (--url), or reads the data dir of a
stopped one. A running relay holds its data dir locked: use --url for it.

Examples:
   pyrorelay queue status --url http://127.0.0.1:4040
   pyrorelay queue status --url http://user:secret@relay:4040 --json
   pyrorelay queue status --data-dir /var/lib/pyrorelay
   pyrorelay queue status --config /etc/pyrorelay.yaml   # marks orphan queues`,
		Flags: append(append(dataDirFlags(),
			&cli.BoolFlag{Name: "json", Usage: "print the status as JSON (the admin API's document)"}),
			adminURLFlags()...),
		Action: runQueueStatus,
	}
}

func runQueueStatus(c *cli.Context) error {
	if c.Args().Present() {
		return fmt.Errorf("queue status takes no arguments, got %q: use --url or --data-dir", c.Args().Slice())
	}
	var st httpserver.QueuesStatus
	var err error
	if c.String("url") != "" {
		st, err = adminClientOf(c).Status(c.Context)
	} else {
		var cfg daemon.Config
		if cfg, err = adminConfig(c); err == nil {
			st, err = datadir.ReadStatus(cfg, c.String("config") != "", time.Now())
		}
	}
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return report.QueueStatusJSON(c.App.Writer, st)
	}
	report.QueueStatus(c.App.Writer, st)
	return nil
}

func queueMoveCommand() *cli.Command {
	return &cli.Command{
		Name:  "move",
		Usage: "move a queue and its dead letters to another destination's queue (for a renamed destination)",
		Description: `Appends every entry of queue OLD to queue NEW, oldest first, then OLD's dead
letters to NEW's, and removes OLD. Run it with the relay stopped; the relay's
forwarder for NEW sends the moved entries when it starts. It commits in steps,
so it can be interrupted and run again.

Example:
   systemctl stop pyrorelay
   pyrorelay queue move --data-dir /var/lib/pyrorelay --from pyroscope-old --to pyroscope
   systemctl start pyrorelay`,
		Flags: append(dataDirFlags(),
			&cli.StringFlag{Name: "from", Required: true, Usage: "the queue to empty (an orphan: a destination no longer configured)"},
			&cli.StringFlag{Name: "to", Required: true, Usage: "the destination whose queue takes the entries"},
		),
		Action: func(c *cli.Context) error {
			cfg, err := adminConfig(c)
			if err != nil {
				return err
			}
			from, to := c.String("from"), c.String("to")
			res, err := datadir.MoveQueue(c.Context, cfg.DataDir, from, to)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "moved %d entries and %d dead letters from %q to %q\n", res.Entries, res.DeadLetters, from, to)
			warnNotConfigured(c, cfg, to)
			return nil
		},
	}
}

func compactCommand() *cli.Command {
	return &cli.Command{
		Name:  "compact",
		Usage: "shrink the bbolt file of a stopped relay and report the size before and after",
		Description: `bbolt reuses the pages that delivered entries free, but never gives them back
to the file system: after a long outage the file stays at its largest. compact
copies the live data into a new file next to it (it needs that much free
space), syncs it, and puts it in place of the old one. Run it with the relay
stopped.

Example:
   systemctl stop pyrorelay && pyrorelay compact --data-dir /var/lib/pyrorelay && systemctl start pyrorelay`,
		Flags: dataDirFlags(),
		Action: func(c *cli.Context) error {
			cfg, err := adminConfig(c)
			if err != nil {
				return err
			}
			res, err := datadir.Compact(cfg.DataDir)
			if err != nil {
				return err
			}
			report.Compact(c.App.Writer, cfg.DataDir, res)
			return nil
		},
	}
}
