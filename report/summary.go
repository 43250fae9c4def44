package report

import (
	"fmt"
	"io"
	"time"

	"github.com/pyrorelay/pyrorelay/progress"
)

// Replayed writes the last line of a replay: sent entries (n, bytes) of
// what, to the destination to, in elapsed; and how many were not sent.
func Replayed(w io.Writer, n int, bytes int64, failed int, what, to string, elapsed time.Duration) {
	fmt.Fprintf(w, "sent %d entries (%s) from %s to %s in %s", n, progress.Bytes(bytes), what, to, elapsed.Round(time.Millisecond))
	if failed > 0 {
		fmt.Fprintf(w, "; %d not sent", failed)
	}
	fmt.Fprintln(w)
}

// Exported writes the last line of an export: n entries (bytes) from
// where they were read, to out (a directory, or "-" for stdout); desc says
// which were selected (selection.Describe). A warning follows when
// entries were skipped as unreadable.
func Exported(w io.Writer, n int, bytes int64, skipped int, from, out, desc string) {
	if out == "-" {
		out = "stdout"
	}
	fmt.Fprintf(w, "exported %d entries (%s) from %s to %s%s\n", n, progress.Bytes(bytes), from, out, desc)
	if skipped > 0 {
		fmt.Fprintf(w, "warning: %d unreadable entries skipped (corrupt or missing); the relay quarantines them when it reads them\n", skipped)
	}
}

// Imported writes the last line of an import: n entries (bytes) stored in
// queue of the data dir dir, and how many the filters left out.
func Imported(w io.Writer, n int, bytes int64, skipped int, queue, dir string) {
	fmt.Fprintf(w, "imported %d entries (%s) into queue %q of %s", n, progress.Bytes(bytes), queue, dir)
	if skipped > 0 {
		fmt.Fprintf(w, "; %d left out by the filters", skipped)
	}
	fmt.Fprintln(w)
}
