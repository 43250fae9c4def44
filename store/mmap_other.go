//go:build !linux

package store

// dropMapped does nothing where madvise is not wired up.
func dropMapped(addr uintptr, n int64) {}
