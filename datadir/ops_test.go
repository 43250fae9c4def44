package datadir

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/daemon"
	"github.com/pyrorelay/pyrorelay/store"
)

func TestOpenDeadLetters(t *testing.T) {
	dir := fill(t, 1)
	st, err := OpenDeadLetters(dir, Read, "prod")
	if err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	_, err = OpenDeadLetters(dir, Write, "staging")
	if want := `no destination "staging" in ` + dir + `; it holds queue prod (1 entries, 0 dead letters), archive (0 entries)`; err == nil || err.Error() != want {
		t.Errorf("unknown destination: %v, want %q", err, want)
	}
	running, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer running.Close()
	for mode, next := range map[Mode]string{Read: AskWithURL, Write: StopRelayFirst} {
		if _, err := OpenDeadLetters(dir, mode, "prod"); !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), next) {
			t.Errorf("mode %d, locked: %v", mode, err)
		}
	}
}

func TestMoveQueue(t *testing.T) {
	dir := fill(t, 2)
	res, err := MoveQueue(context.Background(), dir, "prod", "new")
	if err != nil || res.Entries != 2 {
		t.Fatalf("MoveQueue = %+v, %v", res, err)
	}
	_, err = MoveQueue(context.Background(), dir, "prod", "new")
	if want := `no queue "prod" in ` + dir + ` (queues: new): check --from`; err == nil || err.Error() != want {
		t.Errorf("again: %v, want %q", err, want)
	}
}

func TestCompactAndReadStatusWhileLocked(t *testing.T) {
	dir := fill(t, 1)
	if _, err := Compact(dir); err != nil {
		t.Fatal(err)
	}
	cfg := daemon.DefaultConfig()
	cfg.DataDir, cfg.Listen = dir, ":9000"
	st, err := ReadStatus(cfg, false, time.Now())
	if err != nil || len(st.Queues) != 1 || st.Queues[0].Entries != 1 {
		t.Fatalf("ReadStatus = %+v, %v", st, err)
	}
	running, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer running.Close()
	if _, err := Compact(dir); !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), "in use by a running relay: "+StopRelayFirst) {
		t.Errorf("Compact, locked: %v", err)
	}
	if _, err := ReadStatus(cfg, false, time.Now()); !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), "ask it instead with `pyrorelay queue status --url http://127.0.0.1:9000`") {
		t.Errorf("ReadStatus, locked: %v", err)
	}
}

func TestOpenSource(t *testing.T) {
	dir := fill(t, 1)
	st, src, err := OpenSource(dir, Read, AskWithURL, "", "prod", false)
	if err != nil || src != store.DeadLetterSource("prod") {
		t.Fatalf("OpenSource = %v, %v", src, err)
	}
	_ = st.Close()
	if _, _, err := OpenSource(dir, Read, AskWithURL, "prod", "", true); err == nil || !strings.Contains(err.Error(), "choose one of --destination NAME, --dead-letter NAME or --archive") {
		t.Errorf("two sources: %v", err)
	}
	// The store is closed again after a refused source: it opens for writing.
	st, _, err = OpenSource(dir, Write, StopRelayFirst, "prod", "", false)
	if err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
}
