package datadir

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/pyrorelay/pyrorelay/store"
)

// OpenDeadLetters opens dir as Open does, for a command on the dead
// letters of destination name, and checks dir has a queue of that name.
// A reading command (mode Read) is told to ask the running relay with
// --url when one holds dir; the others to stop it first.
func OpenDeadLetters(dir string, mode Mode, name string) (*store.Store, error) {
	next := StopRelayFirst
	if mode == Read {
		next = AskWithURL
	}
	st, err := Open(dir, mode, next)
	if err != nil {
		return nil, err
	}
	sum, err := st.Summary()
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	if _, ok := sum.Queues[name]; !ok {
		_ = st.Close()
		return nil, fmt.Errorf("no destination %q in %s; it holds %s", name, dir, Describe(sum))
	}
	return st, nil
}

// MoveQueue opens dir for writing and moves queue from, and its dead
// letters, to queue to (store.MoveQueue). A queue from that is not there
// is an error listing the queues dir has.
func MoveQueue(ctx context.Context, dir, from, to string) (store.MoveResult, error) {
	st, err := Open(dir, Write, StopRelayFirst)
	if err != nil {
		return store.MoveResult{}, err
	}
	defer st.Close()
	res, err := st.MoveQueue(ctx, from, to)
	if errors.Is(err, store.ErrNotFound) {
		sum, _ := st.Summary()
		return res, fmt.Errorf("no queue %q in %s (queues: %s): check --from", from, dir, strings.Join(sum.QueueNames(), ", "))
	}
	return res, err
}

// Compact compacts the store in dir (store.Compact), waiting LockTimeout
// for its lock; while a relay holds it, the error says to stop it first.
func Compact(dir string) (store.CompactResult, error) {
	res, err := store.Compact(dir, LockTimeout)
	if errors.Is(err, store.ErrLocked) {
		return res, fmt.Errorf("data dir %s is in use by a running relay: %s: %w", dir, StopRelayFirst, err)
	}
	return res, err
}
