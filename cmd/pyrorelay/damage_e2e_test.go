package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
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

// damagePage overwrites the bytes at offset off of page pgid of the store
// file in dir with b.
func damagePage(t *testing.T, dir string, pgid uint64, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, store.FileName), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, int64(pgid)*int64(os.Getpagesize())+off); err != nil {
		t.Fatal(err)
	}
}

// rootOf returns the root page of the bucket at path in the store in dir.
func rootOf(t *testing.T, dir string, path ...[]byte) uint64 {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, store.FileName), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var root uint64
	_ = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(path[0])
		for _, p := range path[1:] {
			b = b.Bucket(p)
		}
		root = uint64(b.Root())
		return nil
	})
	if root == 0 {
		t.Fatalf("bucket %q is inline: no page of its own to damage", path)
	}
	return root
}

// bigEntries are n /ingest entries of 8 KiB, each a record in a bucket of
// its own (see store/entries.go).
func bigEntries(n int) []*store.Entry {
	out := make([]*store.Entry, n)
	for i := range out {
		out[i] = &store.Entry{Kind: store.KindIngest, ReceivedAt: time.Now(), Query: "name=big.cpu&from=1&until=2",
			ContentType: "text/plain", Body: bytes.Repeat([]byte("main;work 1\n"), 700)}
	}
	return out
}

// A page of a queue damaged while the relay was stopped (a leaf's element
// count flipped, as in issue 17) is found before bbolt maps the file: the
// relay refuses to start, says how to recover, leaves the file as it was,
// and prints no stack trace.
func TestDamagedQueueRefusedAtStartE2E(t *testing.T) {
	dir := t.TempDir()
	cliFill(t, dir, "a", cliDataset(t, 60, time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)))
	root := rootOf(t, dir, []byte("queues"), []byte("a"))
	damagePage(t, dir, root, 10, []byte{0xc3}) // the page's element count
	before, _ := os.ReadFile(filepath.Join(dir, store.FileName))
	relay := launch(t, relayOpts{}, baseArgs(dir)...)
	if code := relay.waitExit(30 * time.Second); code == 0 {
		t.Fatalf("relay started on a damaged file:\n%s", relay.Stderr.String())
	}
	log := relay.Stderr.String()
	for _, want := range []string{"store file is damaged", "pyrorelay salvage", "bbolt check", "mv "} {
		if !strings.Contains(log, want) {
			t.Errorf("refusal lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "goroutine ") || strings.Contains(log, "panic:") {
		t.Errorf("stack trace in the log:\n%s", log)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, store.FileName)); !bytes.Equal(before, after) {
		t.Error("the refused file was changed")
	}
}

// recordToBucket moves entry id's record out of the record log into a
// bucket of its own in the bbolt file, where a data dir of the previous
// version (schema 2) keeps its big records. Its locator, the entry's value
// (see store/locator.go), says where the record's frame is.
func recordToBucket(t *testing.T, dir string, id uint64) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, store.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		entries, k := tx.Bucket([]byte("entries")), binary.BigEndian.AppendUint64(nil, id)
		loc := entries.Get(k)
		if len(loc) != 29 {
			t.Fatalf("entry %d's value is not a locator: %d bytes", id, len(loc))
		}
		segs, _ := filepath.Glob(filepath.Join(dir, fmt.Sprintf("pyrorelay-*-%08d.seg", binary.BigEndian.Uint64(loc[1:]))))
		if len(segs) != 1 {
			t.Fatalf("segment files of entry %d: %v", id, segs)
		}
		f, err := os.Open(segs[0])
		if err != nil {
			return err
		}
		defer f.Close()
		rec := make([]byte, binary.BigEndian.Uint32(loc[17:]))
		if _, err := f.ReadAt(rec, int64(binary.BigEndian.Uint64(loc[9:]))+20); err != nil {
			return err
		}
		if err := entries.Delete(k); err != nil {
			return err
		}
		b, err := entries.CreateBucket(k)
		if err != nil {
			return err
		}
		return b.Put([]byte("r"), rec)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A record's own page damaged (the check at start does not read those):
// the relay starts, the queue stops on it with an error that names the
// file and the way out, /-/ready says why, and the process keeps running:
// no panic, no crash loop. Only a data dir of the previous version keeps
// records in pages of their own: the test makes one such record.
func TestDamagedRecordStopsQueueE2E(t *testing.T) {
	a := newRecorder(t, nil)
	dir := t.TempDir()
	cliFill(t, dir, "a", bigEntries(5))
	recordToBucket(t, dir, 1)
	root := rootOf(t, dir, []byte("entries"), binary.BigEndian.AppendUint64(nil, 1))
	damagePage(t, dir, root, 8, []byte{0, 0}) // the page's flags: neither branch nor leaf
	cfg := writeConfig(t, t.TempDir(), fastDestinations(map[string]string{"a": a.URL()}))
	relay := startRelay(t, dir, "--config", cfg)
	path := filepath.Join(dir, store.FileName)
	waitFor(t, deliverDeadline, "an error naming the file and salvage", func() (bool, string) {
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
