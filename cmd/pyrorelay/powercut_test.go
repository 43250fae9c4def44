package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/internal/powercut"
)

// TestPowerCut runs the relay with its data dir on a file system that
// keeps written-but-unsynced data aside and throws it away on a simulated
// power cut (internal/powercut), and cuts the power under client load,
// round after round on the same data dir. A SIGKILL cannot show a missing
// fsync (the page cache survives it); a power cut does. After every cut
// the file system is unmounted (the kernel's cache of it goes) and mounted
// again, and the relay must start on what was synced. At the end every
// profile a client got a 200 for must reach both destinations.
//
// The cut lands three ways: on the n-th data write, truncate or fsync the
// relay makes (so between the page writes of a commit and its fsyncs: a
// cut mid-commit), after a random delay from the start of the load, and on a
// random write or fsync of `pyrorelay compact` (a cut mid-compact).
// Destination b refuses a third of its requests, so that its queue holds
// a backlog when the power goes. Half the clients send profiles of a few
// KiB, which the store keeps in its record log, the others small ones,
// which stay in the bbolt file.
func TestPowerCut(t *testing.T) {
	const (
		rounds    = 20
		clients   = 4
		perClient = 25 // requests per client per round, at most
	)
	backing, mnt := t.TempDir(), t.TempDir()
	// Its cleanup runs before t.TempDir's removal of mnt; the relays are
	// killed first (their cleanups are registered later, so they run earlier).
	mounts := powercut.NewMounts(t, backing, mnt)

	a := newRecorder(t, nil)
	b := newRecorder(t, func(_ []byte, n int) int {
		if n%3 == 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	args := []string{"--config", writeConfig(t, t.TempDir(), fastDestinations(map[string]string{"a": a.URL(), "b": b.URL()}))}
	dataDir := filepath.Join(mnt, "data")
	segmentsSeen := 0 // rounds after which the data dir held segment files

	var mu sync.Mutex
	acked := map[string]bool{} // got a 200
	sent := map[string]bool{}  // sent, whatever the answer
	cutAt := map[string]int{}  // what each cut interrupted
	var discarded int64        // unsynced bytes thrown away
	compactCuts := 0
	for round := range rounds {
		fsys := mounts.Mount()
		relay := startRelay(t, dataDir, args...)
		stopTimer := func() bool { return false }
		if round%2 == 0 {
			// Armed once the relay serves: a cut during its start would
			// only make startRelay fail.
			fsys.CutAfter(1 + rand.IntN(400))
		} else {
			delay := time.Duration(rand.IntN(150)) * time.Millisecond
			stopTimer = time.AfterFunc(delay, func() { fsys.Cut() }).Stop
		}
		var wg sync.WaitGroup
		var n atomic.Int64
		for c := range clients {
			wg.Go(func() {
				for i := range perClient {
					id := fmt.Sprintf("p%d-c%d-%d", round, c, i)
					mu.Lock()
					sent[id] = true
					mu.Unlock()
					body := foldedBody(id)
					if c%2 == 1 {
						// Big enough for the record log: half the
						// profiles go through the segment files.
						body = bigFoldedBody(id)
					}
					status, err := post(context.Background(), ingestURL(relay.URL, id), "", body)
					if err != nil || status != http.StatusOK {
						return // the power is gone, or going
					}
					mu.Lock()
					acked[id] = true
					mu.Unlock()
					n.Add(1)
				}
			})
		}
		loadDone := make(chan struct{})
		go func() { wg.Wait(); close(loadDone) }()
	wait:
		for {
			if _, cut := fsys.Report(); cut {
				break
			}
			select {
			case <-loadDone:
				break wait
			case <-time.After(5 * time.Millisecond):
			}
		}
		stopTimer()
		// If the load ended first, the power goes now, with the
		// forwarders still draining.
		r := fsys.Cut()
		relay.kill()
		<-loadDone
		mounts.Unmount()
		if segs, _ := filepath.Glob(filepath.Join(backing, "data", "pyrorelay-*.seg")); len(segs) > 0 {
			segmentsSeen++
		}
		mu.Lock()
		cutAt[r.At]++
		mu.Unlock()
		discarded += r.Bytes
		t.Logf("round %d: cut at %q after %d writes and %d fsyncs, %d unsynced bytes thrown away; %d acknowledged",
			round, r.At, r.Writes, r.Syncs, r.Bytes, n.Load())

		if round%4 == 3 {
			// Every other compact runs to its end, and the power goes
			// right after it returned: its copy must be on disk by then.
			at := cutCompact(t, mounts, dataDir, round%8 == 3)
			cutAt["compact "+at]++
			compactCuts++
		}
	}

	if segmentsSeen == 0 {
		t.Errorf("no round left a segment file: the big profiles never reached the record log")
	}
	mounts.Mount()
	relay := startRelay(t, dataDir, args...)
	dests := map[string]*recorder{"a": a, "b": b}
	awaitDelivered(acked, dests)
	lost := map[string]bool{}
	for name, d := range dests {
		ids := receivedIDs(d)
		if n, some := missing(acked, ids); n > 0 {
			t.Errorf("destination %s: %d of %d acknowledged profiles never arrived, e.g. %v", name, n, len(acked), some)
		}
		for id := range acked {
			if ids[id] == 0 {
				lost[id] = true
			}
		}
		for id := range ids {
			if !sent[id] {
				t.Errorf("destination %s got %q, which no client sent", name, id)
			}
		}
	}
	t.Logf("power cuts=%d %v, unsynced bytes thrown away=%d, sent=%d, acknowledged=%d, lost=%d",
		rounds+compactCuts, cutAt, discarded, len(sent), len(acked), len(lost))
	if len(lost) > 0 {
		t.Fatalf("%d acknowledged profiles lost to power cuts", len(lost))
	}
	for name := range dests {
		waitMetric(t, relay.URL, `pyrorelay_queue_entries{destination="`+name+`"}`, 0)
	}
	relay.stop()
}

// cutCompact runs `pyrorelay compact` on dataDir, with a cut armed on one
// of its first writes, truncates or fsyncs if arm is set, and says where
// the cut landed ("none" when compact finished first; the power then goes
// as it returns).
func cutCompact(t *testing.T, mounts *powercut.Mounts, dataDir string, arm bool) string {
	t.Helper()
	fsys := mounts.Mount()
	defer mounts.Unmount()
	if arm {
		fsys.CutAfter(1 + rand.IntN(8))
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, relayBin, "compact", "--data-dir", dataDir)
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	r, cut := fsys.Report()
	switch {
	case ctx.Err() != nil:
		t.Fatalf("compact still running after %s: %s", stopDeadline, out)
	case !cut && err != nil:
		t.Fatalf("compact without a cut: %v\n%s", err, out)
	case !cut:
		r := fsys.Cut()
		t.Logf("compact: finished after %d writes and %d fsyncs; cut as it returned, %d unsynced bytes thrown away", r.Writes, r.Syncs, r.Bytes)
		return "none"
	}
	t.Logf("compact: cut at %q after %d writes and %d fsyncs: %v", r.At, r.Writes, r.Syncs, firstLine(out))
	return r.At
}

func firstLine(b []byte) string {
	for i, c := range b {
		if c == '\n' {
			return string(b[:i])
		}
	}
	return string(b)
}

// bigFoldedBody is foldedBody(id) with enough stacks to make a record of
// several KiB, which the store keeps in its record log.
func bigFoldedBody(id string) []byte {
	b := foldedBody(id)
	for i := range 200 {
		b = fmt.Appendf(b, "main;work;frame_%d;leaf 1\n", i)
	}
	return b
}
