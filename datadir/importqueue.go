package datadir

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/pyrorelay/pyrorelay/daemon"
	"github.com/pyrorelay/pyrorelay/store"
)

// Import bounds one import transaction.
const (
	importBatchEntries = 256
	importBatchBytes   = 32 << 20
)

// Import appends the entries each feeds to queue of st, oldest first and
// byte for byte, committing every importBatchEntries entries or
// importBatchBytes of bodies. It returns how many entries (and bytes) are
// stored, also when it fails part way: those stay stored.
func Import(ctx context.Context, st *store.Store, queue string, each func(fn func(*store.Entry) error) error) (n int, bytes int64, err error) {
	var batch []*store.Entry
	batchBytes := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := st.Import(ctx, queue, batch); err != nil {
			return err
		}
		for _, e := range batch {
			n++
			bytes += int64(e.Size())
		}
		batch, batchBytes = batch[:0], 0
		return nil
	}
	err = each(func(e *store.Entry) error {
		batch = append(batch, e)
		batchBytes += len(e.Body)
		if len(batch) >= importBatchEntries || batchBytes >= importBatchBytes {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	return n, bytes, err
}

// CheckImportQueue refuses to import into a queue nothing would send: the
// destination must be in the config, or already a queue of the store. A
// data dir with no queue yet (a new node) takes any name when no config is
// given (configGiven false), as moving a backlog to a new node does.
func CheckImportQueue(st *store.Store, cfg daemon.Config, configGiven bool, queue string) error {
	stats, err := st.Stats()
	if err != nil {
		return fmt.Errorf("read queues: %w", err)
	}
	if _, ok := stats[queue]; ok {
		return nil
	}
	configured := cfg.DestinationNames()
	if slices.Contains(configured, queue) || (!configGiven && len(stats) == 0) {
		return nil
	}
	queues := slices.Sorted(maps.Keys(stats))
	return fmt.Errorf("--destination %q is not a destination of the config (%s) nor a queue of %s (%s): "+
		"its entries would sit in a queue nothing sends; check the name, or add the destination to the config and pass --config",
		queue, listOrNone(configured), cfg.DataDir, listOrNone(queues))
}

// DestinationConfigured reports whether cfg sends the queue name: one of
// its destinations, or the hold queue of a config with none.
func DestinationConfigured(cfg daemon.Config, name string) bool {
	for _, d := range cfg.Destinations {
		if d.Name == name {
			return true
		}
	}
	return len(cfg.Destinations) == 0 && name == store.HoldQueue
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
