package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pyrorelay/pyrorelay/exportfile"
	"github.com/pyrorelay/pyrorelay/store"
)

// TestReadingCommandsOverAdminAPI: dead-letter list and export work on a
// running relay with --url and the admin API's credentials, give what they
// give on a data dir, and the data-dir form names --url when the relay
// holds the lock.
func TestReadingCommandsOverAdminAPI(t *testing.T) {
	bad, down := newRecorder(t, nil), newRecorder(t, nil)
	bad.mode.Store(modeBad)
	down.mode.Store(modeDown)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	cfg := writeConfig(t, dir, fastDestinations(map[string]string{"bad": bad.URL(), "down": down.URL()}))
	p := startRelay(t, data, "--config", cfg, "--auth-bearer-token-file", tokens)
	defer p.stop()
	auth := map[string]string{"Authorization": "Bearer s3cret"}
	for _, id := range []string{"r1", "r2", "r3"} {
		if code, _, body, err := accessDo(h2cClient(), "POST", ingestURL(p.URL, id), foldedBody(id), auth); err != nil || code != 200 {
			t.Fatalf("ingest %s: %d %s %v", id, code, body, err)
		}
	}
	waitFor(t, deliverDeadline, "3 dead letters of bad", func() (bool, string) {
		m := scrape(t, p.URL)
		got := m[`pyrorelay_dead_letter_entries{destination="bad"}`]
		return got == 3, fmt.Sprint(got)
	})
	remote := []string{"--url", p.URL, "--bearer-token-file", tokens}

	r := cliOK(t, "", append([]string{"dead-letter", "list", "--destination", "bad"}, remote...)...)
	if !strings.Contains(r.stdout, "3 dead letters") || strings.Count(r.stdout, "400") < 3 || !strings.Contains(r.stdout, "app.cpu{env=e2e}") {
		t.Errorf("dead-letter list --url:\n%s", r.stdout)
	}
	r = cliOK(t, "", append([]string{"dead-letter", "list", "--destination", "bad", "--json"}, remote...)...)
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 3 || !strings.Contains(lines[0], `"reason":`) {
		t.Errorf("dead-letter list --url --json:\n%s", r.stdout)
	}

	out := filepath.Join(t.TempDir(), "export")
	r = cliOK(t, "", append([]string{"export", "--destination", "down", "--out", out}, remote...)...)
	if !strings.Contains(r.stderr, "exported 3 entries") {
		t.Errorf("export --url: %s", r.stderr)
	}
	node := filepath.Join(t.TempDir(), "node")
	cliOK(t, "", "import", out, "--destination", "down", "--data-dir", node)
	if got := cliEntries(t, node, store.QueueSource("down")); len(got) != 3 {
		t.Errorf("the export of the running relay imports %d entries, want 3", len(got))
	}

	// The filters apply on the relay.
	for _, tc := range []struct {
		app  string
		want int
	}{{"app{env=e2e}", 3}, {"other", 0}} {
		r = cliOK(t, "", append([]string{"export", "--dead-letter", "bad", "--out", "-", "--app", tc.app}, remote...)...)
		sc := bufio.NewScanner(strings.NewReader(r.stdout))
		sc.Buffer(nil, 1<<20)
		n := 0
		for sc.Scan() {
			var x exportfile.Record
			if err := json.Unmarshal(sc.Bytes(), &x); err != nil || len(x.Body) == 0 || x.From != "dead-letter:bad" {
				t.Errorf("ndjson line %q: %v", sc.Text(), err)
			}
			n++
		}
		if n != tc.want {
			t.Errorf("export --url --app %s gave %d lines, want %d:\n%s", tc.app, n, tc.want, r.stdout)
		}
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dead-letter", "list", "--destination", "bad", "--url", p.URL}, "wants credentials"},
		{append([]string{"export", "--destination", "nosuch", "--out", "-"}, remote...), `no queue "nosuch"`},
		{[]string{"dead-letter", "list", "--destination", "bad", "--data-dir", data}, "add --url http://HOST:PORT"},
		{[]string{"export", "--destination", "down", "--out", "-", "--data-dir", data}, "add --url"},
	} {
		if r := cliRun(t, "", tc.args...); r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.args, r.err, tc.want)
		}
	}
}

// TestHelpSaysWhichCommandsNeedTheRelayStopped: the commands that change
// the data dir say they need the relay stopped; the reading ones offer --url.
func TestHelpSaysWhichCommandsNeedTheRelayStopped(t *testing.T) {
	for _, args := range [][]string{{"queue", "move"}, {"import"}, {"compact"}, {"drain"}, {"dead-letter", "requeue"}, {"dead-letter", "purge"}, {"archive", "purge"}, {"salvage"}} {
		if out := cliOK(t, "", append(args, "--help")...).stdout; !strings.Contains(out, "stopped") {
			t.Errorf("%q --help does not say it needs the relay stopped:\n%s", args, out)
		}
	}
	for _, args := range [][]string{{"queue", "status"}, {"export"}, {"dead-letter", "list"}} {
		if out := cliOK(t, "", append(args, "--help")...).stdout; !strings.Contains(out, "--url URL") {
			t.Errorf("%q --help has no --url:\n%s", args, out)
		}
	}
	if out := cliOK(t, "", "--help").stdout; !strings.Contains(out, "holds its data dir locked") {
		t.Errorf("pyrorelay --help does not say why:\n%s", out)
	}
}
