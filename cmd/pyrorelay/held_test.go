package main

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/pyrorelay/pyrorelay/store"
)

// TestHeldEntriesReleasedAtStart: what a store-only relay kept goes to
// every destination once the relay starts with some (one destination and
// several take different paths), and the log says so; --keep-held keeps
// the old behaviour.
func TestHeldEntriesReleasedAtStart(t *testing.T) {
	for _, tc := range []struct {
		name     string
		dests    int
		keepHeld bool
	}{
		{"one destination", 1, false},
		{"two destinations", 2, false},
		{"keep held", 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			data := filepath.Join(dir, "data")
			p := startRelay(t, data)
			ids := []string{"held-1", "held-2", "held-3"}
			for _, id := range ids {
				mustPostFolded(t, p.URL, id)
			}
			p.stop()

			var recs []*recorder
			urls := map[string]string{}
			for i := range tc.dests {
				r := newRecorder(t, nil)
				recs = append(recs, r)
				urls[fmt.Sprintf("d%d", i)] = r.URL()
			}
			args := []string{"--config", writeConfig(t, dir, fastDestinations(urls))}
			if tc.keepHeld {
				args = append(args, "--keep-held")
			}
			p = startRelay(t, data, args...)
			if tc.keepHeld {
				waitFor(t, deliverDeadline, "the keep-held warning", func() (bool, string) {
					return hasLogLine(p.Stderr.String(), "WARN", "stay held (--keep-held)", `"entries":3`), "not yet"
				})
				p.stop()
				if n := len(cliEntries(t, data, store.QueueSource(store.HoldQueue))); n != 3 {
					t.Errorf("%d entries held after --keep-held, want 3", n)
				}
				for _, r := range recs {
					if n := r.received(); n != 0 {
						t.Errorf("%s received %d requests with --keep-held", r.URL(), n)
					}
				}
				return
			}
			waitFor(t, deliverDeadline, "the release line", func() (bool, string) {
				return hasLogLine(p.Stderr.String(), "INFO", "entries held in store-only mode: queueing them for every destination", `"entries":3`), "not yet"
			})
			for _, r := range recs {
				waitFor(t, deliverDeadline, "the held entries at "+r.URL(), func() (bool, string) {
					got := r.ingestIDs()
					n, some := missing(map[string]bool{"held-1": true, "held-2": true, "held-3": true}, got)
					return n == 0, fmt.Sprintf("%d missing, e.g. %v", n, some)
				})
			}
			waitFor(t, deliverDeadline, "the release finished", func() (bool, string) {
				return hasLogLine(p.Stderr.String(), "INFO", "held entries queued for every destination", `"entries":3`), "not yet"
			})
			p.stop()
			if n := len(cliEntries(t, data, store.QueueSource(store.HoldQueue))); n != 0 {
				t.Errorf("%d entries still held", n)
			}
		})
	}
}
