package main

// End-to-end faults of the disk under the real binary: a corrupt record, a
// data file bbolt cannot open, a byte budget that fills up, and a file
// system that runs out of space.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/grafana/pyroscope/api/gen/proto/go/push/v1/pushv1connect"
	bolt "go.etcd.io/bbolt"

	"github.com/pyrorelay/pyrorelay/store"
)

// storeFile is the bbolt file of a data dir.
func storeFile(dir string) string { return filepath.Join(dir, store.FileName) }

// postStatus posts a folded profile of body for id and returns the status
// and headers of the answer; an answer is required.
func postStatus(t *testing.T, base, id string, body []byte) (int, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ingestURL(base, id), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("POST /ingest %s: %v", id, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header
}

// noErrorLines fails the test for every error-level line in log.
func noErrorLines(t *testing.T, log string) {
	t.Helper()
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, `"level":"ERROR"`) {
			t.Errorf("unexpected error in the relay log: %s", line)
		}
	}
}

var reqIDRE = regexp.MustCompile(`req_id=([A-Za-z0-9_-]+)`)

// TestCorruptRecordQuarantined: a record damaged on disk while the relay
// was stopped (one byte flipped, or the record cut short as a torn write
// would leave it) fails its checksum when the forwarder reads it. It is
// moved, bytes unchanged, to the quarantine bucket, logged and counted,
// and the rest of the queue is delivered.
func TestCorruptRecordQuarantined(t *testing.T) {
	const posts = 10
	cases := []struct {
		name    string
		corrupt func(v []byte) []byte
	}{
		{"flipped byte", func(v []byte) []byte {
			v[len(v)-3] ^= 0x40 // inside the body
			return v
		}},
		{"torn record", func(v []byte) []byte { return v[:len(v)/2] }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			// Destination a is down, so that everything stays queued.
			relay := startRelay(t, dir, "--forward-to", "a="+closedURL(t))
			want := map[string]bool{}
			for i := range posts {
				id := fmt.Sprintf("p%02d", i)
				want[id] = true
				mustPostFolded(t, relay.URL, id)
			}
			relay.stop()

			// Damage one record in the middle of the queue through bbolt,
			// as bad media or a bug would: the file stays valid for bbolt.
			victimKey := make([]byte, 8)
			binary.BigEndian.PutUint64(victimKey, posts/2)
			var damaged []byte
			var victim string
			db, err := bolt.Open(storeFile(dir), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *bolt.Tx) error {
				b := tx.Bucket([]byte("entries"))
				v := b.Get(victimKey)
				if v == nil {
					return fmt.Errorf("no entry %x in bucket entries", victimKey)
				}
				m := reqIDRE.FindSubmatch(v)
				if m == nil {
					return fmt.Errorf("entry %x carries no req_id: %q", victimKey, v)
				}
				victim = string(m[1])
				damaged = tc.corrupt(append([]byte(nil), v...))
				return b.Put(victimKey, damaged)
			})
			if cerr := db.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatal(err)
			}
			delete(want, victim)

			a := newRecorder(t, nil)
			relay = startRelay(t, dir, "--forward-to", "a="+a.URL())
			waitFor(t, deliverDeadline, "every intact profile at a", func() (bool, string) {
				n, some := missing(want, a.ingestIDs())
				return n == 0, fmt.Sprintf("%d of %d missing, e.g. %v", n, len(want), some)
			})
			waitMetric(t, relay.URL, `pyrorelay_queue_entries{destination="a"}`, 0)
			waitMetric(t, relay.URL, `pyrorelay_quarantined_total{destination="a"}`, 1)
			m := scrape(t, relay.URL)
			if n := metric(m, `pyrorelay_dead_letter_entries{destination="a"}`); n != 0 {
				t.Errorf("%g dead letters, want 0: a corrupt record is quarantined, not dead-lettered", n)
			}
			ids := a.ingestIDs()
			if ids[victim] != 0 {
				t.Errorf("the corrupt record %s was forwarded", victim)
			}
			if len(ids) != posts-1 {
				t.Errorf("a got %d distinct profiles, want %d", len(ids), posts-1)
			}
			log := relay.Stderr.String()
			if !hasLogLine(log, "ERROR", "quarantine", `"count":1`) {
				t.Errorf("no error log line about the quarantined record:\n%s", log)
			}
			relay.stop()

			// Quarantine keeps the damaged bytes for a post-mortem.
			db, err = bolt.Open(storeFile(dir), 0o600, &bolt.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			err = db.View(func(tx *bolt.Tx) error {
				if got := tx.Bucket([]byte("quarantine")).Get(victimKey); !bytes.Equal(got, damaged) {
					return fmt.Errorf("quarantine holds %d bytes for the record, want the %d damaged bytes", len(got), len(damaged))
				}
				if tx.Bucket([]byte("entries")).Get(victimKey) != nil {
					return errors.New("the corrupt record is still in bucket entries")
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
}

// TestUnopenableStoreRefusesToStart: a data file bbolt cannot open makes
// the relay exit non-zero before it serves, with a message that says how
// to recover, and leaves the file byte for byte as it was.
func TestUnopenableStoreRefusesToStart(t *testing.T) {
	// A real store file to damage.
	realDir := t.TempDir()
	relay := startRelay(t, realDir)
	mustPostFolded(t, relay.URL, "kept")
	relay.stop()
	good, err := os.ReadFile(storeFile(realDir))
	if err != nil {
		t.Fatal(err)
	}
	if len(good) < 4*4096 {
		t.Fatalf("store file of %d bytes: want at least the 4 pages bbolt starts with", len(good))
	}

	cases := []struct {
		name string
		file func() []byte
	}{
		{"garbage", func() []byte {
			return bytes.Repeat([]byte("this is not a bbolt file\n"), 1000)
		}},
		{"both meta pages zeroed", func() []byte {
			b := slices.Clone(good)
			clear(b[:2*4096]) // pages 0 and 1 hold bbolt's two meta pages
			return b
		}},
		{"truncated inside the first page", func() []byte { return slices.Clone(good[:1000]) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := storeFile(dir)
			content := tc.file()
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			before := sha256.Sum256(content)

			p := launch(t, relayOpts{}, append(baseArgs(dir), "--forward-to", "a="+closedURL(t))...)
			code := p.waitExit(startDeadline)
			stderr := p.Stderr.String()
			if code == 0 || code == -1 {
				t.Errorf("exit code %d, want a non-zero exit of its own", code)
			}
			if strings.Contains(stderr, `"msg":"serving"`) {
				t.Errorf("the relay served on a store it could not open")
			}
			for _, want := range []string{path, "bbolt check", "move it aside", "mv "} {
				if !strings.Contains(stderr, want) {
					t.Errorf("the message does not say %q:\n%s", want, stderr)
				}
			}
			if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine ") {
				t.Errorf("the relay crashed instead of refusing:\n%s", stderr)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("the store file is gone: %v", err)
			}
			if sha256.Sum256(after) != before {
				t.Errorf("the store file changed: %d bytes before, %d after", len(content), len(after))
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("data dir holds %v, want only %s", names, store.FileName)
			}
		})
	}
}

// TestDiskBudgetReject: at --max-disk-usage with --when-full reject, new
// pushes get 429 with Retry-After (the SDKs retry on it), nothing
// acknowledged is lost, the relay forwards what it holds once the
// destination is back, and accepts pushes again once that drained, by
// itself.
func TestDiskBudgetReject(t *testing.T) {
	a := newRecorder(t, nil)
	a.mode.Store(modeDown)
	dir := t.TempDir()
	cfg := writeConfig(t, t.TempDir(), fastDestinations(map[string]string{"a": a.URL()}))
	relay := startRelay(t, dir, "--config", cfg, "--max-disk-usage", "8KiB", "--when-full", "reject")

	acked := map[string]bool{}
	var refused http.Header
	for i := 0; refused == nil; i++ {
		if i == 1000 {
			t.Fatalf("%d profiles of about 150 bytes accepted under a budget of 8 KiB", i)
		}
		id := fmt.Sprintf("f%04d", i)
		switch status, h := postStatus(t, relay.URL, id, foldedBody(id)); status {
		case http.StatusOK:
			acked[id] = true
		case http.StatusTooManyRequests:
			refused = h
		default:
			t.Fatalf("POST %s: status %d, want 200 or 429", id, status)
		}
	}
	if len(acked) < 10 {
		t.Errorf("only %d profiles fit in 8 KiB before the first 429", len(acked))
	}
	if refused.Get("Retry-After") == "" {
		t.Errorf("429 without Retry-After: headers %v", refused)
	}
	// Push is refused with resource_exhausted, the code its SDKs retry.
	push := pushv1connect.NewPusherServiceClient(httpClient, relay.URL)
	_, err := push.Push(context.Background(), connect.NewRequest(pushRequest("push-full", readTestdata(t, "cpu.pb.gz"))))
	if code := connect.CodeOf(err); code != connect.CodeResourceExhausted {
		t.Errorf("Push into a full store: %v (code %v), want resource_exhausted", err, code)
	}
	t.Logf("%d profiles accepted before the budget was reached", len(acked))

	a.mode.Store(modeOK)
	waitFor(t, deliverDeadline, "every acknowledged profile at a", func() (bool, string) {
		n, some := missing(acked, a.ingestIDs())
		return n == 0, fmt.Sprintf("%d of %d missing, e.g. %v", n, len(acked), some)
	})
	waitMetric(t, relay.URL, `pyrorelay_queue_entries{destination="a"}`, 0)
	// Room again: accepted and delivered.
	again := map[string]bool{}
	for i := range 5 {
		id := fmt.Sprintf("again%d", i)
		again[id] = true
		mustPostFolded(t, relay.URL, id)
	}
	waitFor(t, deliverDeadline, "the profiles posted after the drain", func() (bool, string) {
		n, some := missing(again, a.ingestIDs())
		return n == 0, fmt.Sprintf("%d missing, e.g. %v", n, some)
	})
	relay.stop()
}

// TestDiskBudgetDropOldest: at --max-disk-usage with --when-full
// drop-oldest every push is accepted; the oldest entries make room,
// counted in pyrorelay_dropped_total and logged as a warning, never an
// error; what is left is delivered once the destination is back.
func TestDiskBudgetDropOldest(t *testing.T) {
	const posts, concurrency = 180, 2 // about three budgets' worth
	a := newRecorder(t, nil)
	a.mode.Store(modeDown)
	dir := t.TempDir()
	cfg := writeConfig(t, t.TempDir(), fastDestinations(map[string]string{"a": a.URL()}))
	relay := startRelay(t, dir, "--config", cfg, "--max-disk-usage", "8KiB", "--when-full", "drop-oldest",
		"--forward-concurrency", fmt.Sprint(concurrency))

	var order []string
	for i := range posts {
		id := fmt.Sprintf("d%04d", i)
		order = append(order, id)
		mustPostFolded(t, relay.URL, id)
	}
	dropped := metric(scrape(t, relay.URL), `pyrorelay_dropped_total{destination="a"}`)
	if dropped <= 0 || dropped >= posts {
		t.Fatalf("pyrorelay_dropped_total = %g after %d posts over the budget, want between 0 and %d", dropped, posts, posts)
	}

	a.mode.Store(modeOK)
	kept := order[int(dropped):]
	want := map[string]bool{}
	for _, id := range kept {
		want[id] = true
	}
	waitFor(t, deliverDeadline, "the newest profiles at a", func() (bool, string) {
		n, some := missing(want, a.ingestIDs())
		return n == 0, fmt.Sprintf("%d of %d missing, e.g. %v", n, len(want), some)
	})
	waitMetric(t, relay.URL, `pyrorelay_queue_entries{destination="a"}`, 0)
	// A dropped entry a worker was already retrying is still delivered:
	// the forwarder holds at most a batch and one entry per worker, so
	// only that many of the oldest may arrive on top of the kept ones.
	var extra []string
	for id := range a.ingestIDs() {
		if !want[id] {
			extra = append(extra, id)
		}
	}
	if len(extra) > 2*concurrency {
		t.Errorf("%d dropped profiles were delivered all the same (%v), want at most %d", len(extra), extra, 2*concurrency)
	}
	t.Logf("%d posted, %g dropped, %d delivered (%d of them dropped while in flight)", posts, dropped, len(want)+len(extra), len(extra))
	log := relay.Stderr.String()
	if !hasLogLine(log, "WARN", "dropped oldest") {
		t.Errorf("no warning about dropped entries in the log")
	}
	noErrorLines(t, log)
	relay.stop()
}

// bigFolded is a folded profile of about 16 KiB carrying id, so that a few
// fill a small file system.
func bigFolded(id string) []byte {
	var b bytes.Buffer
	for i := range 400 {
		fmt.Fprintf(&b, "main;handler_%s;function_number_%04d;leaf 1\n", id, i)
	}
	return b.Bytes()
}

// TestDiskFullENOSPC runs the relay on a 4 MiB tmpfs and fills it: pushes
// get 507 with Retry-After while the file system is full, the relay keeps
// forwarding what it holds, and accepts pushes again by itself once space
// returns. It needs to mount a tmpfs (root or CAP_SYS_ADMIN) and skips
// otherwise; the mount is undone at the end of the test.
func TestDiskFullENOSPC(t *testing.T) {
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size=4m,mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (needs root or CAP_SYS_ADMIN): %v; "+
			"ENOSPC -> 507 is covered by httpserver's TestIngestRejects and TestPushStoreFailure", err)
	}
	// Registered before the relay starts, so it runs after the relay is
	// killed (cleanups run last-in first-out). MNT_DETACH never leaves the
	// mount behind, even if something still holds a file open.
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	a := newRecorder(t, nil)
	a.mode.Store(modeDown)
	cfg := writeConfig(t, t.TempDir(), fastDestinations(map[string]string{"a": a.URL()}))
	dataDir := filepath.Join(mnt, "data")
	relay := startRelay(t, dataDir, "--config", cfg)

	acked := map[string]bool{}
	for i := range 10 {
		id := fmt.Sprintf("before%02d", i)
		if status, _ := postStatus(t, relay.URL, id, bigFolded(id)); status != http.StatusOK {
			t.Fatalf("POST %s before the disk is full: status %d", id, status)
		}
		acked[id] = true
	}

	// Fill what is left of the file system.
	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill the file system: %v", err)
			}
			break
		}
	}
	_ = f.Close()

	// bbolt reuses the pages it freed, so some pushes may still fit; the
	// first that needs a new page is refused.
	var full http.Header
	fitted := 0
	for i := 0; full == nil; i++ {
		if i == 300 {
			t.Fatalf("%d pushes of 16 KiB accepted on a full 4 MiB file system", i)
		}
		id := fmt.Sprintf("full%03d", i)
		switch status, h := postStatus(t, relay.URL, id, bigFolded(id)); status {
		case http.StatusOK:
			acked[id] = true
			fitted++
		case http.StatusInsufficientStorage:
			full = h
		default:
			t.Fatalf("POST %s on a full disk: status %d, want 200 or 507", id, status)
		}
	}
	if full.Get("Retry-After") == "" {
		t.Errorf("507 without Retry-After: headers %v", full)
	}
	if relay.exited() {
		t.Fatalf("the relay exited on a full disk")
	}

	// Still full: what the relay holds goes out.
	a.mode.Store(modeOK)
	waitFor(t, deliverDeadline, "every acknowledged profile at a while the disk is full", func() (bool, string) {
		n, some := missing(acked, a.ingestIDs())
		return n == 0, fmt.Sprintf("%d of %d missing, e.g. %v", n, len(acked), some)
	})

	// Space returns: pushes are accepted again, with no restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, deliverDeadline, "a push accepted once space returned", func() (bool, string) {
		id := "after"
		status, _ := postStatus(t, relay.URL, id, bigFolded(id))
		if status == http.StatusOK {
			acked[id] = true
		}
		return status == http.StatusOK, fmt.Sprintf("status %d", status)
	})
	waitFor(t, deliverDeadline, "the push after the recovery at a", func() (bool, string) {
		n, some := missing(acked, a.ingestIDs())
		return n == 0, fmt.Sprintf("%d missing, e.g. %v", n, some)
	})
	// Acks that failed while the disk was full were retried: the queue
	// empties without a restart.
	waitMetric(t, relay.URL, `pyrorelay_queue_entries{destination="a"}`, 0)
	log := relay.Stderr.String()
	t.Logf("%d profiles acknowledged (%d of them after the file system filled up, in pages bbolt had freed), "+
		"%d pushes refused, %d acks failed and were retried",
		len(acked), fitted, strings.Count(log, `"msg":"store request"`), strings.Count(log, `"msg":"ack delivered entries"`))
	relay.stop()
}

// slowLoris opens a connection to the relay at base and sends the start of
// a request whose headers never end. The connection is closed at the end
// of the test.
func slowLoris(t *testing.T, base string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := io.WriteString(c, "POST /ingest?name=app.cpu HTTP/1.1\r\nHost: relay\r\nContent-Type: text/plain\r\nX-Slow: "); err != nil {
		t.Fatalf("write partial headers: %v", err)
	}
	return c
}

// TestHostileConnections runs the real binary against clients that never
// finish their headers and a request with oversized headers: the relay
// keeps serving normal clients, refuses the oversized request before it
// reaches the store, and slow clients that take every connection slot
// are dropped after the header timeout, so that they delay a normal
// client without locking it out.
func TestHostileConnections(t *testing.T) {
	profile := readTestdata(t, "cpu.pb.gz")
	// serves checks that the relay answers a normal /ingest and Push.
	serves := func(t *testing.T, base string) {
		t.Helper()
		mustPostFolded(t, base, "normal")
		push := pushv1connect.NewPusherServiceClient(httpClient, base)
		if _, err := push.Push(context.Background(), connect.NewRequest(pushRequest("normal-push", profile))); err != nil {
			t.Fatalf("Push from a normal client: %v", err)
		}
	}

	t.Run("many slow clients under the limit", func(t *testing.T) {
		t.Parallel()
		const slow = 48
		relay := startRelay(t, t.TempDir(), "--forward-to", "a="+closedURL(t), "--max-connections", "64")
		var conns []net.Conn
		for range slow {
			conns = append(conns, slowLoris(t, relay.URL))
		}
		serves(t, relay.URL)
		// Closed first: a graceful shutdown waits up to 5 s for
		// connections that have not sent a whole request yet.
		for _, c := range conns {
			_ = c.Close()
		}
		relay.stop()
	})

	t.Run("oversized headers", func(t *testing.T) {
		t.Parallel()
		relay := startRelay(t, t.TempDir(), "--forward-to", "a="+closedURL(t))
		// Twice the 1 MiB the server reads of headers.
		if status := postBigHeaders(t, relay.URL, 2<<20); status != "431" {
			t.Errorf("request with 2 MiB of headers: status %q, want 431", status)
		}
		if n := metric(scrape(t, relay.URL), `pyrorelay_queue_entries{destination="a"}`); n != 0 {
			t.Errorf("%g entries queued after the oversized request, want 0", n)
		}
		serves(t, relay.URL)
		relay.stop()
	})

	t.Run("slow clients holding every slot are dropped", func(t *testing.T) {
		t.Parallel()
		const slots = 4
		relay := startRelay(t, t.TempDir(), "--forward-to", "a="+closedURL(t), "--max-connections", fmt.Sprint(slots))
		var held []net.Conn
		for range slots {
			held = append(held, slowLoris(t, relay.URL))
		}
		// Served once the header timeout (10 s) has closed the slow
		// connections; before that every slot is taken.
		serves(t, relay.URL)
		for i, c := range held {
			if err := c.SetReadDeadline(time.Now().Add(deliverDeadline)); err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("slow connection %d: %v, want it closed by the relay", i, err)
			}
		}
		relay.stop()
	})
}
