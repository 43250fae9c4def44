package datadir

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/pyrorelay/pyrorelay/daemon"
	"github.com/pyrorelay/pyrorelay/exportfile"
	"github.com/pyrorelay/pyrorelay/selection"
	"github.com/pyrorelay/pyrorelay/store"
)

// ExportInput is an export to read: the directory Path, or ndjson on
// Stdin when Path is "-"; each entry checked by Checks, those Selection
// selects.
type ExportInput struct {
	Path      string
	Stdin     io.Reader
	Checks    exportfile.Checks
	Selection selection.Selection
}

// Imported is what ImportExport stored, and what the selection left out.
type Imported struct {
	Entries int
	Bytes   int64
	Skipped int
}

// ImportExport appends the entries of in to queue in the data dir of cfg,
// created if missing, as Import does. configGiven says cfg comes from a
// file: the queue must then be a destination of it or a queue of the data
// dir already (CheckImportQueue). An error part way says how many entries
// are stored and what to do about the rest.
func ImportExport(ctx context.Context, cfg daemon.Config, configGiven bool, queue string, in ExportInput) (Imported, error) {
	if in.Path != "-" {
		if fi, err := os.Stat(in.Path); err != nil || !fi.IsDir() {
			return Imported{}, fmt.Errorf("import %s: not a directory: give the --out directory of `pyrorelay export`, or - for ndjson on stdin", in.Path)
		}
	}
	st, err := Open(cfg.DataDir, Create, StopRelayFirst)
	if err != nil {
		return Imported{}, err
	}
	defer st.Close()
	if err := CheckImportQueue(st, cfg, configGiven, queue); err != nil {
		return Imported{}, err
	}
	var res Imported
	res.Entries, res.Bytes, err = Import(ctx, st, queue, func(add func(*store.Entry) error) error {
		return exportfile.Read(ctx, in.Path, in.Stdin, in.Checks, func(_ *exportfile.Record, e *store.Entry) error {
			if !in.Selection.Matches(e) {
				res.Skipped++
				return nil
			}
			return add(e)
		})
	})
	if err != nil {
		return res, fmt.Errorf("import into queue %q after %d entries (those are stored; import the rest again from a fresh export, or purge and redo): %w", queue, res.Entries, err)
	}
	return res, nil
}
