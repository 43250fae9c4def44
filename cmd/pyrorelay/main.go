// Command pyrorelay is a durable store-and-forward relay for continuous
// profiling data: it serves the Pyroscope ingest and Push APIs, keeps every
// accepted profile in a bbolt write-ahead queue per destination, and
// forwards each destination its own copy.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/buildinfo"
	"github.com/pyrorelay/pyrorelay/completion"
	"github.com/pyrorelay/pyrorelay/relay"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// revision is the VCS commit, set at build time where the Go toolchain
// cannot read it (a Docker build without .git):
// -ldflags "-X main.revision=$(git rev-parse HEAD)".
var revision = ""

func main() {
	relay.UserAgent = "pyrorelay/" + version
	if err := newApp().Run(completion.SafeArgs(os.Args)); err != nil {
		fmt.Fprintln(os.Stderr, "pyrorelay:", err)
		os.Exit(1)
	}
}

// --version prints what `version` does. Set once here: VersionPrinter is
// urfave/cli's global.
func init() { cli.VersionPrinter = printVersion }

func newApp() *cli.App {
	app := &cli.App{
		Name:  "pyrorelay",
		Usage: "durable store-and-forward relay for Pyroscope profiles",
		Description: `A running relay holds its data dir locked: one process writes a bbolt file.
The reading commands ask a running relay over its admin API with --url
(queue status, dead-letter list, export) or read a stopped relay's data dir.
The commands that change the data dir need the relay stopped: queue move,
import, dead-letter requeue and purge, archive purge, drain, compact,
salvage, and replay --queue (which removes what it delivered unless --keep).`,
		Version:              version,
		EnableBashCompletion: true,
		Suggest:              true,
		Commands: []*cli.Command{serveCommand(), versionCommand(), configCommand(),
			queueCommand(), drainCommand(), exportCommand(), importCommand(), replayCommand(), deadLetterCommand(), compactCommand(),
			archiveCommand(), salvageCommand(), completionCommand()},
	}
	app.OnUsageError = usageError(app.Name, []cli.Flag{cli.HelpFlag, cli.VersionFlag})
	setUsageErrors(app.Name, app.Commands)
	return app
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:   "version",
		Usage:  "print version, revision, Go version and platform (as --version does)",
		Action: func(c *cli.Context) error { printVersion(c); return nil },
	}
}

func printVersion(c *cli.Context) {
	fmt.Fprintln(c.App.Writer, buildinfo.Read(version, revision))
}
