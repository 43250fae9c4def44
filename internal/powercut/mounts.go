package powercut

import (
	"errors"
	"testing"
)

// Mounts mounts the same backing directory again and again on one mount
// point, for a test that cuts the power round after round: each round is
// Mount, load, Cut, Unmount. Where FUSE is unavailable, Mount skips the
// test; a mount still up when the test ends is unmounted.
type Mounts struct {
	t            testing.TB
	backing, mnt string
	mounted      *FS
}

// NewMounts returns the mounts of backing on mnt for t. Call it after the
// t.TempDir calls that made them: its cleanup then runs before theirs.
func NewMounts(t testing.TB, backing, mnt string) *Mounts {
	m := &Mounts{t: t, backing: backing, mnt: mnt}
	t.Cleanup(func() {
		if m.mounted != nil {
			_ = m.mounted.Unmount()
		}
	})
	return m
}

// Mount mounts backing on mnt, failing or skipping the test if it cannot.
func (m *Mounts) Mount() *FS {
	m.t.Helper()
	fsys, err := Mount(m.backing, m.mnt)
	if errors.Is(err, ErrUnavailable) {
		m.t.Skipf("no power-cut file system here: %v", err)
	}
	if err != nil {
		m.t.Fatal(err)
	}
	m.mounted = fsys
	return fsys
}

// Unmount unmounts the current mount, failing the test if it cannot.
func (m *Mounts) Unmount() {
	m.t.Helper()
	if err := m.mounted.Unmount(); err != nil {
		m.t.Fatal(err)
	}
	m.mounted = nil
}
