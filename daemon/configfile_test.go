package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeConfig writes yaml as dir/pyrorelay.yaml and returns its path.
func writeConfig(t *testing.T, dir, yaml string) string {
	t.Helper()
	path := filepath.Join(dir, "pyrorelay.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestExpandValue(t *testing.T) {
	env := map[string]string{"HOST": "pyro.example.com", "EMPTY": "", "PW": `a #b: "c' $d`}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, tc := range []struct{ in, want, err string }{
		{in: "plain", want: "plain"},
		{in: "https://${HOST}/x", want: "https://pyro.example.com/x"},
		{in: "${PW}", want: `a #b: "c' $d`},
		{in: "${NOPE:-http://localhost:4040}", want: "http://localhost:4040"},
		{in: "${EMPTY:-fallback}", want: "fallback"},
		{in: "${EMPTY}", want: ""},
		{in: "${HOST:-other}", want: "pyro.example.com"},
		{in: "pa$$word", want: "pa$word"},
		{in: "$${HOST}", want: "${HOST}"},
		{in: "$2y$10$abc", want: "$2y$10$abc"}, // a $ before anything else stays
		{in: "cost $5", want: "cost $5"},
		{in: "${NOPE}", err: "environment variable NOPE is not set (write ${NOPE:-default} to give a default)"},
		{in: "${1BAD}", err: "is not ${NAME} or ${NAME:-default}"},
		{in: "${HOST", err: "is not ${NAME} or ${NAME:-default}"},
	} {
		got, err := expandValue(tc.in, lookup)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: err %v, want %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("%q = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestConfigFileEnvironment: values come from the environment, typed after
// expansion; keys are never expanded; a missing variable names its line.
func TestConfigFileEnvironment(t *testing.T) {
	t.Setenv("PYRO_URL", "https://profiles.example.com")
	t.Setenv("PYRO_PW", `s3cret #1: "x"`)
	t.Setenv("PYRO_TIMEOUT", "7s")
	t.Setenv("PYRO_CONNS", "17")
	dir := t.TempDir()
	path := writeConfig(t, dir, `
max_connections: ${PYRO_CONNS}
data_dir: ${PYRO_DATA:-/var/lib/pyrorelay}
destinations:
  - name: prod
    url: ${PYRO_URL}
    timeout: ${PYRO_TIMEOUT}
    basic_auth: {username: relay, password: "${PYRO_PW}"}
    headers:
      X-Literal: "$${NOT_EXPANDED}"
`)
	cfg := DefaultConfig()
	if err := LoadConfigFile(path, &cfg); err != nil {
		t.Fatal(err)
	}
	d := cfg.Destinations[0]
	if cfg.MaxConnections != 17 || cfg.DataDir != "/var/lib/pyrorelay" || d.URL != "https://profiles.example.com" ||
		d.Timeout != 7*time.Second || d.BasicAuth.Password != `s3cret #1: "x"` || d.Headers["X-Literal"] != "${NOT_EXPANDED}" {
		t.Errorf("expanded config: %+v, destination %#v, password %q, headers %v", cfg, d, d.BasicAuth.Password, d.Headers)
	}

	path = writeConfig(t, dir, "listen: \":4040\"\ndestinations:\n  - name: prod\n    url: ${PYRO_MISSING_URL}\n")
	err := LoadConfigFile(path, &cfg)
	if err == nil || !strings.Contains(err.Error(), "line 4: environment variable PYRO_MISSING_URL is not set") {
		t.Errorf("missing variable: %v", err)
	}
}
