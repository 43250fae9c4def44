package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/store"
)

// exported is one stored request as an export holds it: the JSON sidecar
// of <id>.body in a directory export, or one line of an ndjson export (with
// the body inline, base64). Import reads the fields the relay stored back
// unchanged, so an export/import round trip is byte for byte; Request is a
// convenience for anyone re-sending the file with another tool.
type exported struct {
	ID              uint64    `json:"id"`
	Kind            string    `json:"kind"` // "ingest" or "push"
	ReceivedAt      time.Time `json:"received_at"`
	Query           string    `json:"query"`
	ContentType     string    `json:"content_type"`
	ContentEncoding string    `json:"content_encoding"`
	Tenant          string    `json:"tenant"`
	// From is where the entry was stored: "queue:NAME",
	// "dead-letter:NAME" or "archive".
	From       string `json:"from,omitempty"`
	BodyFile   string `json:"body_file,omitempty"`
	BodySize   int    `json:"body_size"`
	BodySHA256 string `json:"body_sha256"`
	// Dead-letter fields, for entries exported from a dead-letter list.
	Reason         string     `json:"reason,omitempty"`
	Status         int        `json:"status,omitempty"`
	Attempts       int        `json:"attempts,omitempty"`
	DeadLetteredAt *time.Time `json:"dead_lettered_at,omitempty"`
	// App names the entry's application where the body is left out
	// (the admin API's listing of dead letters).
	App string `json:"app,omitempty"`
	// Request says how to send the body to a Pyroscope server by hand.
	Request *resendHint `json:"request,omitempty"`
	// Body is the request body, in an ndjson export only.
	Body []byte `json:"body,omitempty"`
}

type resendHint struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers,omitempty"`
}

func sourceLabel(src store.Source) string {
	switch src.Kind {
	case store.SourceQueue:
		return "queue:" + src.Queue
	case store.SourceDeadLetters:
		return "dead-letter:" + src.Queue
	default:
		return "archive"
	}
}

func toExported(r store.Record, src store.Source) *exported {
	e := r.Entry
	sum := sha256.Sum256(e.Body)
	x := &exported{
		ID: e.ID, Kind: e.Kind.String(), ReceivedAt: e.ReceivedAt.UTC(),
		Query: e.Query, ContentType: e.ContentType, ContentEncoding: e.ContentEncoding, Tenant: e.Tenant,
		From: sourceLabel(src), BodySize: len(e.Body), BodySHA256: hex.EncodeToString(sum[:]),
	}
	if d := r.Dead; d != nil {
		at := d.At.UTC()
		x.Reason, x.Status, x.Attempts, x.DeadLetteredAt = d.Reason, d.Status, d.Attempts, &at
	}
	h := &resendHint{Method: "POST", Headers: map[string]string{}}
	if e.Kind == store.KindPush {
		h.Path = "/push.v1.PusherService/Push"
		h.Headers["Content-Type"] = "application/proto"
		if e.ContentEncoding != "" {
			// Stored as it arrived: gzipped.
			h.Headers["Content-Encoding"] = e.ContentEncoding
		}
	} else {
		h.Path = "/ingest"
		if e.Query != "" {
			h.Path += "?" + e.Query
		}
		if e.ContentType != "" {
			h.Headers["Content-Type"] = e.ContentType
		}
		if e.ContentEncoding != "" {
			h.Headers["Content-Encoding"] = e.ContentEncoding
		}
	}
	if e.Tenant != "" {
		h.Headers["X-Scope-OrgID"] = e.Tenant
	}
	x.Request = h
	return x
}

// sourceFlags choose what to read from a data dir.
func sourceFlags(queueUsage string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "destination", Aliases: []string{"queue"}, Usage: queueUsage},
		&cli.StringFlag{Name: "dead-letter", Usage: "the dead letters of destination `NAME`"},
		&cli.BoolFlag{Name: "archive", Usage: "the archive of delivered entries (serve --archive-retention)"},
	}
}

// sourceFromFlags reads the source flags, checking the source exists.
func sourceFromFlags(c *cli.Context, st *store.Store, dir string) (store.Source, error) {
	var picked []store.Source
	if n := c.String("destination"); n != "" {
		picked = append(picked, store.QueueSource(n))
	}
	if n := c.String("dead-letter"); n != "" {
		picked = append(picked, store.DeadLetterSource(n))
	}
	if c.Bool("archive") {
		picked = append(picked, store.ArchiveSource())
	}
	sum, err := st.Summary()
	if err != nil {
		return store.Source{}, err
	}
	if len(picked) != 1 {
		return store.Source{}, fmt.Errorf("choose one of --destination NAME, --dead-letter NAME or --archive; %s holds %s", dir, describeStore(sum))
	}
	src := picked[0]
	if src.Kind != store.SourceArchive {
		if _, ok := sum.Queues[src.Queue]; !ok {
			return src, fmt.Errorf("no queue %q in %s; it holds %s", src.Queue, dir, describeStore(sum))
		}
	}
	return src, nil
}

// describeStore lists what a store holds, for error messages.
func describeStore(sum store.Summary) string {
	var parts []string
	for _, n := range sum.QueueNames() {
		q := sum.Queues[n]
		parts = append(parts, fmt.Sprintf("queue %s (%d entries, %d dead letters)", n, q.Entries, q.DeadEntries))
	}
	parts = append(parts, fmt.Sprintf("archive (%d entries)", sum.Archive.Entries))
	return strings.Join(parts, ", ")
}

func exportCommand() *cli.Command {
	return &cli.Command{
		Name:      "export",
		Usage:     "write stored requests as files anyone can re-send, or as ndjson to stdout",
		ArgsUsage: " ",
		Description: `Writes each selected entry of a queue, a dead-letter list or the archive as
<id>.body (the request body, byte for byte) and <id>.json (id, kind,
received_at, query, content_type, content_encoding, tenant, body checksum,
dead-letter reason/status/attempts, and how to re-send it). With --out -, it
writes one JSON object per line to stdout instead, the body base64-encoded.
The store is read in bounded pages, so exports of any size run in bounded
memory. It reads a stopped relay's data dir, or asks a running relay with
--url (its admin API streams the same ndjson); the entries stay where they are.

Re-send one exported /ingest request by hand:
   curl --data-binary @00000000000000000042.body \
     -H "Content-Type: $(jq -r .content_type 00000000000000000042.json)" \
     "http://pyroscope:4040/ingest?$(jq -r .query 00000000000000000042.json)"

Examples:
   pyrorelay export --data-dir /var/lib/pyrorelay --destination prod --out /tmp/prod-backlog
   pyrorelay export --url http://127.0.0.1:4040 --dead-letter prod --out /tmp/dead   # a running relay
   pyrorelay export --dead-letter prod --since -24h --app 'checkout{env=prod}' --out /tmp/dead
   pyrorelay export --archive --since 2026-03-01T00:00:00Z --until 2026-03-02T00:00:00Z --out - | gzip > day.ndjson.gz`,
		Flags: append(append(append(append(dataDirFlags(), sourceFlags("the queue of destination `NAME`")...), selectFlags()...),
			&cli.StringFlag{Name: "out", Required: true, Usage: "a new or empty directory `DIR`, or - for ndjson on stdout"},
		), adminURLFlags()...),
		Action: runExport,
	}
}

func runExport(c *cli.Context) error {
	if c.String("url") != "" {
		return remoteExport(c)
	}
	cfg, err := adminConfig(c)
	if err != nil {
		return err
	}
	sel, err := selectionFromFlags(c, time.Now())
	if err != nil {
		return err
	}
	out := c.String("out")
	st, err := openAdminStore(cfg.DataDir, openRead, askWithURL)
	if err != nil {
		return err
	}
	defer st.Close()
	src, err := sourceFromFlags(c, st, cfg.DataDir)
	if err != nil {
		return err
	}
	var sink exportSink
	if out == "-" {
		sink = newNDJSONSink(c.App.Writer)
	} else {
		if sink, err = newDirSink(out); err != nil {
			return err
		}
	}
	total, err := st.Count(c.Context, src, sel.filter)
	if err != nil {
		return err
	}
	prog := newProgress(c.App.ErrWriter, "exported", total.Entries, total.Bytes)
	res, err := st.Scan(c.Context, src, sel.filter, func(r store.Record) error {
		if err := sink.write(toExported(r, src), r.Entry.Body); err != nil {
			return err
		}
		prog.add(int64(r.Size))
		return nil
	})
	prog.finish()
	if cerr := sink.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("export %s after %d entries: %w", src, res.Entries, err)
	}
	where := out
	if out == "-" {
		where = "stdout"
	}
	fmt.Fprintf(c.App.ErrWriter, "exported %d entries (%s) from %s to %s%s\n", res.Entries, humanBytes(res.Bytes), src, where, describeSelection(sel))
	if res.Skipped > 0 {
		fmt.Fprintf(c.App.ErrWriter, "warning: %d unreadable entries skipped (corrupt or missing); the relay quarantines them when it reads them\n", res.Skipped)
	}
	return nil
}

func describeSelection(sel selection) string {
	if sel.desc == "" {
		return ""
	}
	return " (" + sel.desc + ")"
}

// exportSink is where export writes.
type exportSink interface {
	write(x *exported, body []byte) error
	close() error
}

type dirSink struct{ dir string }

// newDirSink makes (or checks) an empty export directory: files of two
// exports never mix, so an import of the directory means one thing.
func newDirSink(dir string) (*dirSink, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("--out: %w", err)
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("--out: %w", err)
	}
	defer f.Close()
	if names, _ := f.Readdirnames(1); len(names) > 0 {
		return nil, fmt.Errorf("--out %s is not empty: export into a new directory", dir)
	}
	return &dirSink{dir: dir}, nil
}

func exportName(id uint64) string { return fmt.Sprintf("%020d", id) }

func (d *dirSink) write(x *exported, body []byte) error {
	name := exportName(x.ID)
	x.BodyFile = name + ".body"
	if err := os.WriteFile(filepath.Join(d.dir, x.BodyFile), body, 0o640); err != nil {
		return err
	}
	js, err := json.MarshalIndent(x, "", "  ")
	if err != nil {
		return err
	}
	// The sidecar is written last: a body without one is an unfinished
	// export that import ignores.
	return os.WriteFile(filepath.Join(d.dir, name+".json"), append(js, '\n'), 0o640)
}

func (d *dirSink) close() error { return nil }

type ndjsonSink struct {
	w   *bufio.Writer
	enc *json.Encoder
}

func newNDJSONSink(w io.Writer) *ndjsonSink {
	bw := bufio.NewWriterSize(w, 1<<20)
	return &ndjsonSink{w: bw, enc: json.NewEncoder(bw)}
}

func (n *ndjsonSink) write(x *exported, body []byte) error {
	x.Body = body
	if x.Body == nil {
		x.Body = []byte{}
	}
	return n.enc.Encode(x)
}

func (n *ndjsonSink) close() error { return n.w.Flush() }

// importBatch bounds one import transaction.
const (
	importBatchEntries = 256
	importBatchBytes   = 32 << 20
)

func importCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "put exported requests back into a destination's queue",
		ArgsUsage: "DIR|-",
		Description: `Reads an export (a directory written by ` + "`pyrorelay export --out DIR`" + `, or
ndjson on stdin with -) and appends its entries, oldest first and byte for
byte (receive time included), to the queue of --destination. Use it on a new
node's data dir, or after fixing what made entries dead letters. Run it with
the relay stopped; it sends them when it starts. The data dir is created if
it does not exist.

Examples:
   pyrorelay import /tmp/prod-backlog --destination prod --data-dir /var/lib/pyrorelay
   ssh old-node pyrorelay export --destination prod --out - | pyrorelay import - --destination prod`,
		Flags: append(append(append(dataDirFlags(),
			&cli.StringFlag{Name: "destination", Aliases: []string{"queue"}, Usage: "the destination whose queue takes the entries (required)"}),
			selectFlags()...), inputCheckFlags()...),
		Action: runImport,
	}
}

func runImport(c *cli.Context) error {
	args, err := flagsAfterArgs(c)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return fmt.Errorf("import needs one argument, the export directory or - for ndjson on stdin; got %q", args)
	}
	if c.String("destination") == "" {
		return errors.New("import needs --destination NAME: the destination whose queue takes the entries")
	}
	from := args[0]
	cfg, err := adminConfig(c)
	if err != nil {
		return err
	}
	sel, err := selectionFromFlags(c, time.Now())
	if err != nil {
		return err
	}
	chk, err := inputChecksFromFlags(c)
	if err != nil {
		return err
	}
	queue := c.String("destination")
	if from != "-" {
		if fi, err := os.Stat(from); err != nil || !fi.IsDir() {
			return fmt.Errorf("import %s: not a directory: give the --out directory of `pyrorelay export`, or - for ndjson on stdin", from)
		}
	}
	st, err := openAdminStore(cfg.DataDir, openCreate, stopRelayFirst)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := checkImportQueue(st, cfg, c.String("config") != "", queue); err != nil {
		return err
	}
	var batch []*store.Entry
	batchBytes, n, skipped := 0, 0, 0
	var bytes int64
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := st.Import(c.Context, queue, batch); err != nil {
			return err
		}
		for _, e := range batch {
			n++
			bytes += int64(e.Size())
		}
		batch, batchBytes = batch[:0], 0
		return nil
	}
	err = readExport(c.Context, from, c.App.Reader, chk, func(_ *exported, e *store.Entry) error {
		if !sel.matches(e) {
			skipped++
			return nil
		}
		batch = append(batch, e)
		batchBytes += len(e.Body)
		if len(batch) >= importBatchEntries || batchBytes >= importBatchBytes {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("import into queue %q after %d entries (those are stored; import the rest again from a fresh export, or purge and redo): %w", queue, n, err)
	}
	msg := fmt.Sprintf("imported %d entries (%s) into queue %q of %s", n, humanBytes(bytes), queue, cfg.DataDir)
	if skipped > 0 {
		msg += fmt.Sprintf("; %d left out by the filters", skipped)
	}
	fmt.Fprintln(c.App.Writer, msg)
	if c.String("config") != "" && !destinationConfigured(cfg, queue) {
		fmt.Fprintf(c.App.ErrWriter, "warning: %q is not a destination in %s: nothing will send these entries until it is\n", queue, c.String("config"))
	}
	return nil
}
