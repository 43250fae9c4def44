package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pyrorelay/pyrorelay/store"
)

// relayUID is the user the relay runs as in these tests when they run as
// root (the distroless image's nonroot user).
const relayUID = 65532

// TestCompactKeepsOwnerAndMode: a compact run as root leaves the file the
// relay's, with its mode, so the relay still opens it.
func TestCompactKeepsOwnerAndMode(t *testing.T) {
	dir := t.TempDir()
	cliFill(t, dir, "a", cliDataset(t, 3, cliT0()))
	path := filepath.Join(dir, store.FileName)
	uid, gid := os.Geteuid(), os.Getegid()
	if uid == 0 {
		uid, gid = relayUID, relayUID
		if err := os.Chown(path, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	cliOK(t, "", "compact", "--data-dir", dir)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != uid || int(st.Gid) != gid || fi.Mode().Perm() != 0o640 {
		t.Errorf("after compact: owner %d:%d mode %v, want %d:%d -rw-r-----", st.Uid, st.Gid, fi.Mode().Perm(), uid, gid)
	}
}

// TestPermissionDeniedIsNotCorruption: a store file the process may not
// open gets advice about owners, never the advice to move a healthy file
// aside.
func TestPermissionDeniedIsNotCorruption(t *testing.T) {
	dir := t.TempDir()
	cliFill(t, dir, "a", cliDataset(t, 3, cliT0()))
	path := filepath.Join(dir, store.FileName)
	var stderr string
	if os.Geteuid() == 0 {
		// Root opens anything: run the binary as another user, with the
		// file root's, as a `sudo pyrorelay compact` used to leave it.
		for _, d := range []string{dir, filepath.Dir(dir), filepath.Dir(relayBin)} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(path, 0o600); err != nil {
			t.Fatal(err)
		}
		p := launch(t, relayOpts{rawArgs: true, credential: &syscall.Credential{Uid: relayUID, Gid: relayUID}},
			"queue", "status", "--data-dir", dir)
		if code := p.waitExit(stopDeadline); code == 0 {
			t.Fatalf("queue status as uid %d opened a root-owned 0600 file", relayUID)
		}
		stderr = p.Stderr.String()
	} else {
		if err := os.Chmod(path, 0); err != nil {
			t.Fatal(err)
		}
		r := cliRun(t, "", "queue", "status", "--data-dir", dir)
		if r.err == nil {
			t.Fatal("queue status opened a file of mode 0")
		}
		stderr = r.err.Error()
	}
	for _, want := range []string{"permission denied", "intact", "chown"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("error %q does not say %q", stderr, want)
		}
	}
	if strings.Contains(stderr, "move it aside") {
		t.Errorf("error %q advises moving a healthy file aside", stderr)
	}
}
