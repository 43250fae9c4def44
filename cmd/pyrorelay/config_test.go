package main

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/grafana/pyroscope/api/gen/proto/go/push/v1/pushv1connect"
)

// TestConfigFileEndToEnd runs the relay from a YAML file alone and checks
// that each destination's headers, credentials and tenant reach it, on
// both /ingest and Push.
func TestConfigFileEndToEnd(t *testing.T) {
	basic, bearer := newRecorder(t, nil), newRecorder(t, nil)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`# everything from the file: no flags but --config
listen: 127.0.0.1:0
data_dir: %s
log_format: json
log_level: debug
max_body_size: 2MiB
destinations:
  - name: basic
    url: %s/
    headers:
      X-Env: e2e
      X-Team: profiling
    basic_auth:
      username: relay
      password: s3cret
    tenant_id: team-a
    timeout: 5s
    min_backoff: 10ms
    max_backoff: 100ms
  - name: bearer
    url: %s
    bearer_token: tok-123
    tenant_id: team-b
    timeout: 5s
    min_backoff: 10ms
    max_backoff: 100ms
`, filepath.Join(dir, "data"), basic.URL(), bearer.URL()))
	relay := startRelayOpts(t, relayOpts{}, "serve", "--config", cfg)

	// The client's own tenant is not passed through (tenant_passthrough is
	// off), and the destinations' tenant_id wins anyway.
	mustPostFoldedAs(t, relay.URL, "cfg", "client-tenant")
	push := pushv1connect.NewPusherServiceClient(httpClient, relay.URL)
	if _, err := push.Push(context.Background(), connect.NewRequest(pushRequest("cfg-push", readTestdata(t, "cpu.pb.gz")))); err != nil {
		t.Fatalf("Push: %v", err)
	}

	for _, d := range []*recorder{basic, bearer} {
		waitFor(t, deliverDeadline, "the ingest and push requests at "+d.URL(), func() (bool, string) {
			return d.ingestIDs()["cfg"] == 1 && d.pushIDs()["cfg-push"] == 1, fmt.Sprintf("%d requests", len(d.requests()))
		})
	}
	for _, q := range basic.requests() {
		user, pass, ok := (&http.Request{Header: q.Header}).BasicAuth()
		if !ok || user != "relay" || pass != "s3cret" {
			t.Errorf("%s at basic: basic auth %q/%q (ok %v), want relay/s3cret", q.Path, user, pass, ok)
		}
		for k, want := range map[string]string{"X-Env": "e2e", "X-Team": "profiling", "X-Scope-OrgID": "team-a"} {
			if got := q.Header.Get(k); got != want {
				t.Errorf("%s at basic: %s = %q, want %q", q.Path, k, got, want)
			}
		}
		if ua := q.Header.Get("User-Agent"); !strings.HasPrefix(ua, "pyrorelay/") {
			t.Errorf("%s at basic: User-Agent %q, want pyrorelay/...", q.Path, ua)
		}
	}
	for _, q := range bearer.requests() {
		for k, want := range map[string]string{"Authorization": "Bearer tok-123", "X-Scope-OrgID": "team-b", "X-Env": ""} {
			if got := q.Header.Get(k); got != want {
				t.Errorf("%s at bearer: %s = %q, want %q", q.Path, k, got, want)
			}
		}
	}
	relay.stop()
}

// TestTenantPassthrough: the client's X-Scope-OrgID reaches a destination
// without tenant_id only with --tenant-passthrough.
func TestTenantPassthrough(t *testing.T) {
	for _, pass := range []bool{false, true} {
		t.Run(fmt.Sprintf("passthrough=%v", pass), func(t *testing.T) {
			a := newRecorder(t, nil)
			args := []string{"--forward-to", "a=" + a.URL()}
			if pass {
				args = append(args, "--tenant-passthrough")
			}
			relay := startRelay(t, t.TempDir(), args...)
			mustPostFoldedAs(t, relay.URL, "t", "client-tenant")
			waitFor(t, deliverDeadline, "the profile at a", func() (bool, string) { return len(a.accepted()) == 1, "not yet" })
			want := ""
			if pass {
				want = "client-tenant"
			}
			if got := a.accepted()[0].Header.Get("X-Scope-OrgID"); got != want {
				t.Errorf("X-Scope-OrgID at the destination = %q, want %q", got, want)
			}
			relay.stop()
		})
	}
}

// TestBadConfigFailsFast: a wrong setting stops the relay before it
// listens, with a non-zero exit and a message naming the setting.
func TestBadConfigFailsFast(t *testing.T) {
	dest := func(extra string) string {
		return "destinations:\n  - name: a\n    url: http://127.0.0.1:9\n" + extra
	}
	cases := []struct {
		name string
		yaml string // config file, if not empty
		args []string
		want string // in stderr
	}{
		{name: "unknown key", yaml: "destinatons: []\n", want: `unknown key "destinatons" at the top level: did you mean "destinations"?`},
		{name: "unknown destination key", yaml: "destinations:\n  - name: a\n    ulr: http://x\n", want: "destinations[0].ulr"},
		{name: "destination without url", yaml: "destinations:\n  - name: a\n", want: "url"},
		{name: "bad url", yaml: "destinations:\n  - name: a\n    url: ftp://x\n", want: `url: "ftp://x"`},
		{name: "url with query", yaml: "destinations:\n  - name: a\n    url: http://x/?a=b\n", want: "url: must not carry a query"},
		{name: "duplicate name", yaml: dest("  - name: a\n    url: http://127.0.0.1:10\n"), want: `name "a" is used twice`},
		{name: "bad name", yaml: "destinations:\n  - name: _a\n    url: http://x\n", want: "name: must be"},
		{name: "bad duration", yaml: dest("    timeout: 5 parsecs\n"), want: "destinations[0].timeout"},
		{name: "duration without unit", yaml: dest("    max_backoff: 30\n"), want: "destinations[0].max_backoff"},
		{name: "min above max backoff", yaml: dest("    min_backoff: 2s\n    max_backoff: 1s\n"), want: "min_backoff"},
		{name: "bad top-level duration", yaml: "read_timeout: soon\n", want: "read_timeout"},
		{name: "bad max_body_size", yaml: "max_body_size: lots\n", want: "max_body_size"},
		{name: "zero max_body_size", yaml: "max_body_size: 0\n", want: "max_body_size: must be positive"},
		{name: "bad max_body_size flag", args: []string{"--max-body-size", "1Q"}, want: "--max-body-size"},
		{name: "forward-to without =", args: []string{"--forward-to", "http://x"}, want: "--forward-to"},
		{name: "forward-to bad url", args: []string{"--forward-to", "a=localhost:4040"}, want: "url"},
		{name: "bad log format", args: []string{"--log-format", "xml"}, want: "log_format"},
		{name: "bad log level", args: []string{"--log-level", "loud"}, want: "log_level"},
		{name: "bad listen", args: []string{"--listen", "nohost"}, want: "listen"},
		{name: "missing config file", args: []string{"--config", "/nonexistent/pyrorelay.yaml"}, want: "read config"},
		{name: "unknown flag", args: []string{"--forward", "a=http://x"}, want: "forward"},
		{name: "top-level forward_to", yaml: "forward_to:\n  - a=http://x\n", want: `line 1: forward_to: unknown key "forward_to" at the top level: forward_to is a receiver's list of destination names; the YAML form of --forward-to NAME=URL is "destinations:"`},
		{name: "unknown basic_auth key", yaml: dest("    basic_auth: {username: u, pasword: p}\n"), want: `basic_auth: unknown field "pasword"`},
		{name: "password and password_file", yaml: dest("    basic_auth: {username: u, password: p, password_file: /etc/hostname}\n"), want: "set password or password_file, not both"},
		{name: "missing password_file", yaml: dest("    basic_auth: {username: u, password_file: /nonexistent/pw}\n"), want: "basic_auth.password_file: stat /nonexistent/pw"},
		{name: "unset variable", yaml: dest("    bearer_token: ${PYRORELAY_TEST_UNSET_TOKEN}\n"), want: "line 4: environment variable PYRORELAY_TEST_UNSET_TOKEN is not set"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each run only starts and fails a process
			dir := t.TempDir()
			args := baseArgs(filepath.Join(dir, "data"))
			if tc.yaml != "" {
				args = append(args, "--config", writeConfig(t, dir, tc.yaml))
			}
			args = append(args, tc.args...)
			code, out := runToExit(t, nil, args...)
			if code == 0 {
				t.Fatalf("exit code 0, want non-zero; output:\n%s", out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("output does not name %q:\n%s", tc.want, out)
			}
			if strings.Contains(out, "main.") || strings.Contains(out, "not found in type") {
				t.Errorf("the error names a Go type:\n%s", out)
			}
			if strings.Contains(out, `"msg":"serving"`) {
				t.Errorf("the relay started serving before failing:\n%s", out)
			}
		})
	}
}

// runToExit runs the binary with args and env to its end and returns its
// exit code and combined output. It never waits more than stopDeadline.
func runToExit(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stopDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, relayBin, args...)
	cmd.Env = append(cleanEnv(), env...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("still running after %s (it should have exited at once); output:\n%s", stopDeadline, out)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatalf("run %s: %v", relayBin, err)
	}
	return 0, string(out)
}

// TestEnvVarsLikeFlags: PYRORELAY_* variables set what the flags set.
func TestEnvVarsLikeFlags(t *testing.T) {
	a, b := newRecorder(t, nil), newRecorder(t, nil)
	dir := t.TempDir()
	relay := startRelayOpts(t, relayOpts{env: []string{
		"PYRORELAY_LISTEN=127.0.0.1:0",
		"PYRORELAY_DATA_DIR=" + dir,
		"PYRORELAY_LOG_FORMAT=json",
		// Comma-separated, as a list flag reads its variable.
		"PYRORELAY_FORWARD_TO=a=" + a.URL() + ",b=" + b.URL(),
		"PYRORELAY_MAX_BODY_SIZE=1KiB",
	}}, "serve")
	mustPostFolded(t, relay.URL, "env")
	for _, d := range []*recorder{a, b} {
		waitFor(t, deliverDeadline, "the profile at "+d.URL(), func() (bool, string) {
			return d.ingestIDs()["env"] == 1, "not yet"
		})
	}
	status, err := post(context.Background(), ingestURL(relay.URL, "big"), "", make([]byte, 2048))
	if err != nil || status != http.StatusRequestEntityTooLarge {
		t.Errorf("2 KiB body with PYRORELAY_MAX_BODY_SIZE=1KiB: status %d, err %v; want 413", status, err)
	}
	relay.stop()
}

// TestFlagsOverrideConfigFile: a flag wins over the same key in the file,
// --forward-to adds to the file's destinations, and replaces the one of
// the same name (its credentials too).
func TestFlagsOverrideConfigFile(t *testing.T) {
	a, b, c := newRecorder(t, nil), newRecorder(t, nil), newRecorder(t, nil)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`listen: 127.0.0.1:1
log_format: text
max_body_size: 1KiB
destinations:
  - name: a
    url: %s
  - name: c
    url: %s
    bearer_token: for-the-old-url
`, a.URL(), closedURL(t)))
	// Started only if --listen and --log-format override the file: the
	// harness reads the address from the JSON "serving" line.
	relay := startRelay(t, filepath.Join(dir, "data"), "--config", cfg, "--max-body-size", "4KiB", "--forward-to", "b="+b.URL(),
		"--forward-to", "c="+c.URL())
	status, err := post(context.Background(), ingestURL(relay.URL, "mid"), "", append(foldedBody("mid"), make([]byte, 2048)...))
	if err != nil || status != http.StatusOK {
		t.Fatalf("2 KiB body with --max-body-size 4KiB over a file's 1KiB: status %d, err %v", status, err)
	}
	for _, d := range []*recorder{a, b, c} {
		waitFor(t, deliverDeadline, "the profile at "+d.URL(), func() (bool, string) {
			return d.ingestIDs()["mid"] == 1, "not yet"
		})
	}
	if h := c.requests()[0].Header.Get("Authorization"); h != "" {
		t.Errorf("the replaced destination c sent the file's credentials: %q", h)
	}
	relay.stop()
}

// TestDataDirInUse: a second relay on a data dir in use refuses to start
// instead of sharing the file.
func TestDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	first := startRelay(t, dir)
	start := time.Now()
	code, out := runToExit(t, nil, baseArgs(dir)...)
	if code == 0 || !strings.Contains(out, "in use") {
		t.Errorf("second relay on the same data dir: exit code %d, output:\n%s", code, out)
	}
	t.Logf("refused after %s", time.Since(start).Round(time.Millisecond))
	first.stop()
}
