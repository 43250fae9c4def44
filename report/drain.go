package report

import (
	"fmt"
	"io"
	"time"

	"github.com/pyrorelay/pyrorelay/daemon"
	"github.com/pyrorelay/pyrorelay/progress"
)

// Drain writes a line per destination of a drain, ages taken at now:
// empty, or what is left and the last failure; what was delivered; what
// went to the dead-letter list and how to see it.
func Drain(w io.Writer, results []daemon.DrainResult, now time.Time) {
	for _, r := range results {
		a := r.After
		line := fmt.Sprintf("%s: ", r.Destination)
		if a.Entries == 0 {
			line += fmt.Sprintf("empty; %d delivered", r.Delivered())
		} else {
			line += fmt.Sprintf("%d entries (%s) left, oldest received %s; %d delivered", a.Entries, progress.Bytes(a.Bytes), Ago(a.Oldest, now), r.Delivered())
			if lf := r.LastFailure; lf != nil {
				line += fmt.Sprintf("; last failure %s: %s", Ago(lf.At, now), lf.Reason)
			}
		}
		if dead := r.DeadLettered(); dead > 0 {
			line += fmt.Sprintf("; %d moved to dead-letter (see `pyrorelay dead-letter list --destination %s`)", dead, r.Destination)
		}
		fmt.Fprintln(w, line)
	}
}
