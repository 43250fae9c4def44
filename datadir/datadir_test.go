package datadir

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/daemon"
	"github.com/pyrorelay/pyrorelay/exportfile"
	"github.com/pyrorelay/pyrorelay/relay"
	"github.com/pyrorelay/pyrorelay/store"
)

func entry(i int) *store.Entry {
	return &store.Entry{Kind: store.KindIngest, ReceivedAt: time.Now(), Query: fmt.Sprintf("name=app{i=%d}", i), Body: []byte("main 1\n")}
}

// fill makes a store in a new dir with n entries in queue prod.
func fill(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, _, err = Import(context.Background(), st, "prod", func(add func(*store.Entry) error) error {
		for i := range n {
			if err := add(entry(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestOpenSaysWhatToDo(t *testing.T) {
	if _, err := Open(t.TempDir(), Write, StopRelayFirst); !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "check --data-dir") {
		t.Errorf("Write on an empty dir: %v", err)
	}
	dir := fill(t, 1)
	running, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer running.Close()
	for _, mode := range []Mode{Read, Write, Create} {
		_, err := Open(dir, mode, AskWithURL)
		if !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), "in use by a running relay") || !strings.Contains(err.Error(), "add --url") {
			t.Errorf("mode %d on a locked dir: %v", mode, err)
		}
	}
}

func TestImportBatchesAndSource(t *testing.T) {
	const n = importBatchEntries + 10 // more than one transaction
	dir := fill(t, n)
	st, err := Open(dir, Read, AskWithURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	src, err := Source(st, dir, "prod", "", false)
	if err != nil {
		t.Fatal(err)
	}
	cnt, err := st.Count(context.Background(), src, store.Filter{})
	if err != nil || cnt.Entries != n {
		t.Errorf("queue prod holds %d entries (%v), want %d", cnt.Entries, err, n)
	}
	for _, tt := range []struct {
		queue, dead string
		archive     bool
		want        string
	}{
		{"", "", false, "choose one of --destination NAME, --dead-letter NAME or --archive; " + dir + " holds queue prod (266 entries, 0 dead letters), archive (0 entries)"},
		{"prod", "", true, "choose one of"},
		{"staging", "", false, `no queue "staging" in ` + dir},
		{"", "staging", false, `no queue "staging" in ` + dir},
	} {
		if _, err := Source(st, dir, tt.queue, tt.dead, tt.archive); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Source(%q, %q, %v) = %v, want %q", tt.queue, tt.dead, tt.archive, err, tt.want)
		}
	}
	if src, err := Source(st, dir, "", "", true); err != nil || src.Kind != store.SourceArchive {
		t.Errorf("the archive: %v, %v", src, err)
	}
}

func TestImportStopsAtTheFeedError(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	boom := errors.New("bad record")
	n, bytes, err := Import(context.Background(), st, "prod", func(add func(*store.Entry) error) error {
		for i := range importBatchEntries + 1 {
			if err := add(entry(i)); err != nil {
				return err
			}
		}
		return boom
	})
	if !errors.Is(err, boom) || n != importBatchEntries || bytes <= 0 {
		t.Errorf("Import = %d, %d, %v; want the first batch stored and the error", n, bytes, err)
	}
}

func TestCheckImportQueue(t *testing.T) {
	cfg := daemon.DefaultConfig()
	cfg.Destinations = []relay.Destination{{Name: "prod"}}
	empty, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	if err := CheckImportQueue(empty, daemon.Config{}, false, "anything"); err != nil {
		t.Errorf("a new node without a config: %v", err)
	}
	if err := CheckImportQueue(empty, cfg, true, "prod"); err != nil {
		t.Errorf("a configured destination: %v", err)
	}
	if err := CheckImportQueue(empty, cfg, true, "prdo"); err == nil || !strings.Contains(err.Error(), `--destination "prdo" is not a destination of the config (prod) nor a queue`) {
		t.Errorf("a typo: %v", err)
	}
	if !DestinationConfigured(cfg, "prod") || DestinationConfigured(cfg, "staging") || !DestinationConfigured(daemon.Config{}, store.HoldQueue) {
		t.Error("DestinationConfigured")
	}
}

func TestStatusMarksOrphansWithAConfig(t *testing.T) {
	dir := fill(t, 2)
	st, err := Open(dir, Write, StopRelayFirst)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Import(context.Background(), "old", []*store.Entry{entry(9)}); err != nil {
		t.Fatal(err)
	}
	cfg := daemon.DefaultConfig()
	cfg.Destinations = []relay.Destination{{Name: "prod", URL: "http://127.0.0.1:1"}}
	for _, configGiven := range []bool{false, true} {
		status, err := Status(st, cfg, configGiven, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, q := range status.Queues {
			switch {
			case q.Configured == nil:
				got[q.Name] = fmt.Sprintf("unknown, %d entries", q.Entries)
			case q.Orphan():
				got[q.Name] = fmt.Sprintf("orphan, %d entries", q.Entries)
			default:
				got[q.Name] = fmt.Sprintf("configured %v, %d entries", *q.Configured, q.Entries)
			}
		}
		want := map[string]string{"prod": "unknown, 2 entries", "old": "unknown, 1 entries"}
		if configGiven {
			want = map[string]string{"prod": "configured true, 2 entries", "old": "orphan, 1 entries"}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("config given %v: %v, want %v", configGiven, got, want)
		}
	}
}

func TestListenURL(t *testing.T) {
	for in, want := range map[string]string{
		":4040":          "http://127.0.0.1:4040",
		"0.0.0.0:9000":   "http://127.0.0.1:9000",
		"[::]:4040":      "http://127.0.0.1:4040",
		"10.0.0.7:4040":  "http://10.0.0.7:4040",
		"not an address": "http://127.0.0.1:4040",
	} {
		if got := ListenURL(in); got != want {
			t.Errorf("ListenURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExport(t *testing.T) {
	st, err := store.OpenReadOnly(fill(t, 3), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var out, status bytes.Buffer
	res, err := Export(context.Background(), st, store.QueueSource("prod"), store.Filter{}, exportfile.NewNDJSONWriter(&out), &status)
	if err != nil || res.Entries != 3 {
		t.Fatalf("Export = %+v, %v", res, err)
	}
	// The ndjson writer is flushed (closed) and reads back.
	n := 0
	err = exportfile.ReadNDJSON(context.Background(), &out, exportfile.Checks{MaxBodySize: 1 << 20}, func(x *exportfile.Record, _ *store.Entry) error {
		n++
		if x.From != "queue:prod" {
			t.Errorf("from %q", x.From)
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Errorf("read back %d: %v", n, err)
	}
}
