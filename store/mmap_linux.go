package store

import "syscall"

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
