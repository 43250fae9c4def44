// Package progress shows how far a long operation of the operator
// commands is (export, replay): entries and bytes done, rate, ETA and
// failures. On a terminal the line is redrawn in place; elsewhere a plain
// log line is written now and then, so a cron job's log does not fill
// with redraws. The caller prints the final summary.
package progress

import (
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

// Progress shows how far a long operation is: entries, bytes, rate, ETA.
type Progress struct {
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

// New starts showing progress on w. verb says what is done to the
// entries ("sent", "exported"); total and totalBytes are what is expected
// (total -1 when unknown: no ETA then). Finish stops it.
func New(w io.Writer, verb string, total int, totalBytes int64) *Progress {
	return NewWithStatus(w, verb, total, totalBytes, nil)
}

// NewWithStatus is New with status, if not nil, adding to each line
// what is going on (the last error of a destination being retried).
func NewWithStatus(w io.Writer, verb string, total int, totalBytes int64, status func() string) *Progress {
	p := &Progress{
		w: w, tty: isTerminal(w), verb: verb, total: total, totalBytes: totalBytes, status: status,
		start: time.Now(), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go p.loop()
	return p
}

// Counts is what was counted so far: entries done, their bytes, and the
// entries that failed.
func (p *Progress) Counts() (n int, bytes int64, failed int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n, p.bytes, p.failed
}

// Elapsed is the time since the progress started.
func (p *Progress) Elapsed() time.Duration { return time.Since(p.start) }

func (p *Progress) loop() {
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

// Add counts one entry of size bytes done.
func (p *Progress) Add(size int64) {
	p.mu.Lock()
	p.n++
	p.bytes += size
	p.mu.Unlock()
}

// Fail counts one entry that could not be done.
func (p *Progress) Fail() {
	p.mu.Lock()
	p.failed++
	p.mu.Unlock()
}

// Finish stops the display and shows the final state once.
func (p *Progress) Finish() {
	p.once.Do(func() {
		close(p.stop)
		<-p.done
		p.draw(true)
	})
}

func (p *Progress) draw(final bool) {
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

func (p *Progress) line(n int, bytes int64, failed int, elapsed time.Duration) string {
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
		fmt.Fprintf(&b, "%s %d/%d entries, %s/%s", p.verb, n, p.total, Bytes(bytes), Bytes(p.totalBytes))
	} else {
		fmt.Fprintf(&b, "%s %d entries, %s", p.verb, n, Bytes(bytes))
	}
	fmt.Fprintf(&b, ", %.1f entries/s, %s/s", rate, Bytes(int64(float64(bytes)/secs)))
	if failed > 0 {
		fmt.Fprintf(&b, ", %d failed", failed)
	}
	if p.total > 0 && n > 0 && n+failed < p.total {
		eta := time.Duration(float64(p.total-n-failed) / rate * float64(time.Second))
		fmt.Fprintf(&b, ", ETA %s", eta.Round(time.Second))
	}
	return b.String()
}

// Bytes formats a byte count for people: 1536 is "1.5 KiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
