package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/daemon"
)

func configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "work with configuration files",
		Subcommands: []*cli.Command{{
			Name:      "check",
			Usage:     "validate a configuration and print the effective one, secrets masked",
			ArgsUsage: " ",
			Description: `Reads the file given with --config, applies the flags and PYRORELAY_*
environment variables exactly as "serve" does, validates the result and
prints it as YAML: defaults filled in, destination defaults applied, and
passwords, bearer tokens and credential headers masked (files holding
secrets are shown by path). Exits non-zero, naming the field, when the
configuration is not valid. It opens neither the store nor the listener,
so it is safe to run beside a running relay.

Examples:
   pyrorelay config check --config /etc/pyrorelay/pyrorelay.yaml
   pyrorelay config check --config pyrorelay.yaml --forward-to extra=http://p:4040`,
			// Exactly serve's flags, whoever adds to them.
			Flags:  serveCommand().Flags,
			Action: runConfigCheck,
		}},
	}
}

func runConfigCheck(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("config check: unexpected argument %q: give the file with --config", c.Args().First())
	}
	cfg, err := configFromFlags(c)
	if err != nil {
		return fmt.Errorf("config check: %w", err)
	}
	if err := cfg.CheckDataDir(); err != nil {
		return fmt.Errorf("config check: %w", err)
	}
	out, err := daemon.MaskedYAML(cfg)
	if err != nil {
		return fmt.Errorf("config check: %w", err)
	}
	src := "flags and environment"
	if p := c.String("config"); p != "" {
		src = p + " with flags and environment"
	}
	fmt.Fprintf(c.App.Writer, "# pyrorelay %s: effective configuration from %s; secrets masked\n", version, src)
	_, err = c.App.Writer.Write(out)
	return err
}
