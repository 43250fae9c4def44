package store

import (
	"os"
	"syscall"
	"unsafe"
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
