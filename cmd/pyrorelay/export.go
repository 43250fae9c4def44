package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/datadir"
	"github.com/pyrorelay/pyrorelay/exportfile"
	"github.com/pyrorelay/pyrorelay/report"
)

func exportCommand() *cli.Command {
	return &cli.Command{
		Name:      "export",
		Usage:     "write stored requests as files anyone can re-send, or as ndjson to stdout",
		ArgsUsage: " ",
		Description: `Writes each selected entry of a queue, a dead-letter list or the archive as
<id>.body (the request body, byte for byte) and <id>.json (id, kind,
received_at, query, content_type, content_encoding, tenant, body checksum,
dead-letter reason/status/attempts, and how to re-send it). With --out -, it
writes one JSON object per line to stdout instead, the body base64-encoded.
The store is read in bounded pages, so exports of any size run in bounded
memory. It reads a stopped relay's data dir, or asks a running relay with
--url (its admin API streams the same ndjson); the entries stay where they are.

Re-send one exported /ingest request by hand:
   curl --data-binary @00000000000000000042.body \
     -H "Content-Type: $(jq -r .content_type 00000000000000000042.json)" \
     "http://pyroscope:4040/ingest?$(jq -r .query 00000000000000000042.json)"

Examples:
   pyrorelay export --data-dir /var/lib/pyrorelay --destination prod --out /tmp/prod-backlog
   pyrorelay export --url http://127.0.0.1:4040 --dead-letter prod --out /tmp/dead   # a running relay
   pyrorelay export --dead-letter prod --since -24h --app 'checkout{env=prod}' --out /tmp/dead
   pyrorelay export --archive --since 2026-03-01T00:00:00Z --until 2026-03-02T00:00:00Z --out - | gzip > day.ndjson.gz`,
		Flags: append(append(append(append(dataDirFlags(), sourceFlags("the queue of destination `NAME`")...), selectFlags()...),
			&cli.StringFlag{Name: "out", Required: true, Usage: "a new or empty directory `DIR`, or - for ndjson on stdout"},
		), adminURLFlags()...),
		Action: runExport,
	}
}

func runExport(c *cli.Context) error {
	if c.String("url") != "" {
		return remoteExport(c)
	}
	cfg, err := adminConfig(c)
	if err != nil {
		return err
	}
	sel, err := selectionFromFlags(c, time.Now())
	if err != nil {
		return err
	}
	out := c.String("out")
	st, src, err := datadir.OpenSource(cfg.DataDir, datadir.Read, datadir.AskWithURL, c.String("destination"), c.String("dead-letter"), c.Bool("archive"))
	if err != nil {
		return err
	}
	defer st.Close()
	sink, err := newExportWriter(out, c.App.Writer)
	if err != nil {
		return err
	}
	res, err := datadir.Export(c.Context, st, src, sel.Filter, sink, c.App.ErrWriter)
	if err != nil {
		return fmt.Errorf("export %s after %d entries: %w", src, res.Entries, err)
	}
	report.Exported(c.App.ErrWriter, res.Entries, res.Bytes, res.Skipped, src.String(), out, sel.Describe())
	return nil
}

// newExportWriter is where export writes: the directory out, or ndjson
// to w when out is "-".
func newExportWriter(out string, w io.Writer) (exportfile.Writer, error) {
	if out == "-" {
		return exportfile.NewNDJSONWriter(w), nil
	}
	d, err := exportfile.NewDirWriter(out)
	if errors.Is(err, exportfile.ErrDirNotEmpty) {
		return nil, fmt.Errorf("--out %s is not empty: export into a new directory", out)
	}
	if err != nil {
		return nil, fmt.Errorf("--out: %w", err)
	}
	return d, nil
}

func importCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "put exported requests back into a destination's queue",
		ArgsUsage: "DIR|-",
		Description: `Reads an export (a directory written by ` + "`pyrorelay export --out DIR`" + `, or
ndjson on stdin with -) and appends its entries, oldest first and byte for
byte (receive time included), to the queue of --destination. Use it on a new
node's data dir, or after fixing what made entries dead letters. Run it with
the relay stopped; it sends them when it starts. The data dir is created if
it does not exist.

Examples:
   pyrorelay import /tmp/prod-backlog --destination prod --data-dir /var/lib/pyrorelay
   ssh old-node pyrorelay export --destination prod --out - | pyrorelay import - --destination prod`,
		Flags: append(append(append(dataDirFlags(),
			&cli.StringFlag{Name: "destination", Aliases: []string{"queue"}, Usage: "the destination whose queue takes the entries (required)"}),
			selectFlags()...), inputCheckFlags()...),
		Action: runImport,
	}
}

func runImport(c *cli.Context) error {
	args, err := flagsAfterArgs(c)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return fmt.Errorf("import needs one argument, the export directory or - for ndjson on stdin; got %q", args)
	}
	if c.String("destination") == "" {
		return errors.New("import needs --destination NAME: the destination whose queue takes the entries")
	}
	from := args[0]
	cfg, err := adminConfig(c)
	if err != nil {
		return err
	}
	sel, err := selectionFromFlags(c, time.Now())
	if err != nil {
		return err
	}
	chk, err := inputChecksFromFlags(c)
	if err != nil {
		return err
	}
	queue := c.String("destination")
	res, err := datadir.ImportExport(c.Context, cfg, c.String("config") != "", queue,
		datadir.ExportInput{Path: from, Stdin: c.App.Reader, Checks: chk, Selection: sel})
	if err != nil {
		return err
	}
	report.Imported(c.App.Writer, res.Entries, res.Bytes, res.Skipped, queue, cfg.DataDir)
	warnNotConfigured(c, cfg, queue)
	return nil
}
