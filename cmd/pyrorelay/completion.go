package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/completion"
)

func completionCommand() *cli.Command {
	script := func(name, text string) *cli.Command {
		return &cli.Command{
			Name:  name,
			Usage: "print the " + name + " completion script",
			Action: func(c *cli.Context) error {
				out := text
				if out == "" {
					fish, err := c.App.ToFishCompletion()
					if err != nil {
						return fmt.Errorf("fish completion: %w", err)
					}
					out = fish
				}
				_, err := fmt.Fprint(c.App.Writer, out)
				return err
			},
		}
	}
	return &cli.Command{
		Name:  "completion",
		Usage: "print a shell completion script (bash, zsh or fish)",
		Description: `Completing asks the binary for words (urfave/cli's --generate-bash-completion);
it never runs a command, whatever is on the line.

   pyrorelay completion bash > /usr/share/bash-completion/completions/pyrorelay
   pyrorelay completion zsh > "${fpath[1]}/_pyrorelay"
   pyrorelay completion fish > ~/.config/fish/completions/pyrorelay.fish`,
		Subcommands: []*cli.Command{
			script("bash", completion.Bash),
			script("zsh", completion.Zsh),
			// fish's script is generated from the commands and flags, so it
			// lists them itself and never calls the binary.
			script("fish", ""),
		},
	}
}
