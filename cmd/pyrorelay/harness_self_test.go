package main

// Tests of the harness itself: what it promises the other tests.

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// closedURL refuses connections, and its port stays taken: neither a
// listener asking for it nor one asking for any port can get it.
func TestClosedURLRefusesAndStaysTaken(t *testing.T) {
	u := closedURL(t)
	addr := strings.TrimPrefix(u, "http://")
	if _, err := httpClient.Get(u + "/ingest"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("GET %s: %v, want connection refused", u, err)
	}
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
		t.Fatalf("listening on %s succeeded; the port must stay taken", addr)
	}
	// Many listeners on 127.0.0.1:0, as the relays of a test run ask:
	// none gets the port.
	for range 200 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		got := ln.Addr().String()
		ln.Close()
		if got == addr {
			t.Fatalf("a 127.0.0.1:0 listener got %s, the refusing port", got)
		}
	}
	if _, err := http.Get(u); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("GET %s after the listeners: %v, want connection refused", u, err)
	}
}

// orphanHelperEnv makes the test binary, run again by
// TestChildDiesWithTestProcess, start a child with startChild, print its
// pid and exit at once without stopping it.
const orphanHelperEnv = "HARNESS_ORPHAN_HELPER"

func orphanHelper() int {
	cmd := exec.Command("sleep", "600")
	if err := startChild(cmd, make(chan struct{})); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(cmd.Process.Pid)
	return 0
}

// A child the harness started dies with the test process that started
// it, as when `go test -timeout` ends a run.
func TestChildDiesWithTestProcess(t *testing.T) {
	if _, err := exec.LookPath("sleep"); err != nil {
		t.Skipf("no sleep command to start: %v", err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(cleanEnv(), orphanHelperEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, stderr.String())
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("helper printed %q, want a pid", out)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	waitFor(t, stopDeadline, "the child of an exited test process to die", func() (bool, string) {
		alive := running(pid)
		return !alive, fmt.Sprintf("pid %d still running", pid)
	})
}

// running reports whether pid is a process that has not exited (a zombie
// waiting for its new parent to reap it has).
func running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}
