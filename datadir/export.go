package datadir

import (
	"context"
	"io"

	"github.com/pyrorelay/pyrorelay/exportfile"
	"github.com/pyrorelay/pyrorelay/progress"
	"github.com/pyrorelay/pyrorelay/store"
)

// Export writes the entries of src in st that filter selects to sink, read
// in bounded pages, each with the record exportfile.FromStore makes of it,
// showing progress on status; then it closes sink. The result counts what
// was written, and the entries skipped as unreadable.
func Export(ctx context.Context, st *store.Store, src store.Source, filter store.Filter, sink exportfile.Writer, status io.Writer) (store.ScanResult, error) {
	total, err := st.Count(ctx, src, filter)
	if err != nil {
		return store.ScanResult{}, err
	}
	prog := progress.New(status, "exported", total.Entries, total.Bytes)
	res, err := st.Scan(ctx, src, filter, func(r store.Record) error {
		if err := sink.Write(exportfile.FromStore(r, src), r.Entry.Body); err != nil {
			return err
		}
		prog.Add(int64(r.Size))
		return nil
	})
	prog.Finish()
	if cerr := sink.Close(); err == nil {
		err = cerr
	}
	return res, err
}
