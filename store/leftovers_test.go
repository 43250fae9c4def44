package store

import (
	"os"
	"path/filepath"
	"testing"
)

// plantLeftover writes what a compact killed part-way leaves behind.
func plantLeftover(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, make([]byte, 64<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLeftoversOfInterruptedCompactAreRemoved(t *testing.T) {
	dir := t.TempDir()
	s2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	admFill(t, s2, 3, "q")
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	other := plantLeftover(t, dir, "pyrorelay.db.bak")
	left := plantLeftover(t, dir, FileName+".compact-123456")

	// A read-only open takes no exclusive lock: it must not touch them.
	ro, err := OpenReadOnly(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = ro.Close()
	if _, err := os.Stat(left); err != nil {
		t.Fatalf("read-only open removed %s: %v", left, err)
	}

	s3, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := s3.RemovedLeftovers()
	_ = s3.Close()
	if len(got) != 1 || got[0].Path != left || got[0].Bytes != 64<<10 {
		t.Errorf("Open removed %+v, want %s", got, left)
	}
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("%s still there after Open: %v", left, err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("Open removed a file that is not a compact's: %v", err)
	}

	left = plantLeftover(t, dir, FileName+".compact-999")
	res, err := Compact(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 1 || res.Removed[0].Path != left {
		t.Errorf("Compact removed %+v, want %s", res.Removed, left)
	}
	matches, _ := filepath.Glob(filepath.Join(dir, compactPattern))
	if len(matches) != 0 {
		t.Errorf("compact files left after Compact: %v", matches)
	}
}
