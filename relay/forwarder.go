package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyrorelay/pyrorelay/store"
)

// Queue is the part of the store a Forwarder drains.
type Queue interface {
	ReadBatch(ctx context.Context, queue string, after uint64, max, maxBytes int) ([]store.Item, int, error)
	AckDeferred(ctx context.Context, queue string, seqs ...uint64) error
	MoveToDeadLetter(ctx context.Context, queue string, seq uint64, d store.DeadLetter) error
	Wake(queue string) <-chan struct{}
	Expire(ctx context.Context, queue string, cutoff time.Time) (int, error)
	Queued(queue string, seq uint64) (bool, error)
}

// maxHeldBytes bounds the bytes of entries a forwarder holds in memory:
// read ahead, in flight, and waiting for a retry. Reading stops there.
// Held bytes are live heap, which the garbage collector's target
// multiplies, so the bound is kept to what keeps the sends busy: at the
// default 16 requests in flight, hundreds of typical profiles.
const maxHeldBytes = 4 << 20

// pollInterval is a safety net under the wake signal: a queue is re-read
// this often even when nothing says it changed.
const pollInterval = 30 * time.Second

// Forwarder drains one destination's queue. Create it with NewForwarder and
// run it with Run.
type Forwarder struct {
	c     *client
	dest  Destination
	queue Queue
	lim   *limiter
	sched *scheduler
	log   *slog.Logger
	// lastDelivery is set at every delivery: the child is looked up once.
	lastDelivery prometheus.Gauge
}

// NewForwarder returns a forwarder for dest over q. metrics may be shared
// by all forwarders; logger may be nil.
func NewForwarder(dest Destination, q Queue, metrics *Metrics, logger *slog.Logger) (*Forwarder, error) {
	c, err := newClient(dest, metrics, logger)
	if err != nil {
		return nil, err
	}
	dest, m := c.dest, c.metrics
	gauge := m.concurrency.WithLabelValues(dest.Name)
	lim := newLimiter(dest.Concurrency, dest.MaxConcurrency, func(n int) { gauge.Set(float64(n)) })
	now := time.Now()
	waiting := m.retriesWaiting.WithLabelValues(dest.Name)
	f := &Forwarder{
		c:            c,
		dest:         dest,
		queue:        q,
		lim:          lim,
		log:          c.log,
		lastDelivery: m.lastDelivery.WithLabelValues(dest.Name),
		sched: &scheduler{
			now:       time.Now,
			policy:    retryPolicy{min: dest.MinBackoff, max: dest.MaxBackoff},
			maxHeld:   maxHeldBytes,
			lim:       lim,
			health:    newHealth(now, retryPolicy{min: dest.MinBackoff, max: min(dest.MaxBackoff, dest.ProbeInterval)}, dest.MaxConcurrency),
			onWaiting: func(n int) { waiting.Set(float64(n)) },
		},
	}
	m.setState(dest.Name, StateUp)
	return f, nil
}

// Name is the destination's name, which is also its queue's name.
func (f *Forwarder) Name() string { return f.dest.Name }

// LastFailure reports the last failed attempt of this forwarder, or nil if
// none failed. `pyrorelay drain` shows it when a queue does not empty.
func (f *Forwarder) LastFailure() *Failure { return f.c.lastFailure.Load() }

// State reports the destination's health and since when it has held.
func (f *Forwarder) State() (State, time.Time) {
	f.sched.mu.lock()
	defer f.sched.mu.unlock()
	return f.sched.health.state, f.sched.health.since
}

// Run drains the queue until ctx is done, or until the store finds the
// queue damaged (store.ErrDamaged), which it logs once. Requests in flight
// then get up to the destination timeout to finish, and are acked if they
// succeed; what is not delivered stays queued for the next start.
func (f *Forwarder) Run(ctx context.Context) {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	acks := newAcker(f.queue, f.dest.Name, f.log)
	var wg sync.WaitGroup
	// A worker per request that may be in flight; the scheduler decides
	// how many are.
	for range f.dest.MaxConcurrency {
		wg.Go(func() { f.work(ctx, acks) })
	}
	if f.dest.MaxAge > 0 {
		wg.Go(func() { f.expireLoop(ctx) })
	}
	f.read(ctx)
	stop()
	wg.Wait()
	acks.close() // the last acks are durable before Run returns
}

// read hands the queue's entries to the scheduler, in order, as it has room
// for them, until ctx is done.
func (f *Forwarder) read(ctx context.Context) {
	poll := time.NewTicker(pollInterval)
	defer poll.Stop()
	var cursor uint64 // position of the last entry handed over
	readBackoff := backoff.NewExponentialBackOff(backoff.WithMaxElapsedTime(0), backoff.WithMaxInterval(10*time.Second))
	for {
		want, room, changed := f.sched.room()
		if want == 0 {
			if !wait(ctx, changed, time.Time{}, time.Now) {
				return
			}
			continue
		}
		items, quarantined, err := f.queue.ReadBatch(ctx, f.dest.Name, cursor, want, room)
		if quarantined > 0 {
			f.c.metrics.quarantined.WithLabelValues(f.dest.Name).Add(float64(quarantined))
			f.log.Error("corrupt records moved to quarantine", "count", quarantined)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, store.ErrDamaged) {
				// Reading again cannot help; the error says how to recover.
				f.log.Error("queue damaged: forwarding from it stops; the relay keeps serving the others", "err", err)
				return
			}
			f.log.Error("read queue", "err", err)
			if !sleep(ctx, readBackoff.NextBackOff()) {
				return
			}
			continue
		}
		readBackoff.Reset()
		full := len(items) == want // more may wait behind a full batch
		if !full {
			f.lim.caughtUp()
		}
		f.sched.add(items, full)
		if len(items) > 0 {
			cursor = items[len(items)-1].Seq
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-f.queue.Wake(f.dest.Name):
		case <-poll.C:
		}
	}
}

// work sends the jobs the scheduler hands out until ctx is done, and does
// what their outcomes call for.
func (f *Forwarder) work(ctx context.Context, acks *acker) {
	m := f.c.metrics
	for {
		j, ok := f.sched.next(ctx)
		if !ok {
			return
		}
		if j.probe {
			m.probes.WithLabelValues(f.dest.Name).Inc()
		}
		if j.it.Entry == nil {
			ok, err := f.reload(ctx, j)
			switch {
			case err != nil:
				f.log.Debug("read an entry again for its retry", "seq", j.it.Seq, "err", err)
				f.sched.later(j)
				continue
			case !ok:
				f.sched.drop(j) // it left the queue while it waited
				continue
			}
		} else if f.gone(j) {
			f.sched.drop(j)
			continue
		}
		e := j.it.Entry
		if f.dest.MaxAge > 0 && f.outlived(e) {
			// Left queued: expireLoop moves it to dead-letter, counts it
			// and logs the count, once, whoever noticed first (Debug
			// here: after a long outage every queued entry may take this
			// way).
			f.sched.drop(j)
			f.log.Debug("entry older than max_age: not sent again, expiry moves it to dead-letter", "entry", e.ID, "attempts", j.attempts, "max_age", f.dest.MaxAge)
			continue
		}
		start := time.Now()
		o := f.c.attempt(ctx, e)
		r := f.sched.done(j, o, time.Since(start), f.dest.MaxAttempts)
		f.report(r.transition)
		switch r.decision {
		case decideAck:
			// Acks share commits (see acker); the worker does not wait for one.
			acks.ack(j.it.Seq)
			f.lastDelivery.SetToCurrentTime()
		case decidePermanent:
			f.deadLetter(ctx, j, o, "permanent", o.Reason)
		case decidePoison:
			f.deadLetter(ctx, j, o, "poison", fmt.Sprintf("poison: failed %d times while the destination took other entries; last: %s", j.strikes, o.Reason))
		default:
			f.log.Debug("entry waits for a retry", "entry", e.ID, "attempt", j.attempts, "status", o.Status, "reason", o.Reason, "next", j.notBefore)
		}
	}
}

// heldLong is how long a job may wait after its read before the queue is
// asked whether it still holds the entry.
const heldLong = time.Second

// reload reads again the entry of a job that waited for a retry without it
// in memory. It reports false if the entry left the queue meanwhile
// (dropped to make room, expired, moved by an operator): sending it would
// deliver what the operator was told was not.
func (f *Forwarder) reload(ctx context.Context, j *job) (bool, error) {
	items, _, err := f.queue.ReadBatch(ctx, f.dest.Name, j.it.Seq-1, 1, maxHeldBytes)
	if err != nil {
		return false, err
	}
	if len(items) == 0 || items[0].Seq != j.it.Seq {
		return false, nil
	}
	f.sched.loaded(j, items[0].Entry)
	return true, nil
}

// gone reports whether the entry of a fresh job held longer than heldLong
// has left the queue meanwhile (see reload). Entries sent soon after their
// read are not checked, so the common path costs no read; if the store
// cannot say, the entry is sent (at-least-once).
func (f *Forwarder) gone(j *job) bool {
	if time.Since(j.readAt) < heldLong {
		return false
	}
	ok, err := f.queue.Queued(f.dest.Name, j.it.Seq)
	return err == nil && !ok
}

// report logs a change of the destination's state at warn, once per
// change, and updates its metrics.
func (f *Forwarder) report(tr *transition) {
	if tr == nil {
		return
	}
	f.c.metrics.setState(f.dest.Name, tr.to)
	waiting := f.entriesWaiting()
	switch {
	case tr.to == StateDown:
		f.log.Warn("destination down: one probe at a time until it answers", "reason", tr.reason, "entries_waiting", waiting)
	case tr.from == StateDown:
		f.log.Warn("destination up again", "down_for", tr.lasted.Round(time.Millisecond), "entries_waiting", waiting)
	case tr.to == StateDegraded:
		f.log.Warn("destination degraded: a share of attempts fails; failed entries wait aside and are retried", "reason", tr.reason, "entries_waiting", waiting)
	default:
		f.log.Warn("destination up again", "degraded_for", tr.lasted.Round(time.Millisecond), "entries_waiting", waiting)
	}
}

// statser is what entriesWaiting asks the queue, if it can answer.
type statser interface {
	Stats() (map[string]store.QueueStats, error)
}

// entriesWaiting is the destination's queue length, or, if the queue cannot
// say, what the forwarder holds.
func (f *Forwarder) entriesWaiting() int64 {
	if s, ok := f.queue.(statser); ok {
		if st, err := s.Stats(); err == nil {
			return st[f.dest.Name].Entries
		}
	}
	_, held := f.sched.counts()
	return int64(held)
}

// expireLoop moves entries older than MaxAge to dead-letter, because the
// Pyroscope server refuses profiles older than its reject-older-than window:
// the operator decides what to do with them, the relay only tells.
func (f *Forwarder) expireLoop(ctx context.Context) {
	every := min(max(f.dest.MaxAge/10, time.Second), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := f.queue.Expire(ctx, f.dest.Name, time.Now().Add(-f.dest.MaxAge))
		switch {
		case err != nil && ctx.Err() == nil:
			f.log.Error("expire old entries", "err", err)
		case n > 0:
			f.c.metrics.deadLettered.WithLabelValues(f.dest.Name, "expired").Add(float64(n))
			f.log.Warn("entries older than max_age moved to dead-letter", "count", n, "max_age", f.dest.MaxAge)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// outlived reports whether e has waited longer than max_age. expireLoop
// moves such an entry to dead-letter; a worker still retrying it would
// deliver it after the operator was told it was not, and a `dead-letter
// requeue` would then deliver it twice.
func (f *Forwarder) outlived(e *store.Entry) bool {
	return time.Since(e.ReceivedAt) > f.dest.MaxAge
}

func (f *Forwarder) deadLetter(ctx context.Context, j *job, o Outcome, kind, reason string) {
	err := f.queue.MoveToDeadLetter(context.WithoutCancel(ctx), f.dest.Name, j.it.Seq, store.DeadLetter{
		Reason: reason, Status: o.Status, Attempts: j.attempts,
	})
	if err != nil {
		f.log.Error("dead-letter entry", "entry", j.it.Entry.ID, "err", err)
		return
	}
	f.c.metrics.deadLettered.WithLabelValues(f.dest.Name, kind).Inc()
	f.log.Warn("entry moved to dead-letter", "entry", j.it.Entry.ID, "kind", kind, "status", o.Status, "reason", reason, "attempts", j.attempts)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
