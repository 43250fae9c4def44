package datadir

import (
	"context"

	"github.com/pyrorelay/pyrorelay/exportfile"
	"github.com/pyrorelay/pyrorelay/progress"
	"github.com/pyrorelay/pyrorelay/store"
)

// Export writes the entries of src in st that filter selects to sink, read
// in bounded pages, each with the record exportfile.FromStore makes of it,
// and counts each on prog. Then it finishes prog and closes sink. The
// result counts what was written, and the entries skipped as unreadable.
func Export(ctx context.Context, st *store.Store, src store.Source, filter store.Filter, sink exportfile.Writer, prog *progress.Progress) (store.ScanResult, error) {
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
