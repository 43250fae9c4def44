package daemon

import (
	"log/slog"
	"sync"
	"time"
)

// dropLogger logs entries dropped to make room (--when-full drop-oldest)
// at most once per interval per queue, each line with the count since the
// last one and the count since the start, so that the lines add up to
// pyrorelay_dropped_total. Drops left over when dropping stops are logged
// once the interval is over, and at close.
type dropLogger struct {
	log      *slog.Logger
	interval time.Duration

	mu      sync.Mutex
	pending map[string]int
	total   map[string]int
	last    map[string]time.Time
	timers  map[string]*time.Timer
	closed  bool
}

func newDropLogger(log *slog.Logger, interval time.Duration) *dropLogger {
	return &dropLogger{log: log, interval: interval, pending: map[string]int{}, total: map[string]int{},
		last: map[string]time.Time{}, timers: map[string]*time.Timer{}}
}

// dropped counts n entries dropped from queue.
func (d *dropLogger) dropped(queue string, n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pending[queue] += n
	d.total[queue] += n
	now := time.Now()
	wait := d.interval - now.Sub(d.last[queue])
	switch {
	case d.closed || wait <= 0:
		d.flushLocked(queue, now)
	case d.timers[queue] == nil:
		// The timer is stopped by close; until then it is the logger's.
		d.timers[queue] = time.AfterFunc(wait, func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			delete(d.timers, queue)
			if !d.closed {
				d.flushLocked(queue, time.Now())
			}
		})
	}
}

func (d *dropLogger) flushLocked(queue string, now time.Time) {
	if d.pending[queue] == 0 {
		return
	}
	d.log.Warn("queue full: dropped oldest entries to make room", "queue", queue,
		"dropped", d.pending[queue], "dropped_since_start", d.total[queue])
	d.pending[queue] = 0
	d.last[queue] = now
}

// close stops the timers and logs what is still pending.
func (d *dropLogger) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	for q, t := range d.timers {
		t.Stop()
		delete(d.timers, q)
	}
	for q := range d.pending {
		d.flushLocked(q, time.Now())
	}
}
