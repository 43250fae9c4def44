package datadir

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/daemon"
	"github.com/pyrorelay/pyrorelay/exportfile"
	"github.com/pyrorelay/pyrorelay/relay"
	"github.com/pyrorelay/pyrorelay/selection"
	"github.com/pyrorelay/pyrorelay/store"
)

func TestImportExport(t *testing.T) {
	ctx := context.Background()
	var ndjson bytes.Buffer
	w := exportfile.NewNDJSONWriter(&ndjson)
	for i, app := range []string{"a", "b", "a"} {
		e := &store.Entry{ID: uint64(i + 1), Kind: store.KindIngest, ReceivedAt: time.Now(), Query: "name=" + app, Body: []byte("x")}
		if err := w.Write(exportfile.FromStore(store.Record{Entry: e}, store.QueueSource("old")), e.Body); err != nil {
			t.Fatal(err)
		}
	}
	_ = w.Close()
	onlyA, err := selection.Parse("", "", "a", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	in := ExportInput{Path: "-", Stdin: bytes.NewReader(ndjson.Bytes()), Checks: exportfile.Checks{MaxBodySize: 1 << 20}, Selection: onlyA}

	cfg := daemon.DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "new") // created
	res, err := ImportExport(ctx, cfg, false, "prod", in)
	if err != nil || res.Entries != 2 || res.Skipped != 1 || res.Bytes == 0 {
		t.Fatalf("ImportExport = %+v, %v", res, err)
	}

	// With a config, a queue that is neither a destination nor there is refused.
	cfg.Destinations = []relay.Destination{{Name: "prod", URL: "http://p:4040"}}
	in.Stdin = bytes.NewReader(ndjson.Bytes())
	if _, err := ImportExport(ctx, cfg, true, "staging", in); err == nil || !strings.Contains(err.Error(), `--destination "staging" is not a destination of the config`) {
		t.Errorf("unknown queue: %v", err)
	}
	in.Path = filepath.Join(t.TempDir(), "missing")
	if _, err := ImportExport(ctx, cfg, true, "prod", in); err == nil || err.Error() != "import "+in.Path+": not a directory: give the --out directory of `pyrorelay export`, or - for ndjson on stdin" {
		t.Errorf("no export: %v", err)
	}
	in.Path, in.Stdin = "-", strings.NewReader("{garbage\n")
	if _, err := ImportExport(ctx, cfg, true, "prod", in); err == nil || !strings.HasPrefix(err.Error(), `import into queue "prod" after 0 entries (those are stored;`) {
		t.Errorf("a bad export: %v", err)
	}
}
