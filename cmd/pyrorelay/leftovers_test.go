package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pyrorelay/pyrorelay/store"
)

// compact says which leftovers of an interrupted compact it removed.
func TestCompactRemovesLeftovers(t *testing.T) {
	dir := t.TempDir()
	archiveFill(t, dir, 2)
	left := filepath.Join(dir, store.FileName+".compact-4242")
	if err := os.WriteFile(left, make([]byte, 2048), 0o600); err != nil {
		t.Fatal(err)
	}
	r := cliOK(t, "", "compact", "--data-dir", dir)
	if !strings.Contains(r.stdout, "removed "+left) || !strings.Contains(r.stdout, "interrupted") {
		t.Errorf("compact output does not name the leftover it removed:\n%s", r.stdout)
	}
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("leftover still there: %v", err)
	}
}
