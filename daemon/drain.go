package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pyrorelay/pyrorelay/relay"
	"github.com/pyrorelay/pyrorelay/store"
)

// drainPoll is how often Drain looks whether the queues are empty.
const drainPoll = 100 * time.Millisecond

// DrainResult is what Drain did for one destination.
type DrainResult struct {
	Destination string
	// Before and After are the destination's queue at the start and at
	// the end.
	Before, After store.QueueStats
	// LastFailure is the forwarder's last failed attempt; nil if none
	// failed.
	LastFailure *relay.Failure
}

// DeadLettered is how many entries went to the destination's dead-letter
// list during the drain.
func (r DrainResult) DeadLettered() int64 {
	return max(r.After.DeadEntries-r.Before.DeadEntries, 0)
}

// Delivered is how many entries left the destination's queue delivered:
// those that left it, less those that went to the dead-letter list.
func (r DrainResult) Delivered() int64 {
	return max(r.Before.Entries-r.After.Entries-r.DeadLettered(), 0)
}

// Drain runs the forwarders of dests, without receivers, over st until
// every one of their queues is empty, ctx ends or timeout passes; then the
// forwarders finish their attempts in flight and ack them, and the rest
// stays queued. It returns a result per destination, in the order of
// dests, and why it stopped before the queues were empty: "" when they
// are, "interrupted", "timed out after ..." or "reading the queues failed:
// ...". err is for what kept it from starting.
func Drain(ctx context.Context, st *store.Store, dests []relay.Destination, timeout time.Duration, log *slog.Logger) (results []DrainResult, why string, err error) {
	before, err := st.Stats()
	if err != nil {
		return nil, "", fmt.Errorf("read queues: %w", err)
	}
	metrics := relay.NewMetrics(nil)
	var forwarders []*relay.Forwarder
	for _, d := range dests {
		f, err := relay.NewForwarder(d, st, metrics, log)
		if err != nil {
			return nil, "", err
		}
		forwarders = append(forwarders, f)
	}
	fwdCtx, stopForwarders := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, f := range forwarders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.Run(fwdCtx)
		}()
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	var after map[string]store.QueueStats
	for why == "" {
		if after, err = st.Stats(); err != nil {
			why = "reading the queues failed: " + err.Error()
			break
		}
		if drained(after, dests) {
			break
		}
		select {
		case <-ctx.Done():
			why = "interrupted"
		case <-deadline.C:
			why = "timed out after " + timeout.String()
		case <-tick.C:
		}
	}
	// Forwarders finish what is in flight and ack it; the rest stays.
	stopForwarders()
	wg.Wait()
	if final, err := st.Stats(); err == nil {
		after = final
	}
	for i, d := range dests {
		results = append(results, DrainResult{Destination: d.Name, Before: before[d.Name], After: after[d.Name],
			LastFailure: forwarders[i].LastFailure()})
	}
	return results, why, nil
}

// drained reports whether every destination's queue is empty.
func drained(stats map[string]store.QueueStats, dests []relay.Destination) bool {
	for _, d := range dests {
		if stats[d.Name].Entries > 0 {
			return false
		}
	}
	return true
}
