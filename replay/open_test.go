package replay

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/exportfile"
	"github.com/pyrorelay/pyrorelay/store"
)

// dataDir makes a store with n entries queued for prod.
func dataDir(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range n {
		e := &store.Entry{Kind: store.KindIngest, ReceivedAt: time.Now(), Query: "name=app", Body: []byte{byte('a' + i)}}
		if err := st.Put(context.Background(), e, []string{"prod"}); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// collect reads every item of in.
func collect(t *testing.T, in *Input) []Item {
	t.Helper()
	var got []Item
	if err := in.Source(func(it Item) error { got = append(got, it); return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestOpenDataDir(t *testing.T) {
	ctx := context.Background()
	dir := dataDir(t, 3)
	noChecks := func() (exportfile.Checks, error) {
		return exportfile.Checks{}, errors.New("checks asked for a data dir")
	}

	// --from "" reads --data-dir; --queue without --keep acks what is delivered.
	in, err := Open(ctx, From{DataDir: dir, Queue: "prod", Checks: noChecks})
	if err != nil {
		t.Fatal(err)
	}
	items := collect(t, in)
	if in.What != `queue "prod"` || in.Entries != 3 || in.Bytes == 0 || len(items) != 3 || in.Ack == nil {
		t.Fatalf("input %+v, %d items", in, len(items))
	}
	if err := in.Ack(items[0].Pos); err != nil {
		t.Fatal(err)
	}
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}

	// A data dir given as --from; --keep and --dry-run leave the queue alone.
	for _, f := range []From{{Path: dir, Queue: "prod", Keep: true}, {Path: dir, Queue: "prod", DryRun: true}, {Path: dir, Archive: true}} {
		f.Checks = noChecks
		in, err := Open(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if in.Ack != nil {
			t.Errorf("%+v: Ack set", f)
		}
		if f.Queue != "" && in.Entries != 2 {
			t.Errorf("%+v: %d entries, want the 2 left", f, in.Entries)
		}
		_ = in.Close()
	}

	if _, err := Open(ctx, From{DataDir: dir, Queue: "staging", Checks: noChecks}); err == nil || !strings.Contains(err.Error(), `no queue "staging"`) {
		t.Errorf("unknown queue: %v", err)
	}
}

func TestOpenExport(t *testing.T) {
	ctx := context.Background()
	exp := filepath.Join(t.TempDir(), "export")
	w, err := exportfile.NewDirWriter(exp)
	if err != nil {
		t.Fatal(err)
	}
	var ndjson bytes.Buffer
	nw := exportfile.NewNDJSONWriter(&ndjson)
	for i := range 2 {
		r := store.Record{Entry: &store.Entry{ID: uint64(i + 1), Kind: store.KindIngest, ReceivedAt: time.Now(), Query: "name=app", Body: []byte("x")}}
		for _, sink := range []exportfile.Writer{w, nw} {
			if err := sink.Write(exportfile.FromStore(r, store.QueueSource("prod")), r.Entry.Body); err != nil {
				t.Fatal(err)
			}
		}
	}
	_ = w.Close()
	_ = nw.Close()
	asked := 0
	checks := func() (exportfile.Checks, error) { asked++; return exportfile.Checks{MaxBodySize: 1 << 20}, nil }

	for _, c := range []struct {
		path, what string
	}{{exp, exp}, {"-", "stdin"}} {
		in, err := Open(ctx, From{Path: c.path, Stdin: bytes.NewReader(ndjson.Bytes()), Checks: checks})
		if err != nil {
			t.Fatal(err)
		}
		if got := collect(t, in); len(got) != 2 || in.What != c.what || in.Entries != -1 || in.Ack != nil {
			t.Errorf("%s: input %+v, %d items", c.path, in, len(got))
		}
		_ = in.Close()
	}
	if asked != 2 {
		t.Errorf("checks asked %d times, want once per export", asked)
	}

	bad := errors.New("--max-body-size: bad")
	if _, err := Open(ctx, From{Path: exp, Checks: func() (exportfile.Checks, error) { return exportfile.Checks{}, bad }}); !errors.Is(err, bad) {
		t.Errorf("checks' error: %v", err)
	}
	if _, err := Open(ctx, From{Path: exp, Queue: "prod", Checks: checks}); err == nil || !strings.Contains(err.Error(), "is an export, not a data dir") {
		t.Errorf("--queue with an export: %v", err)
	}
	file := filepath.Join(t.TempDir(), "f")
	_ = os.WriteFile(file, nil, 0o600)
	for _, p := range []string{file, filepath.Join(t.TempDir(), "missing")} {
		if _, err := Open(ctx, From{Path: p, Checks: checks}); err == nil || !strings.Contains(err.Error(), "want a data dir, an export directory, or - for ndjson on stdin") {
			t.Errorf("--from %s: %v", p, err)
		}
	}
}
