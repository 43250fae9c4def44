package poll

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestUntil(t *testing.T) {
	var n atomic.Int32
	if !Until(Deadline, time.Millisecond, func() bool { return n.Add(1) >= 3 }) {
		t.Fatal("a condition that comes true on the third check timed out")
	}
	if got := n.Load(); got != 3 {
		t.Errorf("checked %d times, want 3: it must stop at the first true", got)
	}
	if Until(10*time.Millisecond, time.Millisecond, func() bool { return false }) {
		t.Error("a condition that never holds was reported as held")
	}
}

// fakeT records a Fatalf instead of ending the test.
type fakeT struct {
	testing.TB
	msg string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
}

func TestForFailsWithTheLastDetail(t *testing.T) {
	f := &fakeT{TB: t}
	For(f, 30*time.Millisecond, "nothing", func() (bool, string) { return false, "still nothing" })
	if !strings.Contains(f.msg, "nothing: still nothing") {
		t.Fatalf("For's failure %q does not name the condition and its last detail", f.msg)
	}
	g := &fakeT{TB: t}
	For(g, Deadline, "something", func() (bool, string) { return true, "" })
	if g.msg != "" {
		t.Errorf("For failed on a condition that held: %s", g.msg)
	}
}
