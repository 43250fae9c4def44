package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pyrorelay/pyrorelay/store"
)

// A page of a queue damaged while the relay was stopped (here a leaf's
// element count, as in issue 17): the relay starts, the queue stops with
// an error that names the file and the way out, /-/ready says why, and
// the process keeps running: no panic, no crash loop.
func TestDamagedQueueStopsWithHintE2E(t *testing.T) {
	a := newRecorder(t, nil)
	dir := t.TempDir()
	cliFill(t, dir, "a", cliDataset(t, 60, time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)))
	path := filepath.Join(dir, store.FileName)
	var root uint64
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.View(func(tx *bolt.Tx) error {
		root = uint64(tx.Bucket([]byte("queues")).Bucket([]byte("a")).Root())
		return nil
	})
	_ = db.Close()
	if root == 0 {
		t.Fatal("queue a is inline: no page of its own to damage")
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	off := int64(root)*int64(os.Getpagesize()) + 10 // the page's element count
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()

	cfg := writeConfig(t, t.TempDir(), fastDestinations(map[string]string{"a": a.URL()}))
	relay := startRelay(t, dir, "--config", cfg)
	waitFor(t, 10*time.Second, "an error naming the file and salvage", func() (bool, string) {
		log := relay.Stderr.String()
		return hasLogLine(log, "ERROR", "store file is damaged", path, "pyrorelay salvage"), log
	})
	resp, err := http.Get(relay.URL + "/-/ready")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "damaged") {
		t.Errorf("/-/ready = %d %q, want 503 saying the file is damaged", resp.StatusCode, body)
	}
	if relay.exited() {
		t.Fatalf("relay exited:\n%s", relay.Stderr.String())
	}
	if log := relay.Stderr.String(); strings.Contains(log, "goroutine ") || strings.Contains(log, "panic:") {
		t.Errorf("stack trace in the log:\n%s", log)
	}
	relay.stop()
}
