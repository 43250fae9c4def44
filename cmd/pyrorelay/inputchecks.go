package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/daemon"
	"github.com/pyrorelay/pyrorelay/exportfile"
)

// inputCheckFlags are import's and replay's flags for the checks of
// every entry read from an export (exportfile.Checks).
func inputCheckFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "no-verify", Usage: "accept export entries without a body_sha256 (or whose body does not match it)"},
		&cli.StringFlag{Name: "max-body-size", Value: "4MiB", Usage: "refuse export entries with a larger body, as serve --max-body-size does"},
	}
}

// inputChecksFromFlags reads --no-verify and --max-body-size.
func inputChecksFromFlags(c *cli.Context) (exportfile.Checks, error) {
	n, err := daemon.ParseByteSize(c.String("max-body-size"))
	if err != nil || n <= 0 {
		return exportfile.Checks{}, fmt.Errorf("--max-body-size %q: want a positive size such as 4MiB", c.String("max-body-size"))
	}
	return exportfile.Checks{NoVerify: c.Bool("no-verify"), MaxBodySize: int64(n)}, nil
}
