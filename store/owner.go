package store

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// keepOwnerAndMode gives the file at path the permission bits and, where
// they differ from the process's, the owner of the file old describes, so
// that a file rewritten by a command run as root (`sudo pyrorelay compact`)
// stays the relay's to open.
func keepOwnerAndMode(path string, old fs.FileInfo) error {
	if err := os.Chmod(path, old.Mode().Perm()); err != nil {
		return fmt.Errorf("keep mode %v of %s: %w", old.Mode().Perm(), old.Name(), err)
	}
	uid, gid, ok := fileOwner(old)
	if !ok || (uid == os.Geteuid() && gid == os.Getegid()) {
		return nil
	}
	if err := os.Chown(path, uid, gid); err != nil {
		return fmt.Errorf("keep owner %d:%d of %s (run this command as that user, or as root): %w", uid, gid, old.Name(), err)
	}
	return nil
}

// permissionHint says what to do about a store file the process may not
// open: the data is intact, the file belongs to someone else.
func permissionHint(path string) string {
	owner := "another user"
	if fi, err := os.Stat(path); err == nil {
		if uid, gid, ok := fileOwner(fi); ok {
			owner = fmt.Sprintf("uid %d, gid %d, mode %v", uid, gid, fi.Mode().Perm())
		}
	}
	return fmt.Sprintf("the file is intact but belongs to %s, and this process runs as uid %d; "+
		"give it back to the relay's user (chown -R <user>: %s) or run the command as that user",
		owner, os.Geteuid(), filepath.Dir(path))
}
