package powercut

import (
	"context"
	"os"
	"path/filepath"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// node is a file or directory of the mount: a loopback node whose file
// data goes through the FS's pending data.
type node struct {
	*fs.LoopbackNode
	pc *FS
}

var (
	_ fs.NodeWrapChilder = (*node)(nil)
	_ fs.NodeLookuper    = (*node)(nil)
	_ fs.NodeOpener      = (*node)(nil)
	_ fs.NodeCreater     = (*node)(nil)
	_ fs.NodeGetattrer   = (*node)(nil)
	_ fs.NodeSetattrer   = (*node)(nil)
	_ fs.NodeStatxer     = (*node)(nil)
	_ fs.NodeUnlinker    = (*node)(nil)
	_ fs.NodeRenamer     = (*node)(nil)
	_ fs.NodeMkdirer     = (*node)(nil)
	_ fs.NodeFsyncer     = (*node)(nil)
)

// WrapChild makes every node the loopback creates one of ours.
func (n *node) WrapChild(_ context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &node{LoopbackNode: ops.(*fs.LoopbackNode), pc: n.pc}
}

// realPath is the node's path in the backing directory.
func (n *node) realPath() string {
	return filepath.Join(n.RootData.Path, n.Path(nil))
}

// Lookup reports the size the process sees.
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ch, errno := n.LoopbackNode.Lookup(ctx, name, out)
	if errno == 0 {
		out.Attr.Size = n.pc.size(out.Attr.Ino, out.Attr.Size)
	}
	return ch, errno
}

// Statx is refused, so the kernel asks Getattr, which knows the size the
// process sees.
func (n *node) Statx(context.Context, fs.FileHandle, uint32, uint32, *fuse.StatxOut) syscall.Errno {
	return syscall.ENOSYS
}

// Getattr reports the real file's attributes with the size the process
// sees.
func (n *node) Getattr(_ context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	var st syscall.Stat_t
	var err error
	if h, ok := f.(*handle); ok {
		err = syscall.Fstat(int(h.file.Fd()), &st)
	} else {
		err = syscall.Lstat(n.realPath(), &st)
	}
	if err != nil {
		return fs.ToErrno(err)
	}
	out.FromStat(&st)
	out.Size = n.pc.size(st.Ino, out.Size)
	return 0
}

// Setattr keeps a change of size pending like written data; other
// attributes go to the real file.
func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok {
		h, own := f.(*handle)
		if !own {
			var errno syscall.Errno
			if h, errno = n.openHandle(); errno != 0 {
				return errno
			}
			defer h.Release(ctx)
		}
		if errno := n.pc.truncate(h, int64(size)); errno != 0 {
			return errno
		}
		in.Valid &^= fuse.FATTR_SIZE
	}
	if in.Valid&^(fuse.FATTR_FH|fuse.FATTR_LOCKOWNER) != 0 {
		if errno := n.LoopbackNode.Setattr(ctx, nil, in, out); errno != 0 {
			return errno
		}
	}
	return n.Getattr(ctx, f, out)
}

// Open opens the real file for reading and writing whatever the process
// asked (its writes stay pending; a fsync writes them through this
// handle); O_TRUNC becomes a pending truncate.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	h, errno := n.openHandle()
	if errno != 0 {
		return nil, 0, errno
	}
	if flags&syscall.O_TRUNC != 0 {
		if errno := n.pc.truncate(h, 0); errno != 0 {
			h.Release(ctx)
			return nil, 0, errno
		}
	}
	return h, 0, 0
}

func (n *node) openHandle() (*handle, syscall.Errno) {
	f, err := os.OpenFile(n.realPath(), os.O_RDWR, 0)
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	return newHandle(n.pc, f)
}

// Create makes the file at once (names are never lost) with its data
// pending.
func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if errno := n.pc.admitMeta(); errno != 0 {
		return nil, nil, 0, errno
	}
	trunc := flags&syscall.O_TRUNC != 0
	ch, lf, _, errno := n.LoopbackNode.Create(ctx, name, flags&^syscall.O_TRUNC, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	if r, ok := lf.(fs.FileReleaser); ok {
		r.Release(ctx)
	}
	f, err := os.OpenFile(filepath.Join(n.realPath(), name), os.O_RDWR, 0)
	if err != nil {
		return nil, nil, 0, fs.ToErrno(err)
	}
	h, errno := newHandle(n.pc, f)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	if trunc {
		if errno := n.pc.truncate(h, 0); errno != 0 {
			h.Release(ctx)
			return nil, nil, 0, errno
		}
	}
	out.Attr.Size = n.pc.size(out.Attr.Ino, out.Attr.Size)
	return ch, h, 0, 0
}

// Fsync syncs a file's pending data; a directory has none (names are
// applied at once).
func (n *node) Fsync(_ context.Context, f fs.FileHandle, _ uint32) syscall.Errno {
	if h, ok := f.(*handle); ok {
		return n.pc.sync(h)
	}
	return n.pc.admitMeta()
}

// Mkdir fails after a cut.
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if errno := n.pc.admitMeta(); errno != 0 {
		return nil, errno
	}
	return n.LoopbackNode.Mkdir(ctx, name, mode, out)
}

// Unlink removes the name at once; the data of a file that loses its last
// name goes with it.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if errno := n.pc.admitMeta(); errno != 0 {
		return errno
	}
	gone := n.lastLink(filepath.Join(n.realPath(), name))
	errno := n.LoopbackNode.Unlink(ctx, name)
	if errno == 0 && gone != 0 {
		n.pc.forget(gone)
	}
	return errno
}

// Rename renames at once; a file the rename replaces loses its data.
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if errno := n.pc.admitMeta(); errno != 0 {
		return errno
	}
	var gone uint64
	if np, ok := newParent.(*node); ok && flags == 0 {
		gone = n.lastLink(filepath.Join(np.realPath(), newName))
	}
	errno := n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
	if errno == 0 && gone != 0 {
		n.pc.forget(gone)
	}
	return errno
}

// lastLink returns the inode number of the file at path if path is its
// only name, else 0.
func (n *node) lastLink(path string) uint64 {
	var st syscall.Stat_t
	if syscall.Lstat(path, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Nlink != 1 {
		return 0
	}
	return st.Ino
}

// handle is an open file of the mount: the real file, opened for reading
// and writing, and its inode number, the key of its pending data.
type handle struct {
	pc   *FS
	file *os.File
	ino  uint64
}

var (
	_ fs.FileReader    = (*handle)(nil)
	_ fs.FileWriter    = (*handle)(nil)
	_ fs.FileFsyncer   = (*handle)(nil)
	_ fs.FileFlusher   = (*handle)(nil)
	_ fs.FileReleaser  = (*handle)(nil)
	_ fs.FileGetattrer = (*handle)(nil)
)

func newHandle(pc *FS, f *os.File) (*handle, syscall.Errno) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		_ = f.Close()
		return nil, fs.ToErrno(err)
	}
	return &handle{pc: pc, file: f, ino: st.Ino}, 0
}

func (h *handle) Read(_ context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	b, errno := h.pc.read(h, dest, off)
	if errno != 0 {
		return nil, errno
	}
	return fuse.ReadResultData(b), 0
}

func (h *handle) Write(_ context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	return h.pc.write(h, data, off)
}

// Fsync writes the file's pending data and fsyncs it; fdatasync does the
// same.
func (h *handle) Fsync(context.Context, uint32) syscall.Errno {
	return h.pc.sync(h)
}

// Flush (close) writes nothing: closing a file does not make it durable.
func (h *handle) Flush(context.Context) syscall.Errno { return 0 }

func (h *handle) Release(context.Context) syscall.Errno {
	return fs.ToErrno(h.file.Close())
}

func (h *handle) Getattr(_ context.Context, out *fuse.AttrOut) syscall.Errno {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(h.file.Fd()), &st); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStat(&st)
	out.Size = h.pc.size(st.Ino, out.Size)
	return 0
}
