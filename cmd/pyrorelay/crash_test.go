package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"
	"github.com/grafana/pyroscope/api/gen/proto/go/push/v1/pushv1connect"
)

// TestCrashRecovery kills the relay with SIGKILL in the middle of client
// load, several times on the same data dir, then checks that every profile
// a client got a 200 for reaches both destinations after a last restart.
// Half the clients use /ingest, half Push. Duplicates are allowed
// (at-least-once: a send that succeeded just before the kill is sent
// again); loss is not.
func TestCrashRecovery(t *testing.T) {
	const (
		rounds    = 5
		clients   = 8
		perClient = 30
	)
	a, b := newRecorder(t, nil), newRecorder(t, nil)
	dir := t.TempDir()
	args := []string{"--forward-to", "a=" + a.URL(), "--forward-to", "b=" + b.URL()}

	profile := readTestdata(t, "cpu.pb.gz")
	acked := map[string]bool{} // got a 200
	sent := map[string]bool{}  // sent, whatever the answer
	var mu sync.Mutex
	for round := range rounds {
		relay := startRelay(t, dir, args...)
		push := pushv1connect.NewPusherServiceClient(httpClient, relay.URL)
		// Kill after a random number of acknowledged requests, so the kill
		// lands mid-load at a different point each round.
		killAt := int64(5 + rand.IntN(clients*perClient/2))
		var n atomic.Int64
		roundAcked := 0
		var wg sync.WaitGroup
		for c := range clients {
			wg.Go(func() {
				for i := range perClient {
					id := fmt.Sprintf("r%d-c%d-%d", round, c, i)
					mu.Lock()
					sent[id] = true
					mu.Unlock()
					var err error
					if c%2 == 0 {
						var status int
						status, err = postFolded(context.Background(), relay.URL, id)
						if err == nil && status != http.StatusOK {
							err = fmt.Errorf("status %d", status)
						}
					} else {
						_, err = push.Push(context.Background(), connect.NewRequest(pushRequest(id, profile)))
					}
					if err != nil {
						return // the relay is gone
					}
					mu.Lock()
					acked[id] = true
					roundAcked++
					mu.Unlock()
					if n.Add(1) == killAt {
						relay.kill()
					}
				}
			})
		}
		wg.Wait()
		relay.kill() // in case the clients finished first
		t.Logf("round %d: killed after %d acks (target %d), %d acked this round", round, n.Load(), killAt, roundAcked)
	}

	relay := startRelay(t, dir, args...)
	for name, d := range map[string]*recorder{"a": a, "b": b} {
		waitFor(t, deliverDeadline, "every acknowledged profile at "+name, func() (bool, string) {
			n, some := missing(acked, receivedIDs(d))
			return n == 0, fmt.Sprintf("%d of %d acknowledged profiles missing, e.g. %v", n, len(acked), some)
		})
	}
	for _, q := range []string{"a", "b"} {
		waitMetric(t, relay.URL, `pyrorelay_queue_entries{destination="`+q+`"}`, 0)
	}
	for name, d := range map[string]*recorder{"a": a, "b": b} {
		ids := receivedIDs(d)
		dups, unacked := 0, 0
		for id, n := range ids {
			if !sent[id] {
				t.Errorf("destination %s got %q, which no client sent", name, id)
			}
			if n > 1 {
				dups += n - 1
			}
			if !acked[id] {
				unacked++
			}
		}
		t.Logf("destination %s: %d distinct profiles, %d duplicates, %d delivered without a 200 to the client (in flight at a kill)",
			name, len(ids), dups, unacked)
	}
	t.Logf("%d profiles acknowledged over %d rounds, %d sent", len(acked), rounds, len(sent))
	relay.stop()
}

// receivedIDs counts what d accepted by id, over /ingest and Push.
func receivedIDs(d *recorder) map[string]int {
	ids := d.ingestIDs()
	for id, n := range d.pushIDs() {
		ids[id] += n
	}
	return ids
}
