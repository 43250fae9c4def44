package main

import (
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
