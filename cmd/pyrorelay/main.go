// Command pyrorelay is a durable store-and-forward relay for continuous
// profiling data: it serves the Pyroscope ingest and Push APIs, keeps every
// accepted profile in a bbolt write-ahead queue per destination, and
// forwards each destination its own copy.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/relay"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	relay.UserAgent = "pyrorelay/" + version
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "pyrorelay:", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:                 "pyrorelay",
		Usage:                "durable store-and-forward relay for Pyroscope profiles",
		Version:              version,
		EnableBashCompletion: true,
		Commands: []*cli.Command{serveCommand(), versionCommand(), configCommand(),
			queueCommand(), drainCommand(), exportCommand(), importCommand(), replayCommand(), deadLetterCommand(), compactCommand(),
			archiveCommand(), salvageCommand()},
	}
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print version, commit and Go version",
		Action: func(c *cli.Context) error {
			ver, commit, goVersion := versionInfo()
			fmt.Fprintf(c.App.Writer, "pyrorelay %s (commit %s, %s)\n", ver, commit, goVersion)
			return nil
		},
	}
}
