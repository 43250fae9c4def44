package store

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// crashImage fills a store whose commits leave the free-page list off the
// disk once it passes syncMax bytes, acknowledges some entries, and
// returns a copy of its file as a crash would leave it, and how many big
// records (each in a bucket of its own) the copy holds.
func crashImage(t *testing.T, syncMax int) (dir string, big int) {
	t.Helper()
	// A file over the walk size, whose commits go by the list's length.
	s := openStore(t, t.TempDir(), Options{freelistSyncMax: syncMax, freelistWalkMax: 1, RecentBytes: -1})
	for i := range 30 {
		size := 6000 + i // more than half a page: a bucket of its own
		if i%3 == 0 {
			size = 100 + i // a plain value in the entries bucket
		}
		mustPut(t, s, strings.Repeat("x", size), "a")
	}
	items, _ := readAll(t, s, "a", 30)
	mustAck(t, s, "a", seqs(items[:12])...)
	for _, it := range items[12:] {
		if len(it.Entry.Body) >= 6000 {
			big++
		}
	}
	// What the walk reads ahead are the pages of records in bbolt's
	// pages (schema 2); records in the log are no pages of bbolt's.
	toSchema2(t, s)
	return crashCopy(t, s), big
}

// TestWarmWalk: opening for writes a file whose last commit left the
// free-page list off the disk first asks the kernel for the first page of
// every big record held (what bbolt's walk is about to read), skipping
// those in the page cache; a file with its list on disk asks for nothing.
func TestWarmWalk(t *testing.T) {
	none := func(uintptr, int64) []byte { return nil }
	all := func(_ uintptr, n int64) []byte {
		v := make([]byte, (n+int64(os.Getpagesize())-1)/int64(os.Getpagesize()))
		for i := range v {
			v[i] = 1
		}
		return v
	}
	for _, tc := range []struct {
		name     string
		syncMax  int // 0: the default, which writes a short list
		resident func(uintptr, int64) []byte
		readOnly bool
		want     func(big int) int
	}{
		{"list left off, nothing cached", 16, none, false, func(big int) int { return big }},
		{"list left off, all cached", 16, all, false, func(int) int { return 0 }},
		{"list left off, read only", 16, none, true, func(int) int { return 0 }},
		{"list on disk", 0, none, false, func(int) int { return 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, big := crashImage(t, tc.syncMax)
			if big == 0 {
				t.Fatal("the crash image holds no big record")
			}
			var pages []uintptr
			ps := uintptr(os.Getpagesize())
			opening := true // later calls are ReadBatch's own read-ahead
			s := openStore(t, dir, Options{
				ReadOnly: tc.readOnly,
				resident: tc.resident,
				willNeed: func(addr uintptr, n int64) {
					if !opening {
						return
					}
					if n != int64(ps) {
						t.Errorf("asked for %d bytes, want one page (%d)", n, ps)
					}
					pages = append(pages, addr)
				},
			})
			opening = false
			if got := len(pages); got != tc.want(big) {
				t.Errorf("asked for %d pages, want %d (%d big records held)", got, tc.want(big), big)
			}
			seen := map[uintptr]bool{}
			for _, p := range pages {
				if p%ps != 0 || seen[p] {
					t.Errorf("page at %#x: unaligned or asked for twice", p)
				}
				seen[p] = true
			}
			got, _ := readAll(t, s, "a", 100)
			if len(got) != 18 {
				t.Errorf("after the crash: %d entries, want the 18 not acknowledged", len(got))
			}
		})
	}
}

// TestWarmWalkResident: with the file just written, the real page-cache
// check finds its pages there and nothing is asked for (Linux; elsewhere
// it cannot tell, and every page is asked for).
func TestWarmWalkResident(t *testing.T) {
	dir, big := crashImage(t, 16)
	asked := 0
	openStore(t, dir, Options{willNeed: func(uintptr, int64) { asked++ }})
	want := 0
	if runtime.GOOS != "linux" {
		want = big
	}
	if asked != want {
		t.Errorf("asked for %d pages of a file in the page cache, want %d", asked, want)
	}
}

// TestFreelistPage reads the newest valid meta page, as bbolt does: a meta
// page torn by a crash (bad checksum) is passed over for the other one.
func TestFreelistPage(t *testing.T) {
	dir, _ := crashImage(t, 16)
	path := filepath.Join(dir, FileName)
	if page, err := freelistPage(path); err != nil || page != noFreelist {
		t.Fatalf("crash image: freelistPage = %d, %v; want noFreelist", page, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := os.Getpagesize()
	meta := func(i int) []byte { return b[i*ps+metaOffset:] }
	newest := 0
	if binary.NativeEndian.Uint64(meta(1)[metaTxidAt:]) > binary.NativeEndian.Uint64(meta(0)[metaTxidAt:]) {
		newest = 1
	}
	older := binary.NativeEndian.Uint64(meta(1 - newest)[metaFreelistAt:])

	meta(newest)[metaSumAt] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if page, err := freelistPage(path); err != nil || page != older {
		t.Errorf("newest meta torn: freelistPage = %d, %v; want the older meta's %d", page, err, older)
	}
	meta(1 - newest)[metaSumAt] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := freelistPage(path); err == nil {
		t.Error("both metas torn: no error")
	}
	if _, err := freelistPage(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file: no error")
	}
}

// TestWarmWalkDamaged: a crash image whose entries bucket is damaged makes
// bbolt panic. In its walk that panic would end the process (the walk runs
// in a goroutine of bbolt's own); met first by the read-ahead, it becomes
// Open's usual refusal, which says how to recover.
func TestWarmWalkDamaged(t *testing.T) {
	dir, _ := crashImage(t, 16)
	path := filepath.Join(dir, FileName)
	db, err := openBolt(path, Options{ReadOnly: true, LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var root uint64
	_ = db.View(func(tx *bolt.Tx) error {
		root = uint64(tx.Bucket(bucketEntries).Root())
		return nil
	})
	_ = db.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := uint64(os.Getpagesize())
	for i := root * ps; i < (root+1)*ps; i++ {
		b[i] = 0xA5
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	asked := 0
	s, err := Open(dir, Options{resident: func(uintptr, int64) []byte { return nil }, willNeed: func(uintptr, int64) { asked++ }})
	if err == nil {
		_ = s.Close()
		t.Fatal("Open took a file whose entries bucket is garbage")
	}
	if !strings.Contains(err.Error(), "bbolt check") {
		t.Errorf("error %q does not say how to recover", err)
	}
}
