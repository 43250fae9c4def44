package replay

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pyrorelay/pyrorelay/datadir"
	"github.com/pyrorelay/pyrorelay/exportfile"
	"github.com/pyrorelay/pyrorelay/selection"
	"github.com/pyrorelay/pyrorelay/store"
)

// From says what a replay reads: the --from, --queue, --dead-letter,
// --archive and --keep of `pyrorelay replay`.
type From struct {
	// Path is a data dir, an export directory or "-" for ndjson on Stdin;
	// "" reads DataDir.
	Path    string
	DataDir string
	// Queue, DeadLetter and Archive pick what to read from a data dir
	// (one of them); an export holds one list already.
	Queue, DeadLetter string
	Archive           bool
	// Keep leaves the delivered entries of a Queue where they are; a
	// replay that is no DryRun removes them otherwise.
	Keep, DryRun bool
	// Selection picks the entries.
	Selection selection.Selection
	// Stdin is read for Path "-".
	Stdin io.Reader
	// Checks is called, only when an export is read, for the checks of
	// each entry read from it.
	Checks func() (exportfile.Checks, error)
}

// Input is an opened From.
type Input struct {
	// Source feeds the selected entries.
	Source Source
	// Ack, if not nil, removes a delivered entry from the queue replayed
	// (Options.Ack).
	Ack func(pos uint64) error
	// What names what is read in messages: a store.Source, an export's
	// path or "stdin".
	What string
	// Entries and Bytes are what Source will feed; Entries is -1 when not
	// known before reading (an export).
	Entries int
	Bytes   int64
	st      *store.Store
}

// Close closes the data dir read, if one was.
func (in *Input) Close() error {
	if in.st == nil {
		return nil
	}
	return in.st.Close()
}

// Open opens what f names, with ctx for reading it. A Path holding a store
// file is a data dir; any other directory is an export. A data dir is
// opened as package datadir does (what to do when a running relay holds
// it), for writing when delivered entries leave its queue.
func Open(ctx context.Context, f From) (*Input, error) {
	path, fromStore := f.Path, f.Path == ""
	if path == "" {
		path = f.DataDir
	} else if path != "-" {
		fi, err := os.Stat(path)
		if err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("--from %s: want a data dir, an export directory, or - for ndjson on stdin", path)
		}
		if _, err := os.Stat(filepath.Join(path, store.FileName)); err == nil {
			fromStore = true
		}
	}
	if !fromStore && (f.Queue != "" || f.DeadLetter != "" || f.Archive) {
		return nil, fmt.Errorf("--from %s is an export, not a data dir: --queue, --dead-letter and --archive choose what to read from a data dir", path)
	}
	if !fromStore {
		what := path
		if path == "-" {
			what = "stdin"
		}
		chk, err := f.Checks()
		if err != nil {
			return nil, err
		}
		return &Input{Source: FromExport(ctx, path, f.Stdin, chk, f.Selection, what), What: what, Entries: -1}, nil
	}
	mode := datadir.Read
	if f.Queue != "" && !f.Keep && !f.DryRun {
		mode = datadir.Write
	}
	st, src, err := datadir.OpenSource(path, mode, datadir.StopRelayFirst, f.Queue, f.DeadLetter, f.Archive)
	if err != nil {
		return nil, err
	}
	in := &Input{st: st}
	cnt, err := st.Count(ctx, src, f.Selection.Filter)
	if err != nil {
		_ = in.Close()
		return nil, err
	}
	in.What, in.Entries, in.Bytes = src.String(), cnt.Entries, cnt.Bytes
	in.Source = FromStore(ctx, st, src, f.Selection.Filter)
	if mode == datadir.Write {
		in.Ack = func(pos uint64) error {
			return st.Ack(context.WithoutCancel(ctx), src.Queue, pos)
		}
	}
	return in, nil
}
