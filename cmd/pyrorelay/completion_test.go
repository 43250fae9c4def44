package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/completion"
	"github.com/pyrorelay/pyrorelay/store"
)

// completionShell runs script with shell and returns its output lines. A
// completion that does not return within the deadline ran the command (a
// relay serving, say): the whole process group is killed and the test fails.
func completionShell(t *testing.T, shell string, args ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stopDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, shell, args...)
	cmd.Env = cleanEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s completion did not return within %v: it ran the command\n%s", shell, stopDeadline, out)
	}
	if err != nil {
		t.Fatalf("%s: %v\n%s", shell, err, out)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// completeBash completes the last of words with the script `pyrorelay
// completion bash` prints, and returns the candidates.
func completeBash(t *testing.T, script string, words ...string) []string {
	t.Helper()
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = shellQuote(w)
	}
	prog := fmt.Sprintf("%s\nCOMP_WORDS=(%s %s); COMP_CWORD=%d; _pyrorelay_complete; printf '%%s\\n' \"${COMPREPLY[@]}\"",
		script, shellQuote(relayBin), strings.Join(q, " "), len(words))
	return completionShell(t, "bash", "--norc", "--noprofile", "-c", prog)
}

// completeZsh does the same with the zsh script, with the completion
// system's builtins replaced by functions that print what they are given.
func completeZsh(t *testing.T, script string, words ...string) []string {
	t.Helper()
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = shellQuote(w)
	}
	stubs := `compadd() { [[ $1 == -a ]] && print -l -- "${(@P)2}"; }
_files() { print -- "<files>"; }
compdef() { : }
`
	prog := fmt.Sprintf("%s%s\nwords=(%s %s); CURRENT=%d; _pyrorelay",
		stubs, script, shellQuote(relayBin), strings.Join(q, " "), len(words)+1)
	return completionShell(t, "zsh", "-f", "-c", prog)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestCompletionNeverRunsTheCommand completes, with the real binary and the
// scripts it prints, the command lines that used to start a relay and purge
// dead letters, and checks that nothing ran: no data dir was created, no
// listener came up, every dead letter is still there.
func TestCompletionNeverRunsTheCommand(t *testing.T) {
	dir := t.TempDir()
	cliFill(t, dir, "a", cliDataset(t, 3, cliT0()))
	cliDeadLetter(t, dir, "a", "e00", "e01", "e02")
	deadLetters := func() int { return len(cliEntries(t, dir, store.DeadLetterSource("a"))) }
	serveDir := filepath.Join(t.TempDir(), "serve-data")
	addr := freePort(t)
	nothingRan := func(t *testing.T, what string) {
		t.Helper()
		if _, err := os.Stat(serveDir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: serve ran: %s exists (%v)", what, serveDir, err)
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s: serve ran: %s accepts connections", what, addr)
		}
		if n := deadLetters(); n != 3 {
			t.Fatalf("%s: purge ran: %d dead letters left, want 3", what, n)
		}
	}
	serveLine := []string{"serve", "--listen", addr, "--data-dir", serveDir}
	purgeLine := []string{"dead-letter", "purge", "--data-dir", dir, "--destination", "a", "--yes"}

	t.Run("binary", func(t *testing.T) {
		// What older scripts (and urfave/cli's sample) send for TAB after
		// "--": urfave/cli alone would run the command.
		for _, tc := range []struct {
			line []string
			want string
		}{{serveLine, "--max-age"}, {purgeLine, "--app"}} {
			args := append(slices.Clone(tc.line), "--", completion.Flag)
			p := launch(t, relayOpts{rawArgs: true}, args...)
			if code := p.waitExit(stopDeadline); code != 0 {
				t.Errorf("%q: exit %d\n%s", args, code, p.Stderr.String())
			}
			if !slices.Contains(strings.Fields(p.Stdout.String()), tc.want) {
				t.Errorf("%q offers %q, want %q among them", args, p.Stdout.String(), tc.want)
			}
			nothingRan(t, strings.Join(args, " "))
		}
	})

	for _, shell := range []string{"bash", "zsh"} {
		t.Run(shell, func(t *testing.T) {
			if _, err := exec.LookPath(shell); err != nil {
				t.Skipf("no %s", shell)
			}
			script := cliOK(t, "", "completion", shell).stdout
			complete := completeBash
			if shell == "zsh" {
				complete = completeZsh
			}
			for _, tc := range []struct {
				words []string
				want  string // among the candidates
			}{
				{[]string{"con"}, "config"},
				{[]string{"config", ""}, "check"},
				{[]string{"dead-letter", "pu"}, "purge"},
				{append(slices.Clone(serveLine), "--"), "--max-age"},
				{append(slices.Clone(serveLine), "--li"), ""}, // --listen is on the line already
				{append(slices.Clone(purgeLine), "--"), "--app"},
				{append(slices.Clone(purgeLine), "-"), "--app"},
				// After "--" the binary is not asked at all.
				{append(slices.Clone(purgeLine), "--", ""), ""},
				{append(slices.Clone(serveLine), "--", "--"), ""},
			} {
				got := complete(t, script, tc.words...)
				if tc.want != "" && !slices.Contains(got, tc.want) {
					t.Errorf("%q offers %q, want %q among them", tc.words, got, tc.want)
				}
				nothingRan(t, strings.Join(tc.words, " "))
			}
		})
	}

	t.Run("fish", func(t *testing.T) {
		if _, err := exec.LookPath("fish"); err != nil {
			t.Skip("no fish")
		}
		script := filepath.Join(t.TempDir(), "pyrorelay.fish")
		if err := os.WriteFile(script, []byte(cliOK(t, "", "completion", "fish").stdout), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ line, want string }{
			{"pyrorelay con", "config"},
			{"pyrorelay " + strings.Join(serveLine, " ") + " --", "--max-age"},
			{"pyrorelay " + strings.Join(purgeLine, " ") + " --", "--app"},
		} {
			got := completionShell(t, "fish", "--no-config", "-c", fmt.Sprintf("source %s; complete -C %s", shellQuote(script), shellQuote(tc.line)))
			found := false
			for _, g := range got {
				found = found || strings.HasPrefix(g, tc.want)
			}
			if !found {
				t.Errorf("%q offers %q, want %q among them", tc.line, got, tc.want)
			}
			nothingRan(t, tc.line)
		}
	})
}
