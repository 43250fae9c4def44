package main

// The reading commands run against a running relay (--url): its data dir
// is locked while it runs, so they ask its admin API instead.

import (
	"errors"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/adminapi"
	"github.com/pyrorelay/pyrorelay/exportfile"
	"github.com/pyrorelay/pyrorelay/report"
)

// remoteExport is `export --url`: the relay streams the entries, written
// as an export of its data dir would be.
func remoteExport(c *cli.Context) error {
	src := c.String("destination")
	if src == "" && c.String("dead-letter") == "" && !c.Bool("archive") {
		return errors.New("choose one of --destination NAME, --dead-letter NAME or --archive")
	}
	sel, err := selectionFromFlags(c, time.Now()) // checked here, applied by the relay
	if err != nil {
		return err
	}
	out := c.String("out")
	sink, err := newExportWriter(out, c.App.Writer)
	if err != nil {
		return err
	}
	t := adminClientOf(c)
	res, err := t.Export(c.Context, adminapi.ExportQuery{Queue: c.String("destination"), DeadLetter: c.String("dead-letter"), Archive: c.Bool("archive"),
		Since: c.String("since"), Until: c.String("until"), App: c.String("app")}, sink, c.App.ErrWriter)
	if err != nil {
		return err
	}
	report.Exported(c.App.ErrWriter, res.Entries, res.Bytes, 0, res.From+" of the relay at "+adminapi.RedactURL(t.URL), out, sel.Describe())
	return nil
}

// remoteDeadLetterList is `dead-letter list --url`.
func remoteDeadLetterList(c *cli.Context) error {
	name := c.String("destination")
	sel, err := selectionFromFlags(c, time.Now())
	if err != nil {
		return err
	}
	list := report.NewDeadLetters(c.App.Writer, c.Bool("json"))
	n, bytes, err := adminClientOf(c).DeadLetters(c.Context, adminapi.ExportQuery{DeadLetter: name,
		Since: c.String("since"), Until: c.String("until"), App: c.String("app")}, func(x *exportfile.Record) error {
		return list.Add(x, int64(x.BodySize), x.App)
	})
	if err == nil || errors.Is(err, adminapi.ErrIncomplete) {
		// The table shows every dead letter that arrived.
		list.Flush()
	}
	if err != nil {
		return err
	}
	list.Summary(n, bytes, name, sel.Describe())
	return nil
}
