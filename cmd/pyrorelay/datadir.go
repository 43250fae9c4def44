package main

// Shared plumbing of the operator commands (queue, export, import, replay,
// dead-letter, compact, drain): which data dir, how to open it, how to say
// what went wrong.

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/daemon"
	"github.com/pyrorelay/pyrorelay/store"
)

// adminLockTimeout is how long an operator command waits for the data
// dir's lock: long enough to ride out a relay that is just exiting, short
// enough to answer at once when one is running.
const adminLockTimeout = 2 * time.Second

// dataDirFlags locate the store: --data-dir, or the data_dir of --config.
func dataDirFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "data-dir", EnvVars: env("DATA_DIR"), Value: daemon.DefaultConfig().DataDir, Usage: "the relay's data directory"},
		&cli.StringFlag{Name: "config", EnvVars: env("CONFIG"), Usage: "take data_dir (and the destinations) from this YAML config; --data-dir wins"},
	}
}

// adminConfig is the config an operator command works with: defaults, then
// --config, then --data-dir if given.
func adminConfig(c *cli.Context) (daemon.Config, error) {
	cfg := daemon.DefaultConfig()
	if path := c.String("config"); path != "" {
		if err := loadConfigFile(path, &cfg); err != nil {
			return cfg, err
		}
	}
	if c.IsSet("data-dir") {
		cfg.DataDir = c.String("data-dir")
	}
	if cfg.DataDir == "" {
		return cfg, errors.New("--data-dir is empty: name the relay's data directory")
	}
	return cfg, nil
}

// openMode says how an operator command opens the store.
type openMode int

const (
	openRead   openMode = iota // shared lock, no writes; the store must exist
	openWrite                  // exclusive lock; the store must exist
	openCreate                 // exclusive lock; created if missing (import)
)

// openAdminStore opens the store in dir for an operator command. While a
// relay runs on dir, the answer says what to do instead: next says it, as
// in "stop the relay first" or "ask it with --url".
func openAdminStore(dir string, mode openMode, next string) (*store.Store, error) {
	opts := store.Options{LockTimeout: adminLockTimeout}
	var st *store.Store
	var err error
	switch mode {
	case openRead:
		st, err = store.OpenReadOnly(dir, opts)
	case openWrite:
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

// stopRelayFirst is the usual next step when the store is locked.
const stopRelayFirst = "stop the relay first (for example `systemctl stop pyrorelay`), run this again, then start it"

// askWithURL is the next step for a reading command when the store is
// locked: the running relay answers it over its admin API.
const askWithURL = "ask the running relay instead: add --url http://HOST:PORT (its --listen address), with --bearer-token-file or credentials in the URL if it requires them"

// ago formats the age of t for people: "3h12m ago".
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	if d < 0 {
		return "in the future"
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm ago", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd ago", int(d.Hours()/24))
	}
}

// flagsAfterArgs applies flags written after the positional arguments and
// returns the positional ones. urfave/cli v2 stops reading flags at the
// first argument, so `pyrorelay import DIR --destination prod` would
// otherwise ignore --destination.
func flagsAfterArgs(c *cli.Context) ([]string, error) {
	args := c.Args().Slice()
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if a == "-" || !strings.HasPrefix(a, "-") {
			pos = append(pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := commandFlag(c, name)
		if f == nil {
			return nil, fmt.Errorf("unknown flag %s: see %s --help", a, c.Command.FullName())
		}
		if !hasVal {
			if _, isBool := f.(*cli.BoolFlag); isBool {
				val = "true"
			} else {
				if i+1 >= len(args) {
					return nil, fmt.Errorf("flag %s needs a value", a)
				}
				i++
				val = args[i]
			}
		}
		if err := c.Set(name, val); err != nil {
			return nil, fmt.Errorf("%s: %w", a, err)
		}
	}
	return pos, nil
}

func commandFlag(c *cli.Context, name string) cli.Flag {
	if c.Command == nil {
		return nil
	}
	for _, f := range c.Command.Flags {
		if slices.Contains(f.Names(), name) {
			return f
		}
	}
	return nil
}

// checkImportQueue refuses to import into a queue nothing would send: the
// destination must be in the config, or already a queue of the store. A
// data dir with no queue yet (a new node) takes any name when no config is
// given, as moving a backlog to a new node does.
func checkImportQueue(st *store.Store, cfg daemon.Config, configGiven bool, queue string) error {
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

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
