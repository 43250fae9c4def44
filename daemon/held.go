package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/pyrorelay/pyrorelay/store"
)

// heldBatch bounds one step of releaseHeld: entries read, then put at once
// (so that group commit folds their fsyncs), then acknowledged.
const heldBatch = 256

// startReleaseHeld queues, in the background, the entries a store-only
// relay kept in the hold queue for every destination of cfg ("store now,
// forward later"), unless cfg says to keep them or a receiver still feeds
// the hold queue. The returned stop ends it and waits; what is not
// released yet stays held and is released at the next start.
func startReleaseHeld(st *store.Store, cfg Config, log *slog.Logger) (stop func()) {
	dests := cfg.DestinationNames()
	stats, err := st.Stats()
	if err != nil {
		log.Error("read queue stats", "err", err)
		return func() {}
	}
	held := stats[store.HoldQueue]
	switch {
	case len(dests) == 0 || held.Entries == 0:
		return func() {}
	case cfg.KeepHeld:
		log.Warn("entries held in store-only mode stay held (--keep-held): move them with `pyrorelay queue move`",
			"queue", store.HoldQueue, "entries", held.Entries)
		return func() {}
	case len(feeds(cfg.receivers)[store.HoldQueue]) > 0:
		log.Warn("entries held in store-only mode stay held: a receiver without destinations still fills the queue",
			"queue", store.HoldQueue, "entries", held.Entries)
		return func() {}
	}
	log.Info("entries held in store-only mode: queueing them for every destination",
		"queue", store.HoldQueue, "entries", held.Entries, "bytes", held.Bytes, "destinations", strings.Join(dests, ","))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n, err := releaseHeld(ctx, st, dests)
		switch {
		case errors.Is(err, context.Canceled):
			log.Info("stopped queueing held entries: the rest stays held until the next start", "queued", n)
		case err != nil:
			log.Error("held entries not all queued: the rest stays held until the next start", "queued", n, "err", err)
		default:
			log.Info("held entries queued for every destination", "entries", n, "destinations", strings.Join(dests, ","))
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// releaseHeld moves the hold queue's entries to every queue of dests. One
// destination takes the queue as it is; several share each stored entry,
// put once for all of them. An entry is acknowledged in the hold queue
// only after it is durable in every destination queue, so a crash part-way
// can only send it twice, never lose it.
func releaseHeld(ctx context.Context, st *store.Store, dests []string) (int, error) {
	if len(dests) == 1 {
		res, err := st.MoveQueue(ctx, store.HoldQueue, dests[0])
		return res.Entries, err
	}
	n := 0
	for {
		items, _, err := st.ReadBatch(ctx, store.HoldQueue, 0, heldBatch, 8<<20)
		if err != nil || len(items) == 0 {
			return n, err
		}
		errs := make([]error, len(items))
		var wg sync.WaitGroup
		for i, it := range items {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Put gives the entry a new ID; the receive time and
				// everything sent stay as they were.
				e := *it.Entry
				errs[i] = st.Put(ctx, &e, dests)
			}()
		}
		wg.Wait()
		var acks []uint64
		for i, it := range items {
			if errs[i] == nil {
				acks = append(acks, it.Seq)
			}
		}
		if err := st.Ack(context.WithoutCancel(ctx), store.HoldQueue, acks...); err != nil {
			return n, fmt.Errorf("remove queued entries from %s: %w", store.HoldQueue, err)
		}
		n += len(acks)
		if err := errors.Join(errs...); err != nil {
			return n, err
		}
	}
}
