package main

import (
	"fmt"
	"time"

	"github.com/prometheus/common/model"
	"github.com/urfave/cli/v2"
)

// parseDuration reads Go durations ("1.5h", "250ms") and Prometheus ones,
// which add days, weeks and years ("7d", "2w", "1d12h"), as --since does.
func parseDuration(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	d, err := model.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: want a number and a unit, such as 30s, 15m, 12h, 7d or 2w", s)
	}
	return time.Duration(d), nil
}

// durationValue is a flag value read by parseDuration. Its String is Go's
// form, so cli.Context.Duration reads it like a DurationFlag's.
type durationValue time.Duration

func (d *durationValue) Set(s string) error {
	v, err := parseDuration(s)
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
