package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBasicAuthPasswordFile: a destination's basic auth password comes from
// a file read per request, so a rotated password is used at once.
func TestBasicAuthPasswordFile(t *testing.T) {
	rec := newRecorder(t, nil)
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "password")
	if err := os.WriteFile(pwFile, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, fmt.Sprintf(`destinations:
  - name: a
    url: %s
    min_backoff: 10ms
    max_backoff: 50ms
    basic_auth: {username: relay, password_file: %s}
`, rec.URL(), pwFile))
	p := startRelay(t, filepath.Join(dir, "data"), "--config", cfg)
	defer p.stop()
	auth := func(id string) string {
		var got string
		waitFor(t, deliverDeadline, id+" delivered", func() (bool, string) {
			for _, r := range rec.requests() {
				if strings.Contains(r.RawQuery, id) {
					got = r.Header.Get("Authorization")
					return true, ""
				}
			}
			return false, "not yet"
		})
		return got
	}
	mustPostFolded(t, p.URL, "one")
	if got, want := auth("one"), basicHeader("relay", "first"); got != want {
		t.Errorf("Authorization %q, want %q", got, want)
	}
	if err := os.WriteFile(pwFile, []byte("second\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustPostFolded(t, p.URL, "two")
	if got, want := auth("two"), basicHeader("relay", "second"); got != want {
		t.Errorf("after rotation: Authorization %q, want %q", got, want)
	}
}
