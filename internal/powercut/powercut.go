// Package powercut is a FUSE file system for tests that simulates a power
// cut, the way LazyFS does for Jepsen.
//
// A mount passes every operation through to a directory on the real disk,
// except file data: what a process writes is kept aside, in memory, until
// it fsyncs the file (fsync and fdatasync alike write all of the file's
// pending data, then fsync the real file). Cut throws away every byte not
// synced and fails every later write, as if the machine lost power at
// that moment; unmounting drops the kernel's page cache of the mount, so
// that the next mount of the same directory shows only what was synced.
// A SIGKILL alone cannot show that: the page cache survives it.
//
// Metadata (creating, renaming and removing files and directories) is
// applied to the real directory at once, as if every directory were synced
// after each change: the model loses file data that was not fsynced, never
// a name. Only root can mount it without fusermount (DirectMountStrict).
package powercut

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// ErrUnavailable is wrapped by Mount's error when this machine cannot
// mount a FUSE file system: no /dev/fuse, or no permission to mount.
var ErrUnavailable = errors.New("FUSE is not available")

// unmountDeadline bounds how long Unmount waits for the files of a killed
// process to be released.
const unmountDeadline = 30 * time.Second

// FS is one mount. It is safe for concurrent use.
type FS struct {
	backing, mountpoint string
	server              *fuse.Server

	mu     sync.Mutex
	files  map[uint64]*pending // file data not yet synced, by the real file's inode number
	cut    bool
	armed  int // ops until an armed cut; 0 when none is armed
	report CutReport
	writes int // data writes since the mount
	syncs  int // fsyncs since the mount
}

// CutReport says where a cut landed and what it threw away.
type CutReport struct {
	// At is what the cut interrupted: "write", "truncate" or "fsync" for
	// a cut armed with CutAfter (that operation was refused, and nothing
	// after it happened), "now" for Cut.
	At string
	// Writes and Syncs count the data writes and fsyncs the mount applied
	// before the cut.
	Writes, Syncs int
	// Files and Bytes are the files that had unsynced data, and how many
	// bytes (in whole pages) of it the cut threw away.
	Files int
	Bytes int64
}

// Mount mounts a power-cut file system over backing at mountpoint, which
// must exist. The error wraps ErrUnavailable when FUSE cannot be used here.
func Mount(backing, mountpoint string) (*FS, error) {
	dev, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	_ = dev.Close()
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return nil, fmt.Errorf("powercut: backing directory %q: %w", backing, err)
	}
	p := &FS{backing: backing, mountpoint: mountpoint, files: map[uint64]*pending{}}
	rootData := &fs.LoopbackRoot{Path: backing, Dev: uint64(st.Dev)}
	inner := &fs.LoopbackNode{RootData: rootData}
	root := &node{LoopbackNode: inner, pc: p}
	rootData.RootNode = root
	server, err := fs.Mount(mountpoint, root, &fs.Options{
		MountOptions: fuse.MountOptions{
			FsName:            "powercut",
			Name:              "powercut",
			DirectMountStrict: true, // no fusermount needed, or wanted
			DisableXAttrs:     true,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: mount %s: %v", ErrUnavailable, mountpoint, err)
	}
	p.server = server
	return p, nil
}

// Cut simulates a power cut now: every byte written and not synced is
// thrown away, and every later write, fsync, truncate or change of a name
// fails with EIO until the file system is unmounted. A second Cut does
// nothing.
func (p *FS) Cut() CutReport {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutLocked("now")
	return p.report
}

// CutAfter arms a cut: the n-th data write, truncate or fsync from now
// (n >= 1) is refused with EIO and cuts the power instead, so the cut
// lands between two operations of whatever the process was doing (between
// the page writes of a commit and its fsync, say).
func (p *FS) CutAfter(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed = max(n, 1)
}

// Report returns the report of the cut, and whether one happened.
func (p *FS) Report() (CutReport, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.report, p.cut
}

// Unmount cuts the power (unsynced data does not survive an unmount
// either) and unmounts, waiting for the files a killed process held to be
// released. The processes that used the mount must have exited.
func (p *FS) Unmount() error {
	p.Cut()
	deadline := time.Now().Add(unmountDeadline)
	for {
		err := p.server.Unmount()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("powercut: unmount %s: %w", p.mountpoint, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cutLocked cuts the power; at says what the cut interrupted.
func (p *FS) cutLocked(at string) {
	if p.cut {
		return
	}
	p.cut = true
	p.armed = 0
	p.report = CutReport{At: at, Writes: p.writes, Syncs: p.syncs, Files: len(p.files)}
	for _, f := range p.files {
		p.report.Bytes += int64(len(f.pages)) * pageSize
	}
	p.files = map[uint64]*pending{}
}

// admit is called, under mu, before an operation that changes the disk:
// it fails the operation after a cut, and lets an armed cut land on it.
func (p *FS) admit(op string) syscall.Errno {
	if p.armed > 0 {
		p.armed--
		if p.armed == 0 {
			p.cutLocked(op)
		}
	}
	if p.cut {
		return syscall.EIO
	}
	return 0
}

// admitMeta is admit for a change of names: it fails after a cut but
// never is where an armed cut lands.
func (p *FS) admitMeta() syscall.Errno {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return syscall.EIO
	}
	return 0
}

// forget drops the unsynced data of a real file whose last name is gone,
// so that a new file that reuses its inode number does not inherit it.
func (p *FS) forget(ino uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.files, ino)
}

// size returns the size a process sees for the real file ino of real size
// real.
func (p *FS) size(ino uint64, real uint64) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f := p.files[ino]; f != nil {
		return uint64(f.size)
	}
	return real
}

// read reads the file of h at off as the process sees it.
func (p *FS) read(h *handle, dest []byte, off int64) ([]byte, syscall.Errno) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.files[h.ino]
	if f == nil {
		n, err := h.file.ReadAt(dest, off)
		if err != nil && n == 0 && !isEOF(err) {
			return nil, fs.ToErrno(err)
		}
		return dest[:n], 0
	}
	n, err := f.read(h.file, dest, off)
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	return dest[:n], 0
}

// write keeps data aside as the file of h's bytes at off.
func (p *FS) write(h *handle, data []byte, off int64) (uint32, syscall.Errno) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if errno := p.admit("write"); errno != 0 {
		return 0, errno
	}
	f, err := p.pendingLocked(h)
	if err != nil {
		return 0, fs.ToErrno(err)
	}
	if err := f.write(h.file, data, off); err != nil {
		return 0, fs.ToErrno(err)
	}
	p.writes++
	return uint32(len(data)), 0
}

// truncate changes the size the process sees; the real file keeps its
// size until the next fsync.
func (p *FS) truncate(h *handle, size int64) syscall.Errno {
	p.mu.Lock()
	defer p.mu.Unlock()
	if errno := p.admit("truncate"); errno != 0 {
		return errno
	}
	f, err := p.pendingLocked(h)
	if err != nil {
		return fs.ToErrno(err)
	}
	f.truncate(size)
	return 0
}

// sync writes the pending data of h's file to the real file and fsyncs it.
func (p *FS) sync(h *handle) syscall.Errno {
	p.mu.Lock()
	defer p.mu.Unlock()
	if errno := p.admit("fsync"); errno != 0 {
		return errno
	}
	if f := p.files[h.ino]; f != nil {
		if err := f.apply(h.file); err != nil {
			return fs.ToErrno(err)
		}
		delete(p.files, h.ino)
	}
	if err := h.file.Sync(); err != nil {
		return fs.ToErrno(err)
	}
	p.syncs++
	return 0
}

// pendingLocked returns the pending data of h's file, made if it has none.
func (p *FS) pendingLocked(h *handle) (*pending, error) {
	if f := p.files[h.ino]; f != nil {
		return f, nil
	}
	fi, err := h.file.Stat()
	if err != nil {
		return nil, err
	}
	f := newPending(fi.Size())
	p.files[h.ino] = f
	return f, nil
}
