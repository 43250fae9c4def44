package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	typesv1 "github.com/grafana/pyroscope/api/gen/proto/go/types/v1"
	"google.golang.org/protobuf/proto"

	"github.com/pyrorelay/pyrorelay/exportfile"
	"github.com/pyrorelay/pyrorelay/store"
)

// ndjsonLine is one ndjson export record of kind with body; mod may change
// it before it is encoded.
func ndjsonLine(t *testing.T, kind, query string, body []byte, mod func(x *exportfile.Record)) string {
	t.Helper()
	sum := sha256.Sum256(body)
	x := exportfile.Record{ID: 7, Kind: kind, ReceivedAt: cliT0(), Query: query, Body: body, BodySize: len(body), BodySHA256: hex.EncodeToString(sum[:])}
	if mod != nil {
		mod(&x)
	}
	b, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

func validPush(t *testing.T) []byte {
	t.Helper()
	b, err := proto.Marshal(&pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{
		Labels:  []*typesv1.LabelPair{{Name: "__name__", Value: "process_cpu"}, {Name: "service_name", Value: "shop"}},
		Samples: []*pushv1.RawSample{{RawProfile: cliProfile}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestImportChecksInput: import takes what the relay would have stored and
// refuses, with a reason, what it would not have.
func TestImportChecksInput(t *testing.T) {
	folded := []byte("main;work 10\n")
	const q = "name=shop.cpu"
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(validPush(t))
	_ = zw.Close()
	for _, tc := range []struct {
		name  string
		input string
		flags []string
		want  string // "" accepts; else a part of the error
	}{
		{"valid ingest", ndjsonLine(t, "ingest", q, folded, nil), nil, ""},
		{"valid push", ndjsonLine(t, "push", "", validPush(t), nil), nil, ""},
		{"push stored gzipped", ndjsonLine(t, "push", "", gz.Bytes(), func(x *exportfile.Record) { x.ContentEncoding = "gzip" }), nil, ""},
		{"no checksum", ndjsonLine(t, "ingest", q, folded, func(x *exportfile.Record) { x.BodySHA256 = "" }), nil, "--no-verify"},
		{"no checksum, --no-verify", ndjsonLine(t, "ingest", q, folded, func(x *exportfile.Record) { x.BodySHA256 = "" }), []string{"--no-verify"}, ""},
		{"empty body", ndjsonLine(t, "ingest", q, nil, nil), []string{"--no-verify"}, "empty body"},
		{"push that is not a PushRequest", ndjsonLine(t, "push", "", []byte("main;work 10\n"), nil), nil, "PushRequest"},
		{"push without series", ndjsonLine(t, "push", "", []byte{0x12, 0x00}, nil), nil, "no series"},
		{"ingest without a name", ndjsonLine(t, "ingest", "format=folded", folded, nil), nil, "name is required"},
		{"body over --max-body-size", ndjsonLine(t, "ingest", q, bytes.Repeat([]byte("a;b 1\n"), 400), nil), []string{"--max-body-size", "1KiB"}, "--max-body-size"},
		{"line over --max-body-size", ndjsonLine(t, "ingest", q, bytes.Repeat([]byte("a;b 1\n"), 40000), nil), []string{"--max-body-size", "16KiB"}, "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			r := cliRun(t, tc.input, append([]string{"import", "-", "--destination", "prod", "--data-dir", dir}, tc.flags...)...)
			if tc.want == "" {
				if r.err != nil {
					t.Fatalf("import refused a valid entry: %v", r.err)
				}
				if got := cliEntries(t, dir, store.QueueSource("prod")); len(got) != 1 {
					t.Fatalf("imported %d entries, want 1", len(got))
				}
				return
			}
			if r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
				t.Fatalf("import error %v, want one saying %q", r.err, tc.want)
			}
			if got := cliEntries(t, dir, store.QueueSource("prod")); len(got) != 0 {
				t.Errorf("a refused entry was imported (%d entries)", len(got))
			}
		})
	}
}

// TestReplayNamesExportEntries: replay from an export names each entry by
// its exported id and place, not "entry 0".
func TestReplayNamesExportEntries(t *testing.T) {
	in := ndjsonLine(t, "ingest", "name=shop.cpu", []byte("main;work 10\n"), func(x *exportfile.Record) { x.ID = 42 }) +
		ndjsonLine(t, "ingest", "name=shop.cpu", []byte("main;work 10\n"), func(x *exportfile.Record) { x.ID = 0 })
	r := cliOK(t, in, "replay", "--from", "-", "--dry-run")
	for _, want := range []string{"would send entry 42 (record 1 of stdin)", "would send record 2 of stdin"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "entry 0") {
		t.Errorf("dry run names an entry \"entry 0\":\n%s", r.stdout)
	}
}

// TestFiltersReadGzippedPush: a Push stored gzipped, as it arrived, is
// named and matched by --app like a plain one.
func TestFiltersReadGzippedPush(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(validPush(t))
	_ = zw.Close()
	in := ndjsonLine(t, "push", "", gz.Bytes(), func(x *exportfile.Record) { x.ContentEncoding = "gzip" })
	r := cliOK(t, in, "replay", "--from", "-", "--dry-run", "--app", "shop")
	if !strings.Contains(r.stdout, "push shop") || !strings.Contains(r.stdout, "would send 1 entries") {
		t.Errorf("a gzipped Push of app shop was not matched and named:\n%s", r.stdout)
	}
	r = cliOK(t, in, "replay", "--from", "-", "--dry-run", "--app", "other")
	if !strings.Contains(r.stdout, "would send 0 entries") {
		t.Errorf("a gzipped Push of app shop matched --app other:\n%s", r.stdout)
	}
}
