package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/store"
)

// archiveFill archives n delivered entries in the store in dir.
func archiveFill(t *testing.T, dir string, n int) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(dir, store.Options{ArchiveRetention: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range n {
		e := &store.Entry{Kind: store.KindIngest, ReceivedAt: time.Now(), Query: "name=a", Body: []byte(strings.Repeat("x", 100+i))}
		if err := st.Put(ctx, e, []string{"q"}); err != nil {
			t.Fatal(err)
		}
		items, _, err := st.ReadBatch(ctx, "q", 0, 10, 1<<20)
		if err != nil || len(items) != 1 {
			t.Fatalf("read: %v %d", err, len(items))
		}
		if err := st.Ack(ctx, "q", items[0].Seq); err != nil {
			t.Fatal(err)
		}
	}
}

func TestArchivePurgeCommand(t *testing.T) {
	dir := t.TempDir()
	archiveFill(t, dir, 5)
	r := cliRun(t, "no\n", "archive", "purge", "--data-dir", dir)
	if r.err == nil || !strings.Contains(r.err.Error(), "nothing deleted") {
		t.Fatalf("purge answered no: %v", r.err)
	}
	if !strings.Contains(r.stderr, "holds 5") {
		t.Errorf("question does not say what the archive holds: %q", r.stderr)
	}
	r = cliOK(t, "", "archive", "purge", "--data-dir", dir, "--yes")
	if !strings.Contains(r.stdout, "purged 5 archived profiles") {
		t.Errorf("purge: %q", r.stdout)
	}
	r = cliOK(t, "", "archive", "purge", "--data-dir", dir, "--yes")
	if !strings.Contains(r.stdout, "is empty") {
		t.Errorf("purge of an empty archive: %q", r.stdout)
	}
	if r := cliRun(t, "", "archive", "purge", "--data-dir", t.TempDir(), "--yes"); r.err == nil {
		t.Errorf("purge of a directory without a store succeeded")
	}
}
