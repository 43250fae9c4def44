package main

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"
)

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
