package replay

import (
	"context"
	"testing"
	"time"
)

func TestPacerSpacesEvents(t *testing.T) {
	p := newPacer(50)
	start := time.Now()
	for range 6 {
		if err := p.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Errorf("6 events at 50/s took %v, want at least 100ms", el)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := newPacer(0.001).wait(ctx); err == nil {
		t.Error("a cancelled wait returned nil")
	}
}
