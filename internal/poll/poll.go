// Package poll is how the tests wait for a condition: they check it again
// and again until it holds or a generous deadline passes, never sleeping a
// fixed time, so that they pass on a loaded 2-core machine and a passing
// test never waits the deadline out.
package poll

import (
	"testing"
	"time"
)

// Deadline is the wait that suits most conditions.
const Deadline = 30 * time.Second

// Until reports whether cond held before timeout passed, checking it every
// interval. It never fails a test, so goroutines other than the test's may
// call it.
func Until(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
	return true
}

// For fails t unless cond holds before timeout passes. what names the
// condition in the failure; cond's second result says how it stood at the
// last check.
func For(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	var detail string
	if !Until(timeout, 20*time.Millisecond, func() (ok bool) { ok, detail = cond(); return ok }) {
		if detail != "" {
			detail = ": " + detail
		}
		t.Fatalf("timed out after %s waiting for %s%s", timeout, what, detail)
	}
}
