package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/store"
)

func TestSalvageCommand(t *testing.T) {
	dir := t.TempDir()
	archiveFill(t, dir, 3)
	cliFill(t, dir, "prod", cliDataset(t, 6, time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)))
	path := filepath.Join(dir, store.FileName)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(t.TempDir(), "salvaged")
	r := cliOK(t, "", "salvage", "--data-dir", dir, "--to", to)
	for _, want := range []string{`queue "prod"`, "archive", "copied 9 entries", "nothing was damaged", "mv " + path} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("salvage output lacks %q:\n%s", want, r.stdout)
		}
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Error("salvage changed the old file")
	}
	r = cliOK(t, "", "queue", "status", "--data-dir", to)
	if !strings.Contains(r.stdout, "prod") {
		t.Errorf("salvaged store does not show queue prod:\n%s", r.stdout)
	}
	if r := cliRun(t, "", "salvage", "--data-dir", dir, "--to", to); r.err == nil || !strings.Contains(r.err.Error(), "holds a store already") {
		t.Errorf("salvage into a used directory: %v", r.err)
	}
}
