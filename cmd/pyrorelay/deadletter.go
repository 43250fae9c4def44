package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/datadir"
	"github.com/pyrorelay/pyrorelay/exportfile"
	"github.com/pyrorelay/pyrorelay/progress"
	"github.com/pyrorelay/pyrorelay/report"
	"github.com/pyrorelay/pyrorelay/selection"
	"github.com/pyrorelay/pyrorelay/store"
)

func deadLetterCommand() *cli.Command {
	flags := func(extra ...cli.Flag) []cli.Flag {
		f := append(dataDirFlags(), &cli.StringFlag{Name: "destination", Required: true, Usage: "the destination whose dead letters to act on"})
		return append(append(f, selectFlags()...), extra...)
	}
	return &cli.Command{
		Name:  "dead-letter",
		Usage: "list, requeue or purge the entries a destination refused",
		Description: `An entry becomes a dead letter when its destination refuses it for good (a 4xx,
an undecodable Push), keeps failing on it while taking others (poison), or
when it waited longer than max_age. Dead letters are kept until requeued or
purged. list reads a stopped relay's data dir, or asks a running relay with
--url. requeue and purge need the relay stopped: they change the data dir,
which a running relay holds locked (one process writes a bbolt file). The
filters (--since, --until, --app) select which ones. A destination with max_age expires requeued
entries older than it again.

Examples:
   pyrorelay dead-letter list --destination prod
   pyrorelay dead-letter requeue --destination prod --since -6h
   pyrorelay dead-letter purge --destination prod --until -7d`,
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "show dead letters: when, why, how many attempts",
				Description: `Examples:
   pyrorelay dead-letter list --destination prod
   pyrorelay dead-letter list --destination prod --url http://127.0.0.1:4040   # a running relay
   pyrorelay dead-letter list --destination prod --since -24h --json`,
				Flags:  flags(append([]cli.Flag{&cli.BoolFlag{Name: "json", Usage: "one JSON object per line (the export sidecar format, without bodies)"}}, adminURLFlags()...)...),
				Action: runDeadLetterList,
			},
			{
				Name:  "requeue",
				Usage: "move dead letters back to the end of the destination's queue, to be sent again",
				Description: `After fixing what made the destination refuse them (a tenant, a size limit,
a server's reject-older-than window), put them back; the relay sends them
when it starts. Needs the relay stopped: it changes the data dir.

Examples:
   pyrorelay dead-letter requeue --destination prod
   pyrorelay dead-letter requeue --destination prod --app checkout --since 2026-03-01T00:00:00Z`,
				Flags:  flags(),
				Action: runDeadLetterRequeue,
			},
			{
				Name:  "purge",
				Usage: "delete dead letters for good (asks first, unless --yes)",
				Description: `Needs the relay stopped: it changes the data dir.

Examples:
   pyrorelay dead-letter purge --destination prod --until -7d
   pyrorelay dead-letter purge --destination prod --yes   # no question: for scripts`,
				Flags:  flags(&cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "do not ask for confirmation"}),
				Action: runDeadLetterPurge,
			},
		},
	}
}

// deadLetterStore reads the filters and opens the store for a
// dead-letter command, checking that --destination has a dead-letter list.
func deadLetterStore(c *cli.Context, mode datadir.Mode) (*store.Store, selection.Selection, error) {
	cfg, err := adminConfig(c)
	if err != nil {
		return nil, selection.Selection{}, err
	}
	sel, err := selectionFromFlags(c, time.Now())
	if err != nil {
		return nil, sel, err
	}
	st, err := datadir.OpenDeadLetters(cfg.DataDir, mode, c.String("destination"))
	return st, sel, err
}

func runDeadLetterList(c *cli.Context) error {
	if c.String("url") != "" {
		return remoteDeadLetterList(c)
	}
	st, sel, err := deadLetterStore(c, datadir.Read)
	if err != nil {
		return err
	}
	defer st.Close()
	name := c.String("destination")
	src := store.DeadLetterSource(name)
	list := report.NewDeadLetters(c.App.Writer, c.Bool("json"))
	res, err := st.Scan(c.Context, src, sel.Filter, func(r store.Record) error {
		return list.Add(exportfile.FromStore(r, src), int64(r.Size), selection.AppOf(r.Entry))
	})
	list.Flush()
	if err != nil {
		return err
	}
	list.Summary(res.Entries, res.Bytes, name, sel.Describe())
	return nil
}

func runDeadLetterRequeue(c *cli.Context) error {
	st, sel, err := deadLetterStore(c, datadir.Write)
	if err != nil {
		return err
	}
	defer st.Close()
	name := c.String("destination")
	res, err := st.RequeueDeadLetters(c.Context, name, sel.Filter)
	if err != nil {
		return fmt.Errorf("%w (%d were requeued before the error)", err, res.Entries)
	}
	fmt.Fprintf(c.App.Writer, "requeued %d dead letters (%s) to the queue of %s%s; the relay sends them when it runs\n",
		res.Entries, progress.Bytes(res.Bytes), name, sel.Describe())
	return nil
}

func runDeadLetterPurge(c *cli.Context) error {
	st, sel, err := deadLetterStore(c, datadir.Write)
	if err != nil {
		return err
	}
	defer st.Close()
	name := c.String("destination")
	cnt, err := st.Count(c.Context, store.DeadLetterSource(name), sel.Filter)
	if err != nil {
		return err
	}
	if cnt.Entries == 0 {
		fmt.Fprintf(c.App.Writer, "no dead letters of %s to purge%s\n", name, sel.Describe())
		return nil
	}
	if err := confirmPurge(c, fmt.Sprintf("Delete %d dead letters (%s) of %s%s", cnt.Entries, progress.Bytes(cnt.Bytes), name, sel.Describe())); err != nil {
		return err
	}
	res, err := st.PurgeDeadLetters(c.Context, name, sel.Filter)
	if err != nil {
		return fmt.Errorf("%w (%d were purged before the error)", err, res.Entries)
	}
	fmt.Fprintf(c.App.Writer, "purged %d dead letters (%s) of %s%s\n", res.Entries, progress.Bytes(res.Bytes), name, sel.Describe())
	return nil
}
