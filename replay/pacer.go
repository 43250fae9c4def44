package replay

import (
	"context"
	"sync"
	"time"
)

// pacer spaces events at most rate per second: the first goes at once,
// each next one interval after the previous one's slot, so n events take at
// least (n-1)/rate. A slot may lie up to pacerSlack in the past, so that a
// timer firing late is made up for by the next events instead of lowering
// the rate; a long stall (a slow destination) is not made up for in a
// burst. A zero rate does not pace. It is safe for concurrent use.
type pacer struct {
	mu       sync.Mutex
	interval time.Duration
	next     time.Time
}

const pacerSlack = 20 * time.Millisecond

func newPacer(rate float64) *pacer {
	p := &pacer{}
	if rate > 0 {
		p.interval = time.Duration(float64(time.Second) / rate)
	}
	return p
}

// wait blocks until the next slot, or until ctx ends.
func (p *pacer) wait(ctx context.Context) error {
	if p.interval <= 0 {
		return ctx.Err()
	}
	p.mu.Lock()
	now := time.Now()
	slot := p.next
	switch {
	case slot.IsZero():
		slot = now // the first event: the origin of every later slot
	case slot.Before(now.Add(-pacerSlack)):
		slot = now.Add(-pacerSlack)
	}
	p.next = slot.Add(p.interval)
	p.mu.Unlock()
	d := time.Until(slot)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
