package relay

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/pyrorelay/pyrorelay/store"
)

// job is one queued entry a forwarder holds in memory: read from the queue,
// then in flight, waiting for its next attempt, or done.
type job struct {
	// it is the entry and its position. A job waiting for a retry keeps
	// only the position (it.Entry is nil): the entry is read again when
	// the job is next sent, so that many waiting entries cost little memory.
	it        store.Item
	bytes     int // body bytes held in memory now
	readAt    time.Time
	attempts  int
	strikes   int
	notBefore time.Time
	backoff   *backoff.ExponentialBackOff // made at the first failure
	probe     bool                        // sent as the probe of a down destination
}

// decision is what a worker does with a job after an attempt.
type decision int

const (
	// decideRetry: the job waits for its next attempt; nothing to do.
	decideRetry decision = iota
	decideAck
	decidePermanent
	decidePoison
)

// scheduler decides which of a forwarder's entries is sent next and when.
// Fresh entries, read from the queue in order, go first in line; an entry
// whose attempt failed waits aside until its own backoff has passed, so a
// failure never holds a worker or a slot. On top of that it gates what may
// be in flight: the limiter's concurrency while the destination is up or
// degraded, one probe at a time when it is down, nothing while it asked to
// pause (Retry-After, 429).
//
// Entries stay in the queue on disk until they are acked, so nothing here
// needs to survive a crash: after a restart every entry is read again and
// is simply ready. Order across entries is not kept once one has to wait.
type scheduler struct {
	mu      chanMutex
	now     func() time.Time
	policy  retryPolicy
	maxHeld int // bytes of entries held in memory before reading stops

	fresh    []*job
	waiting  jobHeap
	inFlight int
	held     int // bytes of every job not yet done
	backlog  bool

	lim        *limiter
	health     *health
	pauseUntil time.Time
	throttle   *backoff.ExponentialBackOff // pauses after 429s without Retry-After

	onWaiting func(n int)
}

// pickLocked returns the next job allowed to start now, or the time to look again
// (zero: when something changes).
func (s *scheduler) pickLocked(now time.Time) (*job, time.Time) {
	if now.Before(s.pauseUntil) {
		return nil, s.pauseUntil
	}
	if s.health.state == StateDown {
		if s.inFlight > 0 {
			return nil, time.Time{}
		}
		if now.Before(s.health.probeAt) {
			return nil, s.health.probeAt
		}
		// The probe does not wait for its entry's own backoff: a
		// destination comes back as soon as a probe says so. A fresh entry
		// first, which is least likely to be the cause of the failures.
		j := s.takeFreshLocked()
		if j == nil && s.waiting.Len() > 0 {
			j = s.popWaitingLocked()
		}
		if j != nil {
			j.probe = true
		}
		return j, time.Time{}
	}
	if s.inFlight >= s.lim.current() {
		return nil, time.Time{}
	}
	if s.waiting.Len() > 0 && !s.waiting[0].notBefore.After(now) {
		return s.popWaitingLocked(), time.Time{}
	}
	if j := s.takeFreshLocked(); j != nil {
		return j, time.Time{}
	}
	if s.waiting.Len() > 0 {
		return nil, s.waiting[0].notBefore
	}
	return nil, time.Time{}
}

func (s *scheduler) takeFreshLocked() *job {
	if len(s.fresh) == 0 {
		return nil
	}
	j := s.fresh[0]
	s.fresh[0] = nil
	s.fresh = s.fresh[1:]
	return j
}

func (s *scheduler) popWaitingLocked() *job {
	j := heap.Pop(&s.waiting).(*job)
	s.onWaiting(s.waiting.Len())
	return j
}

// waitLocked sets j aside until at, without its entry.
func (s *scheduler) waitLocked(j *job, at time.Time) {
	s.held -= j.bytes
	j.it.Entry, j.bytes = nil, 0
	j.notBefore = at
	heap.Push(&s.waiting, j)
	s.onWaiting(s.waiting.Len())
}

// next waits for the next job a worker may send; it reports false when ctx
// ends first.
func (s *scheduler) next(ctx context.Context) (*job, bool) {
	for {
		changed := s.mu.lock()
		j, at := s.pickLocked(s.now())
		if j != nil {
			s.inFlight++
			s.mu.unlock()
			return j, true
		}
		s.mu.unlock()
		if !wait(ctx, changed, at, s.now) {
			return nil, false
		}
	}
}

// add hands over entries read from the queue; backlog says whether more
// wait behind them.
func (s *scheduler) add(items []store.Item, backlog bool) {
	s.mu.lock()
	defer s.mu.signal()
	s.backlog = backlog
	now := s.now()
	for _, it := range items {
		j := &job{it: it, readAt: now, bytes: len(it.Entry.Body)}
		s.fresh = append(s.fresh, j)
		s.held += j.bytes
	}
}

// room says how many entries and bytes the reader may add now: none while
// the scheduler holds enough, or while the destination is down and there is
// already something to probe with.
// With none, changed is closed when that may be different.
func (s *scheduler) room() (entries, bytes int, changed <-chan struct{}) {
	changed = s.mu.lock()
	defer s.mu.unlock()
	want := s.lim.current()
	if len(s.fresh) >= want || s.held >= s.maxHeld || s.waiting.Len() >= maxWaiting {
		return 0, 0, changed
	}
	if s.health.state == StateDown && len(s.fresh)+s.waiting.Len() > 0 {
		return 0, 0, changed
	}
	return want - len(s.fresh), s.maxHeld - s.held, changed
}

// drop forgets a job that will not be sent: it outlived max_age, or it
// left the queue.
func (s *scheduler) drop(j *job) {
	s.mu.lock()
	defer s.mu.signal()
	s.inFlight--
	s.held -= j.bytes
}

// loaded records that the job's entry, read again for a retry, is in
// memory.
func (s *scheduler) loaded(j *job, e *store.Entry) {
	s.mu.lock()
	defer s.mu.unlock()
	j.it.Entry, j.bytes = e, len(e.Body)
	s.held += j.bytes
}

// later puts back a job whose entry could not be read again, for its next
// backoff; the destination's health is not its business.
func (s *scheduler) later(j *job) {
	s.mu.lock()
	defer s.mu.signal()
	s.inFlight--
	if j.backoff == nil {
		j.backoff = s.policy.newBackoff()
	}
	s.waitLocked(j, s.now().Add(s.policy.next(j.backoff)))
}

// result is what done tells the worker.
type result struct {
	decision   decision
	transition *transition
	reason     string // for a dead letter
}

// done records the outcome of a job's attempt, which took latency, and
// decides what becomes of the job.
func (s *scheduler) done(j *job, o Outcome, latency time.Duration, maxStrikes int) result {
	s.mu.lock()
	defer s.mu.signal()
	now := s.now()
	s.inFlight--
	j.attempts++
	j.probe = false
	var r result
	switch {
	case o.Verdict == Delivered:
		wasDown := s.health.state == StateDown
		r.transition = s.health.delivered(now, j.it.Seq)
		s.throttle = nil
		if wasDown {
			s.resumeLocked(now)
		} else {
			s.lim.succeeded(s.backlog, latency)
		}
		r.decision = decideAck
	case o.Verdict == Permanent:
		r.transition = s.health.answered(now)
		r.decision = decidePermanent
		r.reason = o.Reason
	default:
		strikable := s.health.strikable(now)
		r.transition = s.health.failed(now, j.it.Seq, o)
		s.pauseLocked(now, o)
		s.lim.failed(o.Throttled || s.health.surge())
		if r.transition != nil && r.transition.to == StateDown {
			s.lim.reset()
		}
		if o.Strike && strikable {
			j.strikes++
			if j.strikes >= maxStrikes && s.health.byChance(j.it.Seq, j.strikes) <= poisonOdds {
				r.decision = decidePoison
				r.reason = o.Reason
				break
			}
		}
		if j.backoff == nil {
			j.backoff = s.policy.newBackoff()
		}
		s.waitLocked(j, now.Add(s.policy.next(j.backoff)))
		return r
	}
	s.held -= j.bytes
	return r
}

// pauseLocked stops every attempt for as long as the destination asked
// (Retry-After, capped), or after a 429 without one, for a backoff that
// grows while throttling lasts.
func (s *scheduler) pauseLocked(now time.Time, o Outcome) {
	var d time.Duration
	switch {
	case o.RetryAfter > 0:
		d = s.policy.retryAfter(o.RetryAfter)
	case o.Throttled:
		if s.throttle == nil {
			s.throttle = s.policy.newBackoff()
		}
		d = s.policy.next(s.throttle)
	default:
		return
	}
	if until := now.Add(d); until.After(s.pauseUntil) {
		s.pauseUntil = until
	}
}

// resumeLocked makes every waiting entry ready: the destination is back.
func (s *scheduler) resumeLocked(now time.Time) {
	for _, j := range s.waiting {
		j.notBefore = now
		j.backoff = nil
	}
	heap.Init(&s.waiting)
	s.lim.reset()
}

// counts reports the jobs held: waiting for a retry, and all of them.
func (s *scheduler) counts() (waiting, held int) {
	s.mu.lock()
	defer s.mu.unlock()
	return s.waiting.Len(), len(s.fresh) + s.waiting.Len() + s.inFlight
}

// jobHeap orders waiting jobs by the time they may be tried again.
type jobHeap []*job

func (h jobHeap) Len() int           { return len(h) }
func (h jobHeap) Less(a, b int) bool { return h[a].notBefore.Before(h[b].notBefore) }
func (h jobHeap) Swap(a, b int)      { h[a], h[b] = h[b], h[a] }
func (h *jobHeap) Push(x any)        { *h = append(*h, x.(*job)) }
func (h *jobHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return j
}

// wait blocks until changed is closed, the time at (if not zero) comes, or
// ctx ends; it reports false in the last case.
func wait(ctx context.Context, changed <-chan struct{}, at time.Time, now func() time.Time) bool {
	var timer <-chan time.Time
	if !at.IsZero() {
		t := time.NewTimer(max(at.Sub(now()), 0))
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ctx.Done():
		return false
	case <-changed:
	case <-timer:
	}
	return true
}

// maxWaiting bounds the jobs waiting for a retry: past it, reading stops
// until some are delivered.
const maxWaiting = 1 << 16

// chanMutex is a mutex that can announce a change on unlock: lock returns a
// channel that the next signal closes.
type chanMutex struct {
	mu sync.Mutex
	ch chan struct{}
}

func (m *chanMutex) lock() <-chan struct{} {
	m.mu.Lock()
	if m.ch == nil {
		m.ch = make(chan struct{})
	}
	return m.ch
}

func (m *chanMutex) unlock() { m.mu.Unlock() }

// signal wakes everyone waiting on a channel from lock, and unlocks.
func (m *chanMutex) signal() {
	close(m.ch)
	m.ch = make(chan struct{})
	m.mu.Unlock()
}
