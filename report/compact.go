package report

import (
	"fmt"
	"io"

	"github.com/pyrorelay/pyrorelay/progress"
	"github.com/pyrorelay/pyrorelay/store"
)

// Compact writes what store.Compact did to the data dir dir: the leftovers
// of interrupted compacts it removed, and the file's size before and
// after.
func Compact(w io.Writer, dir string, res store.CompactResult) {
	for _, l := range res.Removed {
		fmt.Fprintf(w, "removed %s (%s), left by a compact that was interrupted\n", l.Path, progress.Bytes(l.Bytes))
	}
	fmt.Fprintf(w, "%s: %s before, %s after (%s freed)\n", dir, progress.Bytes(res.Before), progress.Bytes(res.After), progress.Bytes(max(res.Before-res.After, 0)))
}
