package main

// The reading commands run against a running relay (--url): its data dir
// is locked while it runs, so they ask its admin API instead.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/adminapi"
	"github.com/pyrorelay/pyrorelay/exportfile"
	"github.com/pyrorelay/pyrorelay/progress"
	"github.com/pyrorelay/pyrorelay/report"
	"github.com/pyrorelay/pyrorelay/selection"
	"github.com/pyrorelay/pyrorelay/store"
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
	resp, err := t.Get(c.Context, adminapi.ExportQuery{Queue: c.String("destination"), DeadLetter: c.String("dead-letter"), Archive: c.Bool("archive"),
		Since: c.String("since"), Until: c.String("until"), App: c.String("app"), Bodies: true}.Path())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	prog := progress.New(c.App.ErrWriter, "exported", -1, 0)
	n, from := 0, ""
	err = exportfile.ReadNDJSON(c.Context, resp.Body, exportfile.Checks{CopyOnly: true, MaxBodySize: selection.MaxPushBody}, func(x *exportfile.Record, e *store.Entry) error {
		from = x.From
		if err := sink.Write(x, e.Body); err != nil {
			return err
		}
		n++
		prog.Add(int64(len(e.Body)))
		return nil
	})
	prog.Finish()
	if cerr := sink.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = adminapi.ExportComplete(resp, n)
	}
	if err != nil {
		return fmt.Errorf("export from the relay at %s after %d entries: %w", adminapi.RedactURL(t.URL), n, err)
	}
	where := out
	if out == "-" {
		where = "stdout"
	}
	_, bytes, _ := prog.Counts()
	fmt.Fprintf(c.App.ErrWriter, "exported %d entries (%s) from %s of the relay at %s to %s%s\n",
		n, progress.Bytes(bytes), from, adminapi.RedactURL(t.URL), where, sel.Describe())
	return nil
}

// remoteDeadLetterList is `dead-letter list --url`.
func remoteDeadLetterList(c *cli.Context) error {
	name := c.String("destination")
	sel, err := selectionFromFlags(c, time.Now())
	if err != nil {
		return err
	}
	resp, err := adminClientOf(c).Get(c.Context, adminapi.ExportQuery{DeadLetter: name,
		Since: c.String("since"), Until: c.String("until"), App: c.String("app")}.Path())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	list := report.NewDeadLetters(c.App.Writer, c.Bool("json"))
	dec := json.NewDecoder(resp.Body)
	n, bytes := 0, int64(0)
	for {
		var x exportfile.Record
		err := dec.Decode(&x)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("dead letter %d from the relay: %w", n+1, err)
		}
		n++
		bytes += int64(x.BodySize)
		if err := list.Add(&x, int64(x.BodySize), x.App); err != nil {
			return err
		}
	}
	list.Flush()
	if err := adminapi.ExportComplete(resp, n); err != nil {
		return err
	}
	list.Summary(n, bytes, name, sel.Describe())
	return nil
}
