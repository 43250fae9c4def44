package main

import (
	"fmt"
	"net/http"
	"testing"
)

// A destination that asks for an hour's pause (Retry-After: 3600) waits
// no longer than its max_backoff: a misconfigured or hostile server must
// not stall a destination for an hour. Whatever the forwarder looks like
// inside, the profile arrives well within the test's deadline only if the
// wait is capped.
func TestRetryAfterCappedByMaxBackoff(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
	}{
		{"429", http.StatusTooManyRequests},
		{"503", http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dest := newRecorder(t, func(_ []byte, n int) int {
				if n == 1 {
					return tc.status
				}
				return http.StatusOK
			})
			dest.refuseWith(http.Header{"Retry-After": {"3600"}})
			// max_backoff 50ms (fastDestinations).
			relay := startRelay(t, t.TempDir(), "--config", writeConfig(t, t.TempDir(), fastDestinations(map[string]string{"a": dest.URL()})))
			mustPostFolded(t, relay.URL, "asked-to-wait")
			waitFor(t, deliverDeadline, "the profile after a Retry-After of an hour", func() (bool, string) {
				n := len(dest.accepted())
				return n == 1, fmt.Sprintf("%d accepted of %d requests", n, dest.received())
			})
			relay.stop()
		})
	}
}
