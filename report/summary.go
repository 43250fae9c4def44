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
