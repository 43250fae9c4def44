package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/confirm"
	"github.com/pyrorelay/pyrorelay/datadir"
	"github.com/pyrorelay/pyrorelay/progress"
	"github.com/pyrorelay/pyrorelay/selection"
)

// archiveCommand groups what an operator does to the archive of delivered
// profiles (see --archive-retention).
func archiveCommand() *cli.Command {
	return &cli.Command{
		Name:  "archive",
		Usage: "purge the archive of delivered profiles",
		Description: `The archive keeps delivered profiles for ` + "`pyrorelay replay --archive`" + `. It is
the least important data the relay holds: it is bounded as entries enter it
and evicted first whenever a queue needs room. Run these with the relay
stopped.

Examples:
   pyrorelay archive purge --yes
   pyrorelay archive purge --until -24h`,
		Subcommands: []*cli.Command{{
			Name:  "purge",
			Usage: "delete archived profiles for good (asks first, unless --yes); works on a full file",
			Description: `It writes the data dir: run it with the relay stopped (a running relay holds the file locked).

Examples:
   pyrorelay archive purge --data-dir /var/lib/pyrorelay --yes
   pyrorelay archive purge --until 2026-03-01   # only what was received before`,
			Flags: append(dataDirFlags(),
				&cli.StringFlag{Name: "until", Usage: "only profiles received before `T`: RFC 3339, a date (UTC) or relative to now (-24h, -7d); all when unset"},
				&cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "do not ask for confirmation"}),
			Action: runArchivePurge,
		}},
	}
}

func runArchivePurge(c *cli.Context) error {
	cfg, err := adminConfig(c)
	if err != nil {
		return err
	}
	until, err := selection.ParseWhen("until", c.String("until"), time.Now())
	if err != nil {
		return err
	}
	st, err := datadir.Open(cfg.DataDir, datadir.Write, datadir.StopRelayFirst)
	if err != nil {
		return err
	}
	defer st.Close()
	sum, err := st.Summary()
	if err != nil {
		return err
	}
	what := "every archived profile"
	if !until.IsZero() {
		what = "archived profiles received before " + until.UTC().Format(time.RFC3339)
	}
	if sum.Archive.Entries == 0 {
		fmt.Fprintf(c.App.Writer, "the archive of %s is empty\n", cfg.DataDir)
		return nil
	}
	if err := confirmPurge(c, fmt.Sprintf("Delete %s (the archive holds %d, %s)", what, sum.Archive.Entries, progress.Bytes(sum.Archive.Bytes))); err != nil {
		return err
	}
	res, err := st.PurgeArchive(c.Context, until)
	if err != nil {
		return fmt.Errorf("%w (%d were purged before the error)", err, res.Entries)
	}
	fmt.Fprintf(c.App.Writer, "purged %d archived profiles (%s) from %s; the file keeps its size until `pyrorelay compact`\n",
		res.Entries, progress.Bytes(res.Bytes), cfg.DataDir)
	return nil
}

// confirmPurge asks whether to delete what for good (confirm.Purge);
// --yes skips the question. An error says nothing was deleted.
func confirmPurge(c *cli.Context, what string) error {
	if c.Bool("yes") {
		return nil
	}
	return confirm.Purge(c.App.Reader, c.App.ErrWriter, what)
}
