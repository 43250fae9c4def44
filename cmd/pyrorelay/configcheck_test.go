package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pyrorelay/pyrorelay/daemon"
)

// runCLI runs the app in-process with args (after "pyrorelay") and returns
// stdout and the error Run returned. PYRORELAY_ variables of the host are
// hidden, so they cannot change a test.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "PYRORELAY_") {
			t.Setenv(k, v) // restored at cleanup
			os.Unsetenv(k)
		}
	}
	app := newApp()
	var out, errOut bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errOut
	err := app.Run(append([]string{"pyrorelay"}, args...))
	return out.String(), err
}

// writeCheckConfig writes a config file into a fresh directory.
func writeCheckConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pyrorelay.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigCheckPrintsEffectiveConfigMasked(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "staging-token")
	if err := os.WriteFile(tokenFile, []byte("tok-from-file-S3CRET\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secrets := []string{"pw-S3CRET", "bearer-S3CRET", "hdr-S3CRET", "url-S3CRET", "tok-from-file-S3CRET"}
	path := writeCheckConfig(t, `
data_dir: `+filepath.Join(dir, "data")+`
max_body_size: 32MiB
forward_concurrency: 3
destinations:
  - name: prod
    url: https://profiles.example.com
    basic_auth: {username: "123456", password: "pw-S3CRET"}
    headers: {Authorization: "Bearer hdr-S3CRET", X-Team: "a"}
    timeout: 15s
  - name: staging
    url: http://pyroscope-staging:4040
    bearer_token_file: `+tokenFile+`
  - name: edge
    url: https://relay:url-S3CRET@central.example.com:4040
    bearer_token: bearer-S3CRET
    concurrency: 8
    max_concurrency: 12
`)
	out, err := runCLI(t, "config", "check", "--config", path, "--listen", "127.0.0.1:4999", "--forward-max-concurrency", "20")
	if err != nil {
		t.Fatalf("config check: %v", err)
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("output shows the secret %q:\n%s", s, out)
		}
	}

	var got daemon.Config
	dec := yaml.NewDecoder(strings.NewReader(out))
	dec.KnownFields(true)
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("output is not a config file: %v\n%s", err, out)
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"listen (flag over file)", got.Listen, "127.0.0.1:4999"},
		{"max_body_size", got.MaxBodySize, daemon.ByteSize(32 << 20)},
		{"max_connections (default)", got.MaxConnections, daemon.DefaultConfig().MaxConnections},
		{"read_timeout (default)", got.ReadTimeout, 30 * time.Second},
		{"prod password", got.Destinations[0].BasicAuth.Password, daemon.MaskedValue},
		{"prod username", got.Destinations[0].BasicAuth.Username, "123456"},
		{"prod Authorization header", got.Destinations[0].Headers["Authorization"], daemon.MaskedValue},
		{"prod other header", got.Destinations[0].Headers["X-Team"], "a"},
		{"prod timeout", got.Destinations[0].Timeout, 15 * time.Second},
		{"prod concurrency (from forward_concurrency)", got.Destinations[0].Concurrency, 3},
		{"prod max_attempts (default)", got.Destinations[0].MaxAttempts, daemon.DefaultConfig().MaxAttempts},
		{"staging bearer_token_file (a path)", got.Destinations[1].BearerTokenFile, tokenFile},
		{"edge bearer_token", got.Destinations[2].BearerToken, daemon.MaskedValue},
		{"edge url", got.Destinations[2].URL, "https://relay:xxxxx@central.example.com:4040"},
		{"edge concurrency (own)", got.Destinations[2].Concurrency, 8},
		{"prod max_concurrency (from --forward-max-concurrency)", got.Destinations[0].MaxConcurrency, 20},
		{"edge max_concurrency (own)", got.Destinations[2].MaxConcurrency, 12},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	if !strings.Contains(out, "max_body_size: 32MiB") {
		t.Errorf("sizes should print as they are written (32MiB):\n%s", out)
	}

	// The output is itself a valid config, and checking it again prints
	// the same configuration.
	again, err := runCLI(t, "config", "check", "--config", writeCheckConfig(t, out))
	if err != nil {
		t.Fatalf("config check of its own output: %v\n%s", err, out)
	}
	if body := func(s string) string { _, b, _ := strings.Cut(s, "\n"); return b }; body(again) != body(out) {
		t.Errorf("second check differs:\nfirst:\n%s\nsecond:\n%s", out, again)
	}
}

func TestConfigCheckEmptyFileIsDefaults(t *testing.T) {
	out, err := runCLI(t, "config", "check", "--config", writeCheckConfig(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"listen: :4040", "max_body_size: 4MiB", "log_level: info", "destinations: []"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestConfigCheckNamesTheBadField(t *testing.T) {
	tests := []struct {
		name, yaml string
		args       []string
		want       []string // all must be in the error
	}{
		{name: "unknown key", yaml: "listn: :4040\n", want: []string{"listn"}},
		{name: "bad duration", yaml: "read_timeout: 5 parsecs\n", want: []string{"read_timeout"}},
		{name: "bad size", yaml: "max_body_size: lots\n", want: []string{"max_body_size"}},
		{name: "zero connections", yaml: "max_connections: 0\n", want: []string{"max_connections"}},
		{name: "bad log format", yaml: "log_format: xml\n", want: []string{"log_format"}},
		{name: "bad log level", yaml: "log_level: loud\n", want: []string{"log_level"}},
		{name: "bad listen", yaml: "listen: nowhere\n", want: []string{"listen"}},
		{name: "destination url", yaml: "destinations:\n  - {name: prod, url: ftp://x}\n", want: []string{"destinations[0]", "url"}},
		{name: "destination timeout", yaml: "destinations:\n  - name: prod\n    url: http://x\n    timeout: soon\n", want: []string{"destinations[0].timeout"}},
		{name: "duplicate name", yaml: "destinations:\n  - {name: a, url: http://x}\n  - {name: a, url: http://y}\n", want: []string{"destinations[1]", `"a"`}},
		{name: "two auths", yaml: "destinations:\n  - name: a\n    url: http://x\n    bearer_token: t-S3CRET\n    basic_auth: {username: u, password: p-S3CRET}\n", want: []string{"destinations[0]", "basic_auth"}},
		{name: "missing token file", yaml: "destinations:\n  - {name: a, url: http://x, bearer_token_file: /nonexistent/token}\n", want: []string{"destinations[0]", "bearer_token_file"}},
		{name: "bad flag", yaml: "", args: []string{"--max-body-size", "huge"}, want: []string{"--max-body-size"}},
		{name: "stray argument", yaml: "", args: []string{"extra.yaml"}, want: []string{"--config"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"config", "check", "--config", writeCheckConfig(t, tc.yaml)}, tc.args...)
			out, err := runCLI(t, args...)
			if err == nil {
				t.Fatalf("config check accepted it; printed:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "S3CRET") {
				t.Errorf("error shows a secret: %v", err)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, err := runCLI(t, "config", "check", "--config", filepath.Join(t.TempDir(), "nope.yaml"))
		if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
			t.Fatalf("err = %v, want one naming the file", err)
		}
	})
}

// TestConfigCheckExitCode runs the real binary: a bad file must exit
// non-zero with the field on stderr, a good one zero.
func TestConfigCheckExitCode(t *testing.T) {
	bad := writeCheckConfig(t, "max_attempts: -1\n")
	p := launch(t, relayOpts{rawArgs: true}, "config", "check", "--config", bad)
	if code := p.waitExit(stopDeadline); code == 0 {
		t.Fatalf("exit code 0 for a bad file; stdout:\n%s", p.Stdout.String())
	}
	if !strings.Contains(p.Stderr.String(), "max_attempts") {
		t.Errorf("stderr does not name max_attempts:\n%s", p.Stderr.String())
	}

	good := writeCheckConfig(t, "destinations:\n  - {name: a, url: http://x}\n")
	p = launch(t, relayOpts{rawArgs: true}, "config", "check", "--config", good)
	if code := p.waitExit(stopDeadline); code != 0 {
		t.Fatalf("exit code %d for a good file; stderr:\n%s", code, p.Stderr.String())
	}
	if !strings.Contains(p.Stdout.String(), "name: a") {
		t.Errorf("stdout lacks the destination:\n%s", p.Stdout.String())
	}
}
