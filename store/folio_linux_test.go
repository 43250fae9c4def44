package store

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// procIOCounter reads one counter of /proc/self/io; ok false where there
// is none.
func procIOCounter(t *testing.T, name string) (n int64, ok bool) {
	t.Helper()
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, found := strings.CutPrefix(sc.Text(), name+": "); found {
			n, err := strconv.ParseInt(v, 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// TestCommitsDirtyOnlyTheirPages: by the kernel's count (write_bytes),
// commits of small records dirty no more of the page cache than the bytes
// they write, both in a new file and in one opened again: bbolt's pages
// are not rewritten inside folios of several pages (see pageFolios). The
// meta page every commit rewrites sat in the folio of a new file's first
// pages, and the checks at Open read a file not in the page cache with
// read-ahead, which caches it in such folios.
func TestCommitsDirtyOnlyTheirPages(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reopen bool
	}{
		{"new file", false},
		{"file opened again, not cached", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, t.TempDir(), Options{})
			for range 200 {
				mustPut(t, s, strings.Repeat("w", 100), "a")
			}
			if tc.reopen {
				// Opened again from the disk, as after a reboot.
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				dropCached(s.Path(), 0, 0)
				s = openStore(t, filepath.Dir(s.Path()), Options{})
			}
			w0, okW := procIOCounter(t, "wchar")
			d0, okD := procIOCounter(t, "write_bytes")
			if !okW || !okD {
				t.Skip("no write counters in /proc/self/io")
			}
			c0, _ := s.CommitCounts()
			for range 50 {
				mustPut(t, s, strings.Repeat("x", 100), "a")
			}
			w1, _ := procIOCounter(t, "wchar")
			d1, _ := procIOCounter(t, "write_bytes")
			c1, _ := s.CommitCounts()
			written, dirtied := w1-w0, d1-d0
			if dirtied == 0 {
				t.Skip("write_bytes does not count here")
			}
			t.Logf("%d commits: %d bytes written, %d dirtied", c1-c0, written, dirtied)
			if dirtied > written+written/10 {
				t.Errorf("commits dirtied %d bytes of page cache for %d bytes written", dirtied, written)
			}
		})
	}
}
