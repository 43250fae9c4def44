package main

// What pyrorelay adds to urfave/cli's command-line parsing: duration flags
// that take days and weeks, flags written after the positional arguments,
// and one-line usage errors.

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/daemon"
)

// durationValue is a flag value read by daemon.ParseDuration. Its String is Go's
// form, so cli.Context.Duration reads it like a DurationFlag's.
type durationValue time.Duration

func (d *durationValue) Set(s string) error {
	v, err := daemon.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = durationValue(v)
	return nil
}

func (d *durationValue) String() string { return time.Duration(*d).String() }

// durationFlag is a duration flag that takes days and weeks too; read it
// with c.Duration. A placeholder in the usage is `DURATION` unless usage
// names its own in backquotes.
func durationFlag(name string, envVars []string, value time.Duration, usage string) *cli.GenericFlag {
	v := durationValue(value)
	return &cli.GenericFlag{Name: name, EnvVars: envVars, Value: &v, Usage: usage}
}

// hidden hides a flag from --help.
func hidden(f *cli.GenericFlag) *cli.GenericFlag {
	f.Hidden = true
	return f
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

// usageError answers a command line the flag parser refuses with one line
// (what is wrong, the flag meant if one is close, where the flags are
// listed) instead of urfave/cli's full help.
func usageError(helpName string, flags []cli.Flag) cli.OnUsageErrorFunc {
	return func(_ *cli.Context, err error, _ bool) error {
		msg := err.Error()
		const undefined = "flag provided but not defined: -"
		if name, ok := strings.CutPrefix(msg, undefined); ok {
			msg = fmt.Sprintf("unknown flag --%s", strings.TrimPrefix(name, "-"))
			if cli.SuggestFlag != nil {
				if s := cli.SuggestFlag(flags, name, false); s != "" {
					msg += fmt.Sprintf(": did you mean %s?", s)
				}
			}
		}
		// Go's flag package names flags with one dash; ours take two.
		msg = singleDashRE.ReplaceAllString(msg, "$1--$2")
		return fmt.Errorf("%s (%s --help lists the flags)", msg, helpName)
	}
}

var singleDashRE = regexp.MustCompile(`(^|[ :])-([A-Za-z][\w-]+)`)

// setUsageErrors gives every command, subcommands included, usageError.
func setUsageErrors(parent string, cmds []*cli.Command) {
	for _, c := range cmds {
		name := parent + " " + c.Name
		c.OnUsageError = usageError(name, c.Flags)
		setUsageErrors(name, c.Subcommands)
	}
}
