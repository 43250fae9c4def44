//go:build !linux

package store

import "os"

// dropMapped does nothing where madvise is not wired up.
func dropMapped(addr uintptr, n int64) {}

// adviseWillNeed does nothing where madvise is not wired up.
func adviseWillNeed(addr uintptr, n int64) {}

// residentPages cannot tell where mincore is not wired up.
func residentPages(addr uintptr, n int64) []byte { return nil }

// dropCached does nothing where posix_fadvise is not wired up.
func dropCached(path string, off, n int64) {}

// readWithoutReadAhead does nothing where posix_fadvise is not wired up.
func readWithoutReadAhead(f *os.File) {}
