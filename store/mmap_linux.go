package store

import (
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// dropMapped unmaps the pages of [addr, addr+n) from this process with
// madvise(MADV_DONTNEED). For bbolt's read-only shared file mapping that
// only drops page-table entries: the data stays in the page cache and on
// disk, and the next read faults it back in.
func dropMapped(addr uintptr, n int64) {
	if addr == 0 || n <= 0 {
		return
	}
	_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, addr, uintptr(n), syscall.MADV_DONTNEED)
}

// adviseWillNeed asks the kernel, with madvise(MADV_WILLNEED), to read the
// file pages behind [addr, addr+n) of bbolt's mapping into the page cache in
// the background. It is a hint: it changes no data, and a failure only
// leaves the reads to the page faults.
func adviseWillNeed(addr uintptr, n int64) {
	if addr == 0 || n <= 0 {
		return
	}
	_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, addr, uintptr(n), syscall.MADV_WILLNEED)
}

// residentPages reports with mincore which pages of the memory map
// [addr, addr+n) are in the page cache: bit 0 of byte i is set when the
// i-th page (os.Getpagesize() bytes) is. It returns nil when it cannot
// tell.
func residentPages(addr uintptr, n int64) []byte {
	ps := int64(os.Getpagesize())
	if addr == 0 || n <= 0 {
		return nil
	}
	vec := make([]byte, (n+ps-1)/ps)
	if _, _, errno := syscall.Syscall(syscall.SYS_MINCORE, addr, uintptr(n), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		return nil
	}
	return vec
}

// dropCached asks the kernel to drop the page-cache pages of [off, off+n)
// of the file at path, with posix_fadvise(POSIX_FADV_DONTNEED). It
// changes no data: the kernel writes dirty pages back and keeps them, and
// drops only clean ones no process maps. A failure only leaves the pages
// cached.
func dropCached(path string, off, n int64) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	_ = unix.Fadvise(int(f.Fd()), off, n, unix.FADV_DONTNEED)
}

// readWithoutReadAhead turns the kernel's read-ahead off for the plain
// reads of f, with posix_fadvise(POSIX_FADV_RANDOM): each read brings
// into the page cache only the pages it asks for. A failure only leaves
// read-ahead on.
func readWithoutReadAhead(f *os.File) {
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM)
}
