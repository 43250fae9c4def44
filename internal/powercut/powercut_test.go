package powercut

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// mount mounts backing on a new directory, or skips the test when FUSE
// is not available here.
func mount(t *testing.T, backing string) (*FS, string) {
	t.Helper()
	mnt := t.TempDir()
	p, err := Mount(backing, mnt)
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("power-cut file system: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Unmount() })
	return p, mnt
}

func unmount(t *testing.T, p *FS) {
	t.Helper()
	if err := p.Unmount(); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// What was fsynced survives a cut and a remount; what was written after
// it does not, though the process read it back before the cut.
func TestCutKeepsOnlySyncedData(t *testing.T) {
	backing := t.TempDir()
	p, mnt := mount(t, backing)
	path := filepath.Join(mnt, "f")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	synced := bytes.Repeat([]byte("s"), 10_000)
	if _, err := f.WriteAt(synced, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte("u"), 6_000), 7_000); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); len(got) != 13_000 || got[9_000] != 'u' {
		t.Fatalf("before the cut the process reads %d bytes, byte 9000 %q; want 13000, 'u'", len(got), got[9_000])
	}
	if real := readFile(t, filepath.Join(backing, "f")); !bytes.Equal(real, synced) {
		t.Fatalf("the real file holds %d bytes before the cut, want the %d synced", len(real), len(synced))
	}
	r := p.Cut()
	if r.Files != 1 || r.Bytes == 0 {
		t.Fatalf("cut report %+v: want one file with unsynced bytes", r)
	}
	if _, err := f.WriteAt([]byte("x"), 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("write after the cut: %v, want EIO", err)
	}
	_ = f.Close()
	unmount(t, p)

	_, mnt = mount(t, backing)
	if got := readFile(t, filepath.Join(mnt, "f")); !bytes.Equal(got, synced) {
		t.Fatalf("after the cut the file holds %d bytes, want the %d synced", len(got), len(synced))
	}
}

// A truncate is pending like data: a cut undoes it, a fsync makes it real,
// and bytes cut off read as zeros when the file grows again.
func TestTruncatePending(t *testing.T) {
	backing := t.TempDir()
	if err := os.WriteFile(filepath.Join(backing, "f"), bytes.Repeat([]byte("a"), 9_000), 0o600); err != nil {
		t.Fatal(err)
	}
	p, mnt := mount(t, backing)
	path := filepath.Join(mnt, "f")
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(100); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(5_000); err != nil {
		t.Fatal(err)
	}
	got := readFile(t, path)
	if len(got) != 5_000 || got[99] != 'a' || got[100] != 0 || got[4_999] != 0 {
		t.Fatalf("after truncating to 100 and growing to 5000: %d bytes, [99]=%q [100]=%q", len(got), got[99], got[100])
	}
	p.Cut()
	_ = f.Close()
	unmount(t, p)

	p, mnt = mount(t, backing)
	path = filepath.Join(mnt, "f")
	if got := readFile(t, path); len(got) != 9_000 {
		t.Fatalf("after a cut the unsynced truncate left %d bytes, want 9000", len(got))
	}
	f, err = os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(100); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if real := readFile(t, filepath.Join(backing, "f")); len(real) != 100 {
		t.Fatalf("a synced truncate left the real file at %d bytes, want 100", len(real))
	}
}

// An armed cut lands on the n-th write or fsync: that one fails, and so
// does everything after it.
func TestCutAfter(t *testing.T) {
	backing := t.TempDir()
	p, mnt := mount(t, backing)
	f, err := os.OpenFile(filepath.Join(mnt, "f"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p.CutAfter(3)
	if _, err := f.WriteAt([]byte("one"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("two"), 3); !errors.Is(err, syscall.EIO) {
		t.Fatalf("third operation: %v, want EIO", err)
	}
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("fsync after the cut: %v, want EIO", err)
	}
	r, cut := p.Report()
	if !cut || r.At != "write" || r.Writes != 1 || r.Syncs != 1 {
		t.Fatalf("report %+v (cut %v), want a cut at a write after 1 write and 1 fsync", r, cut)
	}
	if real := readFile(t, filepath.Join(backing, "f")); string(real) != "one" {
		t.Fatalf("real file %q, want %q", real, "one")
	}
}

// A file written through a memory map's reader sees its own writes, as
// bbolt reads its pages through mmap while writing with pwrite.
func TestMmapSeesPendingWrites(t *testing.T) {
	_, mnt := mount(t, t.TempDir())
	f, err := os.OpenFile(filepath.Join(mnt, "f"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(2 * pageSize); err != nil {
		t.Fatal(err)
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, 2*pageSize, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	if _, err := f.WriteAt([]byte("page two"), pageSize); err != nil {
		t.Fatal(err)
	}
	if got := string(m[pageSize : pageSize+8]); got != "page two" {
		t.Fatalf("mmap reads %q, want %q", got, "page two")
	}
}
