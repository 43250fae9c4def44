package main

// Tests of the small things an operator trips over (issue 20, item 9).

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pyrorelay/pyrorelay/store"
)

// TestUnknownFlagSuggests: a mistyped flag gets one line naming the flag
// meant, not the whole help.
func TestUnknownFlagSuggests(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--forwad-to", "a=http://x"}, "unknown flag --forwad-to: did you mean --forward-to? (pyrorelay serve --help lists the flags)"},
		{[]string{"dead-letter", "purge", "--destnation", "a"}, "unknown flag --destnation: did you mean --destination?"},
		{[]string{"--verison"}, "did you mean --version?"},
		{[]string{"serve", "--max-age"}, "flag needs an argument: --max-age"},
	} {
		r := cliRun(t, "", tc.args...)
		if r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.args, r.err, tc.want)
		}
		if r.stdout != "" || r.stderr != "" {
			t.Errorf("%q printed help:\n%s%s", tc.args, r.stdout, r.stderr)
		}
	}
}

// TestDurationsTakeDays: duration flags and YAML durations read 7d and 2w
// as --since does; a bad one names the units.
func TestDurationsTakeDays(t *testing.T) {
	cfg := writeCheckConfig(t, "destinations:\n  - name: a\n    url: http://x\n    max_age: 1d\n")
	out, err := runCLI(t, "config", "check", "--config", cfg, "--max-age", "7d", "--archive-retention", "2w", "--shutdown-timeout", "1m")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nmax_age: 168h0m0s", "    max_age: 24h0m0s", "archive_retention: 336h0m0s", "shutdown_timeout: 1m0s"} {
		if !strings.Contains(out, want) {
			t.Errorf("effective config lacks %q:\n%s", want, out)
		}
	}
	if _, err := runCLI(t, "config", "check", "--max-age", "7 days"); err == nil || !strings.Contains(err.Error(), "7d or 2w") {
		t.Errorf("--max-age '7 days': %v", err)
	}
}

// TestYAMLSyntaxErrorLine: an indentation error is reported on its own
// line, not on the line where the enclosing block starts.
func TestYAMLSyntaxErrorLine(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"listen: \":4040\"\ndestinations:\n  - name: a\n   url: http://x\n", "line 4: did not find expected '-' indicator (in the block that starts on line 2"},
		{"listen: \":4040\"\ndestinations:\n  - name: a\n    url: http://x\n  timeout: 5s\n", "line 5: "},
		{"listen: \":4040\"\nlog_level: info\n  data_dir: /x\n", "line 3: mapping values are not allowed"},
	} {
		_, err := runCLI(t, "config", "check", "--config", writeCheckConfig(t, tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

// TestEndpointURLRefused: a destination URL that already ends in /ingest
// (or the Push path) is refused with the base URL to give instead.
func TestEndpointURLRefused(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"config", "check", "--forward-to", "a=http://x:4040/ingest"}, `destinations[0] "a": url http://x:4040/ingest ends in /ingest: give the server's base URL, http://x:4040;`},
		{[]string{"config", "check", "--forward-to", "a=https://gw/pyro/ingest/"}, "give the server's base URL, https://gw/pyro;"},
		{[]string{"config", "check", "--forward-to", "a=http://x/push.v1.PusherService/Push"}, "ends in /push.v1.PusherService/Push"},
		{[]string{"replay", "--to", "http://x:4040/ingest", "--from", "-"}, "--to: url http://x:4040/ingest ends in /ingest"},
	} {
		r := cliRun(t, "", tc.args...)
		if r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.args, r.err, tc.want)
		}
	}
	if r := cliRun(t, "", "config", "check", "--forward-to", "a=https://gw/pyroscope"); r.err != nil {
		t.Errorf("a base URL with a path prefix: %v", r.err)
	}
}

// TestImportRefusesUnknownDestination: import into a queue neither the
// config nor the data dir knows is refused, naming both lists; a new
// node's empty data dir, or a destination of the config, takes it.
func TestImportRefusesUnknownDestination(t *testing.T) {
	src := t.TempDir()
	cliFill(t, src, "prod", cliDataset(t, 2, cliT0()))
	out := filepath.Join(t.TempDir(), "export")
	cliOK(t, "", "export", "--data-dir", src, "--destination", "prod", "--out", out)

	r := cliRun(t, "", "import", out, "--destination", "nosuch", "--data-dir", src)
	if r.err == nil || !strings.Contains(r.err.Error(), `--destination "nosuch" is not a destination of the config (none) nor a queue of `+src+` (prod)`) {
		t.Errorf("import into an unknown queue: %v", r.err)
	}
	if n := len(cliEntries(t, src, store.QueueSource("nosuch"))); n != 0 {
		t.Errorf("the refused import left %d entries", n)
	}
	cfg := writeCheckConfig(t, "destinations:\n  - name: staging\n    url: http://x\n")
	r = cliRun(t, "", "import", out, "--destination", "nosuch", "--data-dir", src, "--config", cfg)
	if r.err == nil || !strings.Contains(r.err.Error(), "the config (staging)") {
		t.Errorf("import into a queue the config does not name: %v", r.err)
	}
	cliOK(t, "", "import", out, "--destination", "staging", "--data-dir", src, "--config", cfg)
	cliOK(t, "", "import", out, "--destination", "prod", "--data-dir", src)
	cliOK(t, "", "import", out, "--destination", "anything", "--data-dir", filepath.Join(t.TempDir(), "new-node"))
}

// TestReplayToADownURLShowsTheError: replay to a URL nobody answers says
// why it is not getting anywhere while it retries, and when interrupted.
func TestReplayToADownURLShowsTheError(t *testing.T) {
	dir := t.TempDir()
	cliFill(t, dir, "a", cliDataset(t, 2, cliT0()))
	p := launch(t, relayOpts{rawArgs: true}, "replay", "--data-dir", dir, "--queue", "a", "--keep", "--to", closedURL(t), "--max-backoff", "100ms")
	waitFor(t, deliverDeadline, "the error shown", func() (bool, string) {
		return strings.Contains(p.Stderr.String(), "retrying: ") && strings.Contains(p.Stderr.String(), "connection refused"), p.Stderr.String()
	})
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := p.waitExit(stopDeadline); code == 0 {
		t.Errorf("interrupted replay exited 0")
	}
	if s := p.Stderr.String(); !strings.Contains(s, "replay interrupted after 0 entries (last error") || !strings.Contains(s, "connection refused") {
		t.Errorf("the interrupted replay does not give the last error:\n%s", s)
	}
}

// TestServeHelpPlaceholders: every duration flag shows DURATION, not the
// first backquoted words of its usage.
func TestServeHelpPlaceholders(t *testing.T) {
	out := cliOK(t, "", "serve", "--help").stdout
	for _, want := range []string{"--archive-retention DURATION", "--max-age DURATION", "--read-timeout DURATION"} {
		if !strings.Contains(out, want) {
			t.Errorf("serve --help lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "--archive-retention pyrorelay") {
		t.Errorf("serve --help shows a usage fragment as a placeholder:\n%s", out)
	}
}
