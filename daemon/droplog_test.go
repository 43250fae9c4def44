package daemon

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/internal/syncbuf"
)

// The drop log adds up to what was dropped: drops after the first line are
// logged once the interval is over even if dropping stopped, and at close.
func TestDropLoggerLogsRealCounts(t *testing.T) {
	var buf syncbuf.Buffer
	d := newDropLogger(slog.New(slog.NewTextHandler(&buf, nil)), 50*time.Millisecond)
	d.dropped("q", 1)
	for range 3 {
		d.dropped("q", 5)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(buf.String(), "dropped=15 dropped_since_start=16") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	out := buf.String()
	if !strings.Contains(out, "dropped=1 dropped_since_start=1") || !strings.Contains(out, "dropped=15 dropped_since_start=16") {
		t.Fatalf("drop log does not add up to 16:\n%s", out)
	}
	// Drops pending at close are logged then.
	d2 := newDropLogger(slog.New(slog.NewTextHandler(&buf, nil)), time.Hour)
	d2.dropped("r", 2)
	d2.dropped("r", 7)
	d2.close()
	if out := buf.String(); !strings.Contains(out, "queue=r dropped=7 dropped_since_start=9") {
		t.Errorf("drops pending at close not logged:\n%s", out)
	}
}
