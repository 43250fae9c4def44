package datadir

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/pyrorelay/pyrorelay/daemon"
	"github.com/pyrorelay/pyrorelay/store"
)

// ErrNoDestinations is DrainConfig's error for a configuration with
// nothing to drain to.
var ErrNoDestinations = errors.New("no destination configured: give --config with destinations, or --forward-to NAME=URL")

// DrainConfig finishes cfg (daemon.Config.Finish) for `pyrorelay drain`.
// A drain serves nothing, so the receivers of the file do not matter: a
// destination given with --forward-to is drained even though no receiver
// feeds it. A configuration without destinations is ErrNoDestinations.
func DrainConfig(cfg daemon.Config) (daemon.Config, error) {
	cfg.Receivers = nil
	if err := cfg.Finish(); err != nil {
		return cfg, err
	}
	if len(cfg.Destinations) == 0 {
		return cfg, ErrNoDestinations
	}
	return cfg, nil
}

// Drained is what Drain did.
type Drained struct {
	// Results has one result per destination, in the config's order.
	Results []daemon.DrainResult
	// Why says why the drain stopped before every queue was empty, as
	// daemon.Drain does; "" when they are.
	Why string
	// Took is how long the forwarders ran.
	Took time.Duration
}

// Left is how many destinations still have entries queued.
func (d Drained) Left() int {
	n := 0
	for _, r := range d.Results {
		if r.After.Entries > 0 {
			n++
		}
	}
	return n
}

// Err says why the drain failed: it stopped with entries left, or could not
// read the queues. Nil when every queue is empty.
func (d Drained) Err() error {
	if d.Why == "" {
		return nil
	}
	if left := d.Left(); left > 0 {
		return fmt.Errorf("drain %s: %d of %d destinations still have entries queued; they stay queued for the next run or serve", d.Why, left, len(d.Results))
	}
	if strings.HasPrefix(d.Why, "reading") {
		return errors.New(d.Why)
	}
	return nil
}

// Drain opens the data dir of cfg (from DrainConfig) and runs its
// destinations' forwarders over it (daemon.Drain) until every queue is
// empty, ctx ends or timeout passes. A running relay holding the data dir
// forwards already: the error says how to watch it instead.
func Drain(ctx context.Context, cfg daemon.Config, timeout time.Duration, log *slog.Logger) (Drained, error) {
	st, err := store.Open(cfg.DataDir, store.Options{
		LockTimeout:      LockTimeout,
		ArchiveRetention: cfg.ArchiveRetention,
		ArchiveMaxBytes:  int64(cfg.ArchiveMaxSize),
	})
	if errors.Is(err, store.ErrLocked) {
		return Drained{}, fmt.Errorf("data dir %s is in use by a running relay, which forwards already: watch it with `pyrorelay queue status --url %s`: %w", cfg.DataDir, ListenURL(cfg.Listen), err)
	}
	if err != nil {
		return Drained{}, err
	}
	defer st.Close()
	start := time.Now()
	results, why, err := daemon.Drain(ctx, st, cfg.Destinations, timeout, log)
	if err != nil {
		return Drained{}, err
	}
	return Drained{Results: results, Why: why, Took: time.Since(start)}, nil
}
