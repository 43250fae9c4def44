package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// How often progress is shown: redrawn in place on a terminal, a plain log
// line otherwise (a cron job's log should not fill with redraws).
const (
	progressRedraw  = 250 * time.Millisecond
	progressLogLine = 10 * time.Second
)

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress shows how far a long operation is: entries, bytes, rate, ETA.
type progress struct {
	w          io.Writer
	tty        bool
	verb       string
	total      int // -1 when unknown
	totalBytes int64
	start      time.Time

	// status, if set, adds to each line what is going on (the last
	// error of a destination being retried).
	status func() string

	mu     sync.Mutex
	n      int
	bytes  int64
	failed int

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// newProgress starts showing progress on w. total and totalBytes are what
// is expected (total -1 when unknown: no ETA then).
func newProgress(w io.Writer, verb string, total int, totalBytes int64) *progress {
	return newProgressStatus(w, verb, total, totalBytes, nil)
}

// newProgressStatus is newProgress with a status added to each line.
func newProgressStatus(w io.Writer, verb string, total int, totalBytes int64, status func() string) *progress {
	p := &progress{
		w: w, tty: isTerminal(w), verb: verb, total: total, totalBytes: totalBytes, status: status,
		start: time.Now(), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go p.loop()
	return p
}

func (p *progress) loop() {
	defer close(p.done)
	every := progressLogLine
	if p.tty {
		every = progressRedraw
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.draw(false)
		}
	}
}

// add counts one entry of size bytes done.
func (p *progress) add(size int64) {
	p.mu.Lock()
	p.n++
	p.bytes += size
	p.mu.Unlock()
}

// fail counts one entry that could not be done.
func (p *progress) fail() {
	p.mu.Lock()
	p.failed++
	p.mu.Unlock()
}

// finish stops the display and shows the final state once.
func (p *progress) finish() {
	p.once.Do(func() {
		close(p.stop)
		<-p.done
		p.draw(true)
	})
}

func (p *progress) draw(final bool) {
	p.mu.Lock()
	n, bytes, failed := p.n, p.bytes, p.failed
	p.mu.Unlock()
	status := ""
	if p.status != nil {
		status = p.status()
	}
	if !final && !p.tty && n == 0 && failed == 0 && status == "" {
		return
	}
	line := p.line(n, bytes, failed, time.Since(p.start))
	if status != "" && !final {
		line += ", " + status
	}
	switch {
	case p.tty && final:
		fmt.Fprintf(p.w, "\r\x1b[K%s\n", line)
	case p.tty:
		fmt.Fprintf(p.w, "\r\x1b[K%s", line)
	case !final:
		// A log line; the final summary is the caller's.
		fmt.Fprintf(p.w, "%s %s\n", time.Now().Format(time.RFC3339), line)
	}
}

func (p *progress) line(n int, bytes int64, failed int, elapsed time.Duration) string {
	var b strings.Builder
	secs := max(elapsed.Seconds(), 1e-3)
	rate := float64(n) / secs
	if p.total >= 0 {
		if p.tty {
			const width = 24
			done := width
			if p.total > 0 {
				done = min(width, n*width/p.total)
			}
			pct := 100
			if p.total > 0 {
				pct = n * 100 / p.total
			}
			fmt.Fprintf(&b, "[%s%s] %3d%% ", strings.Repeat("#", done), strings.Repeat(".", width-done), pct)
		}
		fmt.Fprintf(&b, "%s %d/%d entries, %s/%s", p.verb, n, p.total, humanBytes(bytes), humanBytes(p.totalBytes))
	} else {
		fmt.Fprintf(&b, "%s %d entries, %s", p.verb, n, humanBytes(bytes))
	}
	fmt.Fprintf(&b, ", %.1f entries/s, %s/s", rate, humanBytes(int64(float64(bytes)/secs)))
	if failed > 0 {
		fmt.Fprintf(&b, ", %d failed", failed)
	}
	if p.total > 0 && n > 0 && n+failed < p.total {
		eta := time.Duration(float64(p.total-n-failed) / rate * float64(time.Second))
		fmt.Fprintf(&b, ", ETA %s", eta.Round(time.Second))
	}
	return b.String()
}

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
