package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/pyrorelay/pyrorelay/exportfile"
	"github.com/pyrorelay/pyrorelay/progress"
	"github.com/pyrorelay/pyrorelay/selection"
	"github.com/pyrorelay/pyrorelay/store"
)

// Exported is what Client.Export wrote.
type Exported struct {
	Entries int
	Bytes   int64
	// From is where the relay read them (exportfile.Record.From).
	From string
}

// Export asks the relay for the export q, with bodies, and writes each
// entry to sink as it arrives, byte for byte, showing progress on status;
// then it closes sink and checks that every entry the relay sent arrived
// (ExportComplete). An error after the relay answered says how many
// entries were written before it.
func (c Client) Export(ctx context.Context, q ExportQuery, sink exportfile.Writer, status io.Writer) (Exported, error) {
	q.Bodies = true
	resp, err := c.Get(ctx, q.Path())
	if err != nil {
		return Exported{}, err
	}
	defer resp.Body.Close()
	prog := progress.New(status, "exported", -1, 0)
	var res Exported
	err = exportfile.ReadNDJSON(ctx, resp.Body, exportfile.Checks{CopyOnly: true, MaxBodySize: selection.MaxPushBody}, func(x *exportfile.Record, e *store.Entry) error {
		res.From = x.From
		if err := sink.Write(x, e.Body); err != nil {
			return err
		}
		res.Entries++
		prog.Add(int64(len(e.Body)))
		return nil
	})
	prog.Finish()
	if cerr := sink.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = ExportComplete(resp, res.Entries)
	}
	if err != nil {
		return res, fmt.Errorf("export from the relay at %s after %d entries: %w", RedactURL(c.URL), res.Entries, err)
	}
	_, res.Bytes, _ = prog.Counts()
	return res, nil
}

// DeadLetters asks the relay for the dead letters q selects (q.DeadLetter
// names the destination), without bodies, and gives each record to fn as
// it arrives. It returns how many arrived and the size of their bodies.
// When the answer ended before all the relay sent arrived, fn has had
// every record that did and the error wraps ErrIncomplete.
func (c Client) DeadLetters(ctx context.Context, q ExportQuery, fn func(*exportfile.Record) error) (n int, bytes int64, err error) {
	q.Bodies = false
	resp, err := c.Get(ctx, q.Path())
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var x exportfile.Record
		err := dec.Decode(&x)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, bytes, fmt.Errorf("dead letter %d from the relay: %w", n+1, err)
		}
		n++
		bytes += int64(x.BodySize)
		if err := fn(&x); err != nil {
			return n, bytes, err
		}
	}
	return n, bytes, ExportComplete(resp, n)
}
