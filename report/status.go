package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pyrorelay/pyrorelay/httpserver"
	"github.com/pyrorelay/pyrorelay/progress"
)

// QueueStatus writes st, the admin API's status document, as `pyrorelay
// queue status` shows it: a table of the queues, the archive, the file,
// and what to do about orphan queues. Ages are taken at st.GeneratedAt
// (now when it is not set).
func QueueStatus(w io.Writer, st httpserver.QueuesStatus) {
	now := st.GeneratedAt
	if now.IsZero() {
		now = time.Now()
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DESTINATION\tSTATE\tENTRIES\tBYTES\tOLDEST\tNEWEST\tDEAD LETTERS\tDEAD BYTES\tRECEIVERS")
	var orphans []string
	for _, q := range st.Queues {
		state := "-"
		switch {
		case q.Orphan():
			state = "ORPHAN"
			orphans = append(orphans, q.Name)
		case q.Configured != nil && *q.Configured:
			state = "configured"
		case q.Configured != nil:
			state = "not configured"
		}
		receivers := "-"
		if len(q.Receivers) > 0 {
			receivers = strings.Join(q.Receivers, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\t%s\t%s\n", q.Name, state, q.Entries, progress.Bytes(q.Bytes),
			agoPtr(q.Oldest, now), agoPtr(q.Newest, now), q.DeadLetters, progress.Bytes(q.DeadLetterBytes), receivers)
	}
	_ = tw.Flush()
	if len(st.Queues) == 0 {
		fmt.Fprintln(w, "(no queue yet)")
	}
	a := st.Archive
	fmt.Fprintf(w, "\narchive: %d entries, %s", a.Entries, progress.Bytes(a.Bytes))
	if a.Oldest != nil {
		fmt.Fprintf(w, ", received %s to %s", a.Oldest.Format(time.RFC3339), a.Newest.Format(time.RFC3339))
	}
	var settings []string
	if a.RetentionSeconds > 0 {
		settings = append(settings, "retention "+(time.Duration(a.RetentionSeconds)*time.Second).String())
	}
	if a.MaxBytes > 0 {
		settings = append(settings, "max "+progress.Bytes(a.MaxBytes))
	}
	if len(settings) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(settings, ", "))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "file: %s on disk (a stopped relay's file shrinks with `pyrorelay compact`), record log: %s; quarantined records: %d\n",
		progress.Bytes(st.FileBytes), progress.Bytes(st.LogBytes), st.Quarantined)
	if len(orphans) > 0 {
		fmt.Fprintf(w, "\n%d orphan queue(s): no configured destination drains %s. Move one to a destination with\n"+
			"`pyrorelay queue move --from %s --to NEW` (relay stopped), or send it with `pyrorelay replay --queue %s --to URL`.\n",
			len(orphans), strings.Join(orphans, ", "), orphans[0], orphans[0])
	}
}

// QueueStatusJSON writes st as `pyrorelay queue status --json` does: the
// admin API's document, indented.
func QueueStatusJSON(w io.Writer, st httpserver.QueuesStatus) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(st)
}
