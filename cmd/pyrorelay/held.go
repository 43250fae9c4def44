package main

import (
	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/store"
)

func keepHeldFlag() cli.Flag {
	return &cli.BoolFlag{Name: "keep-held", EnvVars: env("KEEP_HELD"),
		Usage: "leave what a store-only relay kept (queue " + store.HoldQueue + ") where it is when destinations are configured, instead of queueing it for every destination"}
}
