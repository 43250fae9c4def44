package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReloadOverHTTP: POST /-/reload reloads like SIGHUP, needs the admin
// API's credentials, answers 500 with the reason when the file does not
// load, and the two metrics say how the last reload went; a reload that
// restarts the receiver it came through still answers.
func TestReloadOverHTTP(t *testing.T) {
	d1, d2 := newRecorder(t, nil), newRecorder(t, nil)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, fastDestinations(map[string]string{"d1": d1.URL()}))
	// A fixed port: the receiver restarted below comes back on it.
	p := startRelayOpts(t, relayOpts{}, "serve", "--listen", freePort(t), "--data-dir", filepath.Join(dir, "data"),
		"--log-format", "json", "--config", cfg, "--auth-bearer-token-file", tokens)
	defer p.stop()
	c := &http.Client{}
	post := func(method, token string) (int, string) {
		t.Helper()
		hdr := map[string]string{}
		if token != "" {
			hdr["Authorization"] = "Bearer " + token
		}
		code, _, body, err := accessDo(c, method, p.URL+"/-/reload", nil, hdr)
		if err != nil {
			t.Fatal(err)
		}
		return code, body
	}
	okMetric := "pyrorelay_config_last_reload_successful"
	tsMetric := "pyrorelay_config_last_reload_success_timestamp_seconds"
	m := scrape(t, p.URL)
	if m[okMetric] != 1 || m[tsMetric] <= 0 {
		t.Fatalf("at start: %s %v, %s %v", okMetric, m[okMetric], tsMetric, m[tsMetric])
	}
	start := m[tsMetric]

	if code, body := post(http.MethodPost, ""); code != http.StatusUnauthorized {
		t.Errorf("POST without credentials: %d %s", code, body)
	}
	if code, body := post(http.MethodPost, "wrong"); code != http.StatusUnauthorized {
		t.Errorf("POST with a wrong token: %d %s", code, body)
	}
	if code, body := post(http.MethodGet, "s3cret"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d %s", code, body)
	}

	writeConfig(t, dir, fastDestinations(map[string]string{"d1": d1.URL(), "d2": d2.URL()}))
	if code, body := post(http.MethodPost, "s3cret"); code != http.StatusOK {
		t.Fatalf("POST: %d %s", code, body)
	}
	waitFor(t, deliverDeadline, "the reload line adding d2", func() (bool, string) {
		return hasLogLine(p.Stderr.String(), "INFO", "configuration reloaded", `"destinations_added":"d2"`), "not yet"
	})
	if code, _, body, err := accessDo(c, http.MethodPost, ingestURL(p.URL, "after-reload"), foldedBody("after-reload"),
		map[string]string{"Authorization": "Bearer s3cret"}); err != nil || code != http.StatusOK {
		t.Fatalf("ingest: %d %s %v", code, body, err)
	}
	waitFor(t, deliverDeadline, "d2 gets the request", func() (bool, string) {
		return d2.ingestIDs()["after-reload"] == 1, fmt.Sprint(d2.ingestIDs())
	})
	if m := scrape(t, p.URL); m[okMetric] != 1 || m[tsMetric] < start {
		t.Errorf("after a reload: %s %v, %s %v (start %v)", okMetric, m[okMetric], tsMetric, m[tsMetric], start)
	}

	writeConfig(t, dir, "destinations: [oops\n")
	code, body := post(http.MethodPost, "s3cret")
	if code != http.StatusInternalServerError || !strings.Contains(body, "does not load") {
		t.Errorf("POST with a broken file: %d %s", code, body)
	}
	if m := scrape(t, p.URL); m[okMetric] != 0 {
		t.Errorf("after a failed reload: %s %v, want 0", okMetric, m[okMetric])
	}

	// A reload that restarts the receiver it came through (a new
	// max_body_size): the answer does not wait for its own receiver.
	writeConfig(t, dir, fastDestinations(map[string]string{"d1": d1.URL(), "d2": d2.URL()})+"max_body_size: 1MiB\n")
	code, body = post(http.MethodPost, "s3cret")
	if code != http.StatusOK && code != http.StatusAccepted {
		t.Errorf("POST restarting its own receiver: %d %s", code, body)
	}
	waitFor(t, deliverDeadline, "the receiver restarted", func() (bool, string) {
		return len(servingLines(p)["default"]) == 2, fmt.Sprint(servingLines(p))
	})
	if m := scrape(t, p.URL); m[okMetric] != 1 {
		t.Errorf("after the restarting reload: %s %v, want 1", okMetric, m[okMetric])
	}
}
