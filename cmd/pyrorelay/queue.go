package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/adminapi"
	"github.com/pyrorelay/pyrorelay/datadir"
	"github.com/pyrorelay/pyrorelay/httpserver"
	"github.com/pyrorelay/pyrorelay/progress"
	"github.com/pyrorelay/pyrorelay/store"
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
		st, err = readStatus(c)
	}
	if err != nil {
		return err
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	printStatus(c.App.Writer, st)
	return nil
}

// readStatus reads a stopped relay's data dir.
func readStatus(c *cli.Context) (httpserver.QueuesStatus, error) {
	cfg, err := adminConfig(c)
	if err != nil {
		return httpserver.QueuesStatus{}, err
	}
	st, err := datadir.Open(cfg.DataDir, datadir.Read, "ask it instead with `pyrorelay queue status --url "+adminapi.ListenURL(cfg.Listen)+"` (the relay's --listen address)")
	if err != nil {
		return httpserver.QueuesStatus{}, err
	}
	defer st.Close()
	return datadir.Status(st, cfg, c.String("config") != "", time.Now())
}

// adminClientOf reads --url, --bearer-token-file and --ca-file.
func adminClientOf(c *cli.Context) adminapi.Client {
	return adminapi.Client{URL: c.String("url"), TokenFile: c.String("bearer-token-file"), CAFile: c.String("ca-file")}
}

// adminURLFlags ask a running relay instead of reading its data dir.
func adminURLFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "url", EnvVars: env("URL"), Usage: "ask the relay serving at `URL` (its --listen address) instead of reading a stopped relay's data dir; credentials may go in the URL"},
		&cli.StringFlag{Name: "bearer-token-file", Usage: "send the token in `FILE` to the relay at --url"},
		&cli.StringFlag{Name: "ca-file", Usage: "trust the CA certificates in `FILE` for an https --url"},
	}
}

func printStatus(w io.Writer, st httpserver.QueuesStatus) {
	now := st.GeneratedAt
	if now.IsZero() {
		now = time.Now()
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DESTINATION\tSTATE\tENTRIES\tBYTES\tOLDEST\tNEWEST\tDEAD LETTERS\tDEAD BYTES\tRECEIVERS")
	var orphans []string
	for _, q := range st.Queues {
		state := "-"
		switch {
		case q.Orphan():
			state = "ORPHAN"
			orphans = append(orphans, q.Name)
		case q.Configured != nil && *q.Configured:
			state = "configured"
		case q.Configured != nil:
			state = "not configured"
		}
		receivers := "-"
		if len(q.Receivers) > 0 {
			receivers = strings.Join(q.Receivers, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\t%s\t%s\n", q.Name, state, q.Entries, progress.Bytes(q.Bytes),
			agoPtr(q.Oldest, now), agoPtr(q.Newest, now), q.DeadLetters, progress.Bytes(q.DeadLetterBytes), receivers)
	}
	_ = tw.Flush()
	if len(st.Queues) == 0 {
		fmt.Fprintln(w, "(no queue yet)")
	}
	a := st.Archive
	fmt.Fprintf(w, "\narchive: %d entries, %s", a.Entries, progress.Bytes(a.Bytes))
	if a.Oldest != nil {
		fmt.Fprintf(w, ", received %s to %s", a.Oldest.Format(time.RFC3339), a.Newest.Format(time.RFC3339))
	}
	var settings []string
	if a.RetentionSeconds > 0 {
		settings = append(settings, "retention "+(time.Duration(a.RetentionSeconds)*time.Second).String())
	}
	if a.MaxBytes > 0 {
		settings = append(settings, "max "+progress.Bytes(a.MaxBytes))
	}
	if len(settings) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(settings, ", "))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "file: %s on disk (a stopped relay's file shrinks with `pyrorelay compact`); quarantined records: %d\n", progress.Bytes(st.FileBytes), st.Quarantined)
	if len(orphans) > 0 {
		fmt.Fprintf(w, "\n%d orphan queue(s): no configured destination drains %s. Move one to a destination with\n"+
			"`pyrorelay queue move --from %s --to NEW` (relay stopped), or send it with `pyrorelay replay --queue %s --to URL`.\n",
			len(orphans), strings.Join(orphans, ", "), orphans[0], orphans[0])
	}
}

func agoPtr(t *time.Time, now time.Time) string {
	if t == nil {
		return "-"
	}
	return ago(*t, now)
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
			st, err := datadir.Open(cfg.DataDir, datadir.Write, datadir.StopRelayFirst)
			if err != nil {
				return err
			}
			defer st.Close()
			res, err := st.MoveQueue(c.Context, from, to)
			if errors.Is(err, store.ErrNotFound) {
				sum, _ := st.Summary()
				return fmt.Errorf("no queue %q in %s (queues: %s): check --from", from, cfg.DataDir, strings.Join(sum.QueueNames(), ", "))
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "moved %d entries and %d dead letters from %q to %q\n", res.Entries, res.DeadLetters, from, to)
			if c.String("config") != "" && !datadir.DestinationConfigured(cfg, to) {
				fmt.Fprintf(c.App.ErrWriter, "warning: %q is not a destination in %s: nothing will send these entries until it is\n", to, c.String("config"))
			}
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
			res, err := store.Compact(cfg.DataDir, datadir.LockTimeout)
			if errors.Is(err, store.ErrLocked) {
				return fmt.Errorf("data dir %s is in use by a running relay: %s: %w", cfg.DataDir, datadir.StopRelayFirst, err)
			}
			if err != nil {
				return err
			}
			for _, l := range res.Removed {
				fmt.Fprintf(c.App.Writer, "removed %s (%s), left by a compact that was interrupted\n", l.Path, progress.Bytes(l.Bytes))
			}
			fmt.Fprintf(c.App.Writer, "%s: %s before, %s after (%s freed)\n", cfg.DataDir, progress.Bytes(res.Before), progress.Bytes(res.After), progress.Bytes(max(res.Before-res.After, 0)))
			return nil
		},
	}
}
