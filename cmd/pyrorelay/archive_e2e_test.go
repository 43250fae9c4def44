package main

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/pyrorelay/pyrorelay/store"
)

// The reproduction of issue 17 against the real binary: a relay with a
// healthy destination, an archive and a small disk budget. The archive
// shares the budget with the queues and gives way to new profiles, so
// every push is accepted, and the archive never holds more than the budget.
func TestArchiveNeverBlocksIngestE2E(t *testing.T) {
	a := newRecorder(t, nil)
	dir := t.TempDir()
	cfg := writeConfig(t, t.TempDir(), fastDestinations(map[string]string{"a": a.URL()}))
	const budget = 16 << 10
	relay := startRelay(t, dir, "--config", cfg, "--max-disk-usage", "16KiB", "--archive-retention", "1h")
	acked := map[string]bool{}
	for i := range 300 { // about 45 KiB of profiles, three times the budget
		id := fmt.Sprintf("arch%04d", i)
		status, _ := postStatus(t, relay.URL, id, foldedBody(id))
		if status != http.StatusOK {
			t.Fatalf("POST %s: %d after %d accepted, want 200: the archive must give way", id, status, len(acked))
		}
		acked[id] = true
		if i%50 == 49 {
			// Let the queue drain, so the archive fills.
			waitFor(t, deliverDeadline, "delivery", func() (bool, string) {
				n, some := missing(acked, a.ingestIDs())
				return n == 0, fmt.Sprintf("%d missing, e.g. %v", n, some)
			})
		}
	}
	relay.stop()
	st, err := store.OpenReadOnly(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sum, err := st.Summary()
	if err != nil {
		t.Fatal(err)
	}
	if sum.Archive.Entries == 0 || sum.Archive.Bytes > budget {
		t.Errorf("archive holds %d entries, %d bytes; want some, within the %d-byte budget", sum.Archive.Entries, sum.Archive.Bytes, budget)
	}
	if hasLogLine(relay.Stderr.String(), "ERROR") {
		t.Errorf("errors logged:\n%s", relay.Stderr.String())
	}
	t.Logf("archive after %d profiles: %d entries, %d bytes", len(acked), sum.Archive.Entries, sum.Archive.Bytes)
}
