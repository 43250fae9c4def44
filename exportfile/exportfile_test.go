package exportfile

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/store"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func ingestRecord(id uint64, body string) store.Record {
	return store.Record{Entry: &store.Entry{
		ID: id, Kind: store.KindIngest, ReceivedAt: t0.Add(time.Duration(id) * time.Second),
		Query: "name=shop.cpu", ContentType: "text/plain", Tenant: "team-a", Body: []byte(body),
	}}
}

var checks = Checks{MaxBodySize: 1 << 20}

func readAll(t *testing.T, path string, r *bytes.Buffer, chk Checks) ([]*Record, []*store.Entry, error) {
	t.Helper()
	var xs []*Record
	var es []*store.Entry
	var in *bytes.Reader
	if r != nil {
		in = bytes.NewReader(r.Bytes())
	}
	err := Read(context.Background(), path, in, chk, func(x *Record, e *store.Entry) error {
		xs, es = append(xs, x), append(es, e)
		return nil
	})
	return xs, es, err
}

// Both forms give back every stored field byte for byte, oldest first.
func TestRoundTrip(t *testing.T) {
	recs := []store.Record{ingestRecord(2, "main;work 10\n"), ingestRecord(10, "main;idle 3\n")}
	src := store.QueueSource("prod")
	dir := filepath.Join(t.TempDir(), "out")
	dw, err := NewDirWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	var nd bytes.Buffer
	nw := NewNDJSONWriter(&nd)
	for _, r := range recs {
		for _, w := range []Writer{dw, nw} {
			if err := w.Write(FromStore(r, src), r.Entry.Body); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, w := range []Writer{dw, nw} {
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		path string
		in   *bytes.Buffer
	}{{"directory", dir, nil}, {"ndjson", "-", &nd}} {
		t.Run(tc.name, func(t *testing.T) {
			xs, es, err := readAll(t, tc.path, tc.in, checks)
			if err != nil {
				t.Fatal(err)
			}
			if len(es) != len(recs) {
				t.Fatalf("read %d entries, want %d", len(es), len(recs))
			}
			for i, e := range es {
				want := recs[i].Entry
				if e.ID != want.ID || !e.ReceivedAt.Equal(want.ReceivedAt) || e.Kind != want.Kind || e.Query != want.Query ||
					e.ContentType != want.ContentType || e.Tenant != want.Tenant || !bytes.Equal(e.Body, want.Body) {
					t.Errorf("entry %d: %+v, want %+v", i, e, want)
				}
				if xs[i].From != "queue:prod" || xs[i].Body != nil {
					t.Errorf("record %d: from %q, body %q", i, xs[i].From, xs[i].Body)
				}
			}
		})
	}
	if _, err := NewDirWriter(dir); !errors.Is(err, ErrDirNotEmpty) {
		t.Errorf("NewDirWriter of a used directory: %v, want ErrDirNotEmpty", err)
	}
}

// A directory as the format states it, written by hand (no body_file,
// a body left without its sidecar), reads as documented.
func TestReadDirAsDocumented(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"00000000000000000042.json": `{
  "id": 42,
  "kind": "ingest",
  "received_at": "2026-03-01T12:00:00Z",
  "query": "name=shop.cpu",
  "content_type": "",
  "content_encoding": "",
  "tenant": "",
  "body_size": 13,
  "body_sha256": "` + sha("main;work 10\n") + `"
}
`,
		"00000000000000000042.body": "main;work 10\n",
		"00000000000000000043.body": "an unfinished write",
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, es, err := readAll(t, dir, nil, checks)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].ID != 42 || string(es[0].Body) != "main;work 10\n" || !es[0].ReceivedAt.Equal(t0) {
		t.Fatalf("read %+v", es)
	}
}

func sha(s string) string {
	x := FromStore(store.Record{Entry: &store.Entry{Body: []byte(s)}}, store.ArchiveSource())
	return x.BodySHA256
}

func TestChecks(t *testing.T) {
	body := []byte("main;work 10\n")
	good := func() *Record {
		return &Record{Kind: "ingest", ReceivedAt: t0, Query: "name=shop.cpu", BodySHA256: sha(string(body))}
	}
	for _, tc := range []struct {
		name    string
		mod     func(x *Record)
		chk     Checks
		body    []byte
		wantErr string
	}{
		{"valid", nil, checks, body, ""},
		{"no checksum", func(x *Record) { x.BodySHA256 = "" }, checks, body, "--no-verify"},
		{"no checksum, no-verify", func(x *Record) { x.BodySHA256 = "" }, Checks{NoVerify: true, MaxBodySize: 1 << 20}, body, ""},
		{"wrong checksum", func(x *Record) { x.BodySHA256 = sha("other") }, checks, body, "does not match body_sha256"},
		{"over max body size", nil, Checks{MaxBodySize: 4}, body, "over --max-body-size 4"},
		{"empty body", nil, checks, nil, "empty body"},
		{"no received_at", func(x *Record) { x.ReceivedAt = time.Time{} }, checks, body, "no received_at"},
		{"unknown kind", func(x *Record) { x.Kind = "otlp" }, checks, body, `kind "otlp"`},
		{"ingest /ingest refuses", func(x *Record) { x.Query = "" }, checks, body, "as /ingest would refuse it"},
		{"copy only skips input checks", func(x *Record) { x.Query = "" }, Checks{CopyOnly: true}, body, ""},
		{"copy only checks the sum", func(x *Record) { x.BodySHA256 = sha("other") }, Checks{CopyOnly: true}, body, "damaged on the way"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := good()
			if tc.mod != nil {
				tc.mod(x)
			}
			_, err := x.Entry(tc.body, tc.chk)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Entry: %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// An ndjson line longer than the largest body allows is refused as it is
// read; blank lines are skipped.
func TestNDJSONLines(t *testing.T) {
	var nd bytes.Buffer
	w := NewNDJSONWriter(&nd)
	r := ingestRecord(1, "main;work 10\n")
	if err := w.Write(FromStore(r, store.ArchiveSource()), r.Entry.Body); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	in := bytes.NewBufferString("\n" + nd.String() + "\n")
	if _, es, err := readAll(t, "-", in, checks); err != nil || len(es) != 1 {
		t.Fatalf("read %d entries: %v", len(es), err)
	}
	long := bytes.NewBufferString(`{"kind":"ingest","body":"` + strings.Repeat("A", 200<<10) + `"}` + "\n")
	if _, _, err := readAll(t, "-", long, Checks{MaxBodySize: 1024}); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("long line: %v", err)
	}
}
