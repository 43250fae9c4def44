package replay

import (
	"context"
	"fmt"
	"io"

	"github.com/pyrorelay/pyrorelay/exportfile"
	"github.com/pyrorelay/pyrorelay/selection"
	"github.com/pyrorelay/pyrorelay/store"
)

// FromStore feeds the entries of src in st that filter selects, in
// bounded pages; each is named by its id.
func FromStore(ctx context.Context, st *store.Store, src store.Source, filter store.Filter) Source {
	return func(fn func(Item) error) error {
		_, err := st.Scan(ctx, src, filter, func(r store.Record) error {
			return fn(Item{Entry: r.Entry, Pos: r.Pos, Size: int64(r.Size), Name: fmt.Sprintf("entry %d", r.Entry.ID)})
		})
		return err
	}
}

// FromExport feeds the entries of the export at path (a directory, or "-"
// for ndjson on r) that sel selects, checked by chk. what names the export
// in messages ("stdin" for r).
func FromExport(ctx context.Context, path string, r io.Reader, chk exportfile.Checks, sel selection.Selection, what string) Source {
	return func(fn func(Item) error) error {
		n := 0
		return exportfile.Read(ctx, path, r, chk, func(_ *exportfile.Record, e *store.Entry) error {
			n++
			if !sel.Matches(e) {
				return nil
			}
			return fn(Item{Entry: e, Size: int64(e.Size()), Name: exportEntryName(e, n, what)})
		})
	}
}

// exportEntryName names the n-th entry read from an export for messages:
// by the id it had in the relay it was exported from, and its place in the
// export (an ndjson file written by hand may have no ids).
func exportEntryName(e *store.Entry, n int, from string) string {
	if e.ID == 0 {
		return fmt.Sprintf("record %d of %s", n, from)
	}
	return fmt.Sprintf("entry %d (record %d of %s)", e.ID, n, from)
}
