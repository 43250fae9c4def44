package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/pyrorelay/pyrorelay/exportfile"
	"github.com/pyrorelay/pyrorelay/progress"
)

// maxReason is the longest reason the dead-letter table shows; the rest
// is cut, the full one is in the --json form.
const maxReason = 120

// DeadLetters writes a destination's dead letters as `pyrorelay
// dead-letter list` shows them, whether read from a data dir or from a
// running relay: a table for people, one a line, or with JSON one record
// a line (the export sidecar format, without the re-send hint).
type DeadLetters struct {
	w   io.Writer
	enc *json.Encoder
	tw  *tabwriter.Writer
}

// NewDeadLetters starts a list on w: the table's header, or nothing for
// JSON.
func NewDeadLetters(w io.Writer, asJSON bool) *DeadLetters {
	if asJSON {
		return &DeadLetters{w: w, enc: json.NewEncoder(w)}
	}
	d := &DeadLetters{w: w, tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	fmt.Fprintln(d.tw, "ID\tRECEIVED\tDEAD-LETTERED\tSTATUS\tATTEMPTS\tSIZE\tAPP\tREASON")
	return d
}

// Add writes x, a dead letter of size bytes whose application is app (the
// table's column; the JSON form prints x as it is, without x.Request).
func (d *DeadLetters) Add(x *exportfile.Record, size int64, app string) error {
	if d.enc != nil {
		x.Request = nil
		return d.enc.Encode(x)
	}
	st := "-"
	if x.Status != 0 {
		st = strconv.Itoa(x.Status)
	}
	reason := x.Reason
	if len(reason) > maxReason {
		reason = reason[:maxReason] + "..."
	}
	dead := time.Time{}
	if x.DeadLetteredAt != nil {
		dead = *x.DeadLetteredAt
	}
	fmt.Fprintf(d.tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", x.ID, x.ReceivedAt.UTC().Format(time.RFC3339),
		dead.UTC().Format(time.RFC3339), st, x.Attempts, progress.Bytes(size), app, reason)
	return nil
}

// Flush writes out the table's rows; call it when the list ends, also
// when it ends with an error.
func (d *DeadLetters) Flush() {
	if d.tw != nil {
		_ = d.tw.Flush()
	}
}

// Summary writes the table's last line, how many dead letters (n, bytes)
// of destination name were listed; desc says which (selection.Describe).
// The JSON form has none.
func (d *DeadLetters) Summary(n int, bytes int64, name, desc string) {
	if d.tw != nil {
		fmt.Fprintf(d.w, "%d dead letters (%s) of %s%s\n", n, progress.Bytes(bytes), name, desc)
	}
}
