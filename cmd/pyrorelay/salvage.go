package main

import (
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/report"
	"github.com/pyrorelay/pyrorelay/store"
)

func salvageCommand() *cli.Command {
	return &cli.Command{
		Name:  "salvage",
		Usage: "copy every readable profile of a damaged store into a new one",
		Description: `When the relay refuses to start, or stops a queue, because its file is damaged,
salvage copies every entry that can still be read and passes its checksum,
with its queue position, dead letters and archive, into a new store, and
reports what was lost per queue. The old file is opened read-only and left
as it is. Entries whose queue position was lost go to the queue _salvaged;
move them with ` + "`pyrorelay queue move --from _salvaged --to NAME`" + `.
Run it with the relay stopped.

Examples:
   pyrorelay salvage --data-dir /var/lib/pyrorelay --to /var/lib/pyrorelay.salvaged
   # then start the relay with --data-dir /var/lib/pyrorelay.salvaged, or move the
   # new store's files (pyrorelay.db and its pyrorelay-*.seg, as salvage lists them)
   # into /var/lib/pyrorelay after: mv pyrorelay.db pyrorelay.db.broken`,
		Flags: append(dataDirFlags(),
			&cli.StringFlag{Name: "to", Required: true, Usage: "new data directory to write the salvaged store into; it must not hold a store"}),
		Action: runSalvage,
	}
}

func runSalvage(c *cli.Context) error {
	cfg, err := adminConfig(c)
	if err != nil {
		return err
	}
	src := filepath.Join(cfg.DataDir, store.FileName)
	to := c.String("to")
	rep, err := store.Salvage(c.Context, src, to)
	if err != nil {
		return err
	}
	report.Salvage(c.App.Writer, rep, src, to)
	return nil
}
