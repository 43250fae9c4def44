package main

// The flags every operator command (queue, export, import, replay,
// dead-letter, compact, drain) shares: which data dir and config; flags
// written after the arguments. Opening the data dir is
// package datadir.

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/daemon"
	"github.com/pyrorelay/pyrorelay/datadir"
)

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
		if err := daemon.LoadConfigFile(path, &cfg); err != nil {
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

// warnNotConfigured warns, when --config is given, that nothing sends the
// queue name, which the command just filled, while it is no destination
// of the config.
func warnNotConfigured(c *cli.Context, cfg daemon.Config, name string) {
	if c.String("config") != "" && !datadir.DestinationConfigured(cfg, name) {
		fmt.Fprintf(c.App.ErrWriter, "warning: %q is not a destination in %s: nothing will send these entries until it is\n", name, c.String("config"))
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
