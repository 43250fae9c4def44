package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grafana/pyroscope/api/gen/proto/go/push/v1/pushv1connect"
)

// TestCrashRecovery kills the relay with SIGKILL in the middle of client
// load, 20 times on the same data dir, then checks that every profile a
// client got a 200 for reaches both destinations after a last restart.
// Half the clients use /ingest, half Push. Duplicates are allowed
// (at-least-once: a send that succeeded just before the kill is sent
// again) and counted; loss is not.
//
// The kill lands at a different moment each round: after a random number
// of acknowledged requests, or after a random delay from the start of the
// load (so also between a commit and its answer, or during forwarding).
// Every few rounds the relay is also killed during its start, while it
// opens the store and its forwarders start reading the backlog.
// Both destinations refuse a fifth of their /ingest requests with 503 at
// random, as a flaky proxy in front of a server does, so that their queues
// hold entries waiting for a retry when the kill comes.
func TestCrashRecovery(t *testing.T) {
	const (
		rounds    = 20 // kills under load
		clients   = 6  // half /ingest, half Push
		perClient = 20 // requests per client per round, at most
	)
	flaky := func(_ []byte, _ int) int {
		if rand.IntN(5) == 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	a, b := newRecorder(t, flaky), newRecorder(t, flaky)
	dir := t.TempDir()
	// Short backoffs: the 503s are retried in milliseconds, not the
	// production 500 ms and more.
	args := []string{"--config", writeConfig(t, t.TempDir(), fastDestinations(map[string]string{"a": a.URL(), "b": b.URL()}))}

	profile := readTestdata(t, "cpu.pb.gz")
	acked := map[string]bool{} // got a 200
	sent := map[string]bool{}  // sent, whatever the answer
	var mu sync.Mutex
	kills, startupKills, midLoad := 0, 0, 0
	for round := range rounds {
		if round%5 == 2 {
			// A kill during start: anywhere from before the store is open
			// to the first forwards of the backlog.
			p := launch(t, relayOpts{}, append(baseArgs(dir), args...)...)
			time.Sleep(time.Duration(rand.IntN(80)) * time.Millisecond)
			p.kill()
			kills++
			startupKills++
		}
		relay := startRelay(t, dir, args...)
		push := pushv1connect.NewPusherServiceClient(httpClient, relay.URL)
		total := int64(clients * perClient)
		var n atomic.Int64 // acknowledged this round
		var killAt int64   // kill after this many acks, or 0
		stopTimer := func() bool { return false }
		if round%2 == 0 {
			killAt = 1 + rand.Int64N(total*2/3)
		} else {
			// Kill after a random delay instead: the moment then has
			// nothing to do with where the clients are.
			delay := time.Duration(rand.IntN(200)) * time.Millisecond
			stopTimer = time.AfterFunc(delay, relay.kill).Stop
		}
		var wg sync.WaitGroup
		for c := range clients {
			wg.Go(func() {
				for i := range perClient {
					id := fmt.Sprintf("r%d-c%d-%d", round, c, i)
					mu.Lock()
					sent[id] = true
					mu.Unlock()
					err := sendMixed(relay.URL, push, profile, c, id)
					if err != nil {
						return // the relay is gone
					}
					mu.Lock()
					acked[id] = true
					mu.Unlock()
					if n.Add(1) == killAt {
						relay.kill()
					}
				}
			})
		}
		wg.Wait()
		stopTimer()
		if n.Load() < total {
			midLoad++ // some client saw the relay go away
		}
		relay.kill() // in case the clients finished first
		kills++
	}
	mu.Lock()
	t.Logf("%d kills (%d during start, %d of %d loaded rounds cut mid-load), %d requests sent, %d acknowledged",
		kills, startupKills, midLoad, rounds, len(sent), len(acked))
	mu.Unlock()

	relay := startRelay(t, dir, args...)
	dests := map[string]*recorder{"a": a, "b": b}
	awaitDelivered(acked, dests)
	lost, duplicates := map[string]bool{}, 0
	for name, d := range dests {
		ids := receivedIDs(d)
		n, some := missing(acked, ids)
		if n > 0 {
			t.Errorf("destination %s: %d of %d acknowledged profiles never arrived, e.g. %v", name, n, len(acked), some)
		}
		for id := range acked {
			if ids[id] == 0 {
				lost[id] = true
			}
		}
		dups, unacked := 0, 0
		for id, c := range ids {
			if !sent[id] {
				t.Errorf("destination %s got %q, which no client sent", name, id)
			}
			if c > 1 {
				dups += c - 1
			}
			if !acked[id] {
				unacked++
			}
		}
		duplicates += dups
		t.Logf("destination %s: %d distinct profiles, %d duplicates, %d delivered without a 200 to the client (in flight at a kill)",
			name, len(ids), dups, unacked)
	}
	t.Logf("kills=%d acknowledged=%d lost=%d duplicates=%d", kills, len(acked), len(lost), duplicates)
	if len(lost) > 0 {
		t.Fatalf("%d acknowledged profiles lost", len(lost))
	}
	for name := range dests {
		waitMetric(t, relay.URL, `pyrorelay_queue_entries{destination="`+name+`"}`, 0)
	}
	relay.stop()
}

// awaitDelivered waits, up to deliverDeadline, for every acked id to reach
// every destination. It does not fail at the deadline: the caller reports
// the loss, if any, with its figures.
func awaitDelivered(acked map[string]bool, dests map[string]*recorder) {
	deadline := time.Now().Add(deliverDeadline)
	for _, d := range dests {
		for {
			n, _ := missing(acked, receivedIDs(d))
			if n == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// receivedIDs counts what d accepted by id, over /ingest and Push.
func receivedIDs(d *recorder) map[string]int {
	ids := d.ingestIDs()
	for id, n := range d.pushIDs() {
		ids[id] += n
	}
	return ids
}
