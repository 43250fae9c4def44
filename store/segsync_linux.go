package store

import (
	"os"
	"syscall"
)

// syncData makes what was written to f durable: its data and the size that
// makes it readable (fdatasync, as bbolt syncs its own file), without the
// times a full fsync writes too.
func syncData(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}
