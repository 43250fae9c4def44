package logthrottle

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	h := New(slog.NewTextHandler(&buf, nil), time.Minute)
	now := time.Unix(1_700_000_000, 0)
	h.state.now = func() time.Time { return now }
	log := slog.New(h).With("receiver", "edge")

	for i := range 1000 {
		log.Error("store request", "err", "disk full", "i", i)
		log.Warn("http: TLS handshake error from 10.0.0.1:"+strings.Repeat("9", i%5+1), "x", 1)
	}
	log.Info("serving")
	if got := strings.Count(buf.String(), "\n"); got != 3 {
		t.Fatalf("%d lines after 1000 repeats of two kinds and one other line, want 3:\n%s", got, buf.String())
	}
	now = now.Add(time.Minute)
	buf.Reset()
	log.Error("store request", "err", "disk full")
	if !strings.Contains(buf.String(), "repeated=999") || !strings.Contains(buf.String(), "receiver=edge") {
		t.Errorf("line after the interval %q, want it to count the 999 dropped and keep its attributes", buf.String())
	}

	t.Run("kinds are bounded", func(t *testing.T) {
		h := New(slog.DiscardHandler, time.Minute)
		for i := range 3 * maxKinds {
			_ = h.Handle(t.Context(), slog.NewRecord(now, slog.LevelError, strings.Repeat("x", i%kindPrefix)+string(rune('a'+i%26))+time.Duration(i).String(), 0))
		}
		if n := len(h.state.kinds); n > maxKinds+1 {
			t.Errorf("%d kinds remembered, bound %d", n, maxKinds)
		}
	})
}
