// Package datadir opens a relay's data dir for the operator commands
// (queue, export, import, replay, dead-letter, archive, compact, drain)
// and says what went wrong in words an operator can act on: which store
// is missing, which running relay holds the lock and what to do instead,
// what a store holds when a queue named is not there.
//
// It also builds a stopped relay's [Status] document (the one a running
// relay serves; [ReadStatus] opens the data dir for it), and holds the
// steps of those commands that take more than one call of package
// store, each saying what to do when it cannot: [Export], which writes a
// source's entries to an export; [Import], which appends an export's
// entries to a queue in bounded transactions, [CheckImportQueue], which
// refuses a queue nothing would send, and [ImportExport], which does both
// for an export on disk or stdin; [MoveQueue]; [Compact];
// [OpenDeadLetters] for the dead-letter commands; [Drain], which forwards
// what a stopped relay's data dir holds and says what is left
// ([DrainConfig] is the configuration it runs with).
package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pyrorelay/pyrorelay/store"
)

// LockTimeout is how long an operator command waits for the data dir's
// lock: long enough to ride out a relay that is just exiting, short
// enough to answer at once when one is running.
const LockTimeout = 2 * time.Second

// Mode says how an operator command opens the store.
type Mode int

const (
	Read   Mode = iota // shared lock, no writes; the store must exist
	Write              // exclusive lock; the store must exist
	Create             // exclusive lock; created if missing (import)
)

// What to do when a running relay holds the data dir, for Open's next.
const (
	// StopRelayFirst is the usual next step when the store is locked.
	StopRelayFirst = "stop the relay first (for example `systemctl stop pyrorelay`), run this again, then start it"
	// AskWithURL is the next step for a reading command: the running
	// relay answers it over its admin API.
	AskWithURL = "ask the running relay instead: add --url http://HOST:PORT (its --listen address), with --bearer-token-file or credentials in the URL if it requires them"
)

// Open opens the store in dir for an operator command. While a relay runs
// on dir, the error (wrapping store.ErrLocked) says what to do instead:
// next says it, as in StopRelayFirst or AskWithURL. A missing store is
// store.ErrNotFound for Write; Read fails as store.OpenReadOnly does.
func Open(dir string, mode Mode, next string) (*store.Store, error) {
	opts := store.Options{LockTimeout: LockTimeout}
	var st *store.Store
	var err error
	switch mode {
	case Read:
		st, err = store.OpenReadOnly(dir, opts)
	case Write:
		// A mistyped --data-dir must not become an empty new store.
		if _, serr := os.Stat(filepath.Join(dir, store.FileName)); serr != nil {
			return nil, fmt.Errorf("no pyrorelay store in %s: check --data-dir (or data_dir in --config): %w", dir, store.ErrNotFound)
		}
		st, err = store.Open(dir, opts)
	default:
		st, err = store.Open(dir, opts)
	}
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("data dir %s is in use by a running relay (it holds the file lock): %s: %w", dir, next, store.ErrLocked)
	}
	return st, err
}

// Source is the one source of st that queue, deadLetter or archive names
// (the --destination, --dead-letter and --archive flags), checked to
// exist; dir names the data dir in errors, which list what st holds.
func Source(st *store.Store, dir, queue, deadLetter string, archive bool) (store.Source, error) {
	var picked []store.Source
	if queue != "" {
		picked = append(picked, store.QueueSource(queue))
	}
	if deadLetter != "" {
		picked = append(picked, store.DeadLetterSource(deadLetter))
	}
	if archive {
		picked = append(picked, store.ArchiveSource())
	}
	sum, err := st.Summary()
	if err != nil {
		return store.Source{}, err
	}
	if len(picked) != 1 {
		return store.Source{}, fmt.Errorf("choose one of --destination NAME, --dead-letter NAME or --archive; %s holds %s", dir, Describe(sum))
	}
	src := picked[0]
	if src.Kind != store.SourceArchive {
		if _, ok := sum.Queues[src.Queue]; !ok {
			return src, fmt.Errorf("no queue %q in %s; it holds %s", src.Queue, dir, Describe(sum))
		}
	}
	return src, nil
}

// OpenSource opens dir as Open does, then picks the source queue,
// deadLetter or archive names, as Source does.
func OpenSource(dir string, mode Mode, next, queue, deadLetter string, archive bool) (*store.Store, store.Source, error) {
	st, err := Open(dir, mode, next)
	if err != nil {
		return nil, store.Source{}, err
	}
	src, err := Source(st, dir, queue, deadLetter, archive)
	if err != nil {
		_ = st.Close()
		return nil, store.Source{}, err
	}
	return st, src, nil
}

// Describe lists what a store holds, for error messages.
func Describe(sum store.Summary) string {
	var parts []string
	for _, n := range sum.QueueNames() {
		q := sum.Queues[n]
		parts = append(parts, fmt.Sprintf("queue %s (%d entries, %d dead letters)", n, q.Entries, q.DeadEntries))
	}
	parts = append(parts, fmt.Sprintf("archive (%d entries)", sum.Archive.Entries))
	return strings.Join(parts, ", ")
}
