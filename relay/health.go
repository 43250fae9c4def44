package relay

import (
	"fmt"
	"math"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// State is a destination's health as its forwarder sees it.
type State int

const (
	// StateUp: the destination takes what it is sent.
	StateUp State = iota
	// StateDegraded: it takes most, but a share of attempts fails.
	StateDegraded
	// StateDown: nothing gets through (or it is misconfigured). One probe
	// at a time is sent, with capped backoff; everything else waits, and
	// the first success brings it back up.
	StateDown
)

func (s State) String() string {
	switch s {
	case StateUp:
		return "up"
	case StateDegraded:
		return "degraded"
	case StateDown:
		return "down"
	default:
		return fmt.Sprintf("state(%d)", int(s))
	}
}

// Health thresholds. A window of recent attempts decides up and degraded;
// runs of failures and time without a delivery decide down.
const (
	healthWindow = 64
	// minSamples is how many attempts the window needs before its share
	// of failures means anything.
	minSamples = 20
	// degradedShare and recoveredShare are the long-run failure shares at
	// which a destination becomes degraded and up again: far enough apart,
	// and over enough attempts, that a steady share near one of them does
	// not flap.
	degradedShare  = 0.10
	recoveredShare = 0.05
	// normWeight is the weight of one attempt in the long-run share: it
	// remembers the last few hundred attempts.
	normWeight = 1.0 / 256
	// downAfterQuiet: a destination that failed downAfterQuietFailures
	// times in a row and delivered nothing for this long is down, however
	// few entries it is sent.
	downAfterQuiet         = 10 * time.Second
	downAfterQuietFailures = 3
	// minDownRun is the least run of consecutive failures that makes a busy
	// destination down. It is long enough that a destination failing half
	// of its requests at random practically never shows it.
	minDownRun = 32
	// strikeWindow: an entry-level failure counts against the entry only if
	// the destination delivered another entry this recently.
	strikeWindow = 30 * time.Second
	// poisonOdds: an entry is poison once a good entry would get as many
	// entry-level failures in a row, by chance, at the share of them the
	// other entries get, less than once in a billion. A destination that
	// answers 30% of everything with a generic 500 thus needs 18 strikes;
	// one that fails nothing else, max_attempts.
	poisonOdds = 1e-9
)

// attemptRecord is one attempt in the recent window: whose, and whether it
// failed.
type attemptRecord struct {
	seq    uint64
	failed bool
	strike bool // a failure that may point at the entry (Outcome.Strike)
}

// transition is a change of state, for the log line and the metrics.
type transition struct {
	from, to State
	// lasted is how long the previous state lasted.
	lasted time.Duration
	reason string
}

// health is the state machine of one destination. It is not safe for
// concurrent use: the scheduler owns it under its lock.
type health struct {
	state  State
	since  time.Time // when state began
	reason string    // the failure that made it down

	recent      [healthWindow]attemptRecord
	n, next     int
	fails       int
	norm        float64 // long-run failure share
	consecutive int     // failures since the last delivery or answer

	lastDelivery time.Time
	downRun      int // consecutive failures that make a busy destination down

	probes  retryPolicy
	probe   *backoff.ExponentialBackOff
	probeAt time.Time // when down: the next probe may start then
}

func newHealth(now time.Time, probes retryPolicy, maxConcurrency int) *health {
	return &health{
		state:        StateUp,
		since:        now,
		lastDelivery: now,
		downRun:      max(minDownRun, 2*maxConcurrency),
		probes:       probes,
	}
}

// share is the failure share of the recent window and whether the window
// holds enough attempts for it to mean something.
func (h *health) share() (float64, bool) {
	if h.n < minSamples {
		return 0, false
	}
	return float64(h.fails) / float64(h.n), true
}

// surge reports a failure share well above the destination's norm: a sign
// of overload that concurrency should react to, unlike a steady share of
// random failures, which more or fewer requests do not change.
func (h *health) surge() bool {
	s, ok := h.share()
	return ok && s >= max(2*h.norm, h.norm+0.2)
}

// strikable reports whether an entry-level failure now counts against the
// entry: the destination is not down and took other entries recently.
func (h *health) strikable(now time.Time) bool {
	return h.state != StateDown && now.Sub(h.lastDelivery) <= strikeWindow
}

// byChance is how likely a good entry is to get strikes entry-level
// failures in a row at the share of them among the recent attempts of the
// entries other than the one at seq.
func (h *health) byChance(seq uint64, strikes int) float64 {
	n, fails := 0, 0
	for _, r := range h.recent[:h.n] {
		if r.seq != seq {
			n++
			if r.strike {
				fails++
			}
		}
	}
	if n == 0 {
		return 1 // nothing else was sent: nothing to compare with
	}
	return math.Pow(float64(fails)/float64(n), float64(strikes))
}

func (h *health) record(seq uint64, failed, strike bool) {
	if h.n == healthWindow {
		if h.recent[h.next].failed {
			h.fails--
		}
	} else {
		h.n++
	}
	h.recent[h.next] = attemptRecord{seq, failed, strike}
	h.next = (h.next + 1) % healthWindow
	if failed {
		h.fails++
		h.norm += (1 - h.norm) * normWeight
	} else {
		h.norm -= h.norm * normWeight
	}
}

func (h *health) set(now time.Time, s State, reason string) *transition {
	if s == h.state {
		return nil
	}
	tr := &transition{from: h.state, to: s, lasted: now.Sub(h.since), reason: reason}
	h.state, h.since, h.reason = s, now, reason
	return tr
}

// delivered records the delivery of the entry at seq.
func (h *health) delivered(now time.Time, seq uint64) *transition {
	h.consecutive = 0
	h.lastDelivery = now
	if h.state == StateDown {
		// A fresh start: the failures that made it down say nothing now.
		h.recent, h.n, h.next, h.fails, h.norm = [healthWindow]attemptRecord{}, 0, 0, 0, 0
		h.probe = nil
		return h.set(now, StateUp, "")
	}
	h.record(seq, false, false)
	return h.settle(now)
}

// answered records a refusal that is about the entry (a 4xx): the
// destination is alive and judging what it is sent.
func (h *health) answered(now time.Time) *transition {
	h.consecutive = 0
	if h.state == StateDown {
		h.probe = nil
		return h.set(now, StateUp, "")
	}
	return nil
}

// failed records a failed attempt of the entry at seq, whose outcome is o.
func (h *health) failed(now time.Time, seq uint64, o Outcome) *transition {
	h.consecutive++
	h.record(seq, true, o.Strike)
	if h.state == StateDown {
		h.reason = o.Reason
		h.scheduleProbe(now)
		return nil
	}
	switch {
	case o.DestinationFault:
		return h.goDown(now, "misconfigured: "+o.Reason)
	case h.consecutive >= h.downRun,
		h.consecutive >= downAfterQuietFailures && now.Sub(h.lastDelivery) >= downAfterQuiet:
		return h.goDown(now, o.Reason)
	}
	return h.settle(now)
}

func (h *health) goDown(now time.Time, reason string) *transition {
	h.probe = h.probes.newBackoff()
	h.scheduleProbe(now)
	return h.set(now, StateDown, reason)
}

func (h *health) scheduleProbe(now time.Time) {
	if h.probe == nil {
		h.probe = h.probes.newBackoff()
	}
	h.probeAt = now.Add(h.probes.next(h.probe))
}

// settle moves between up and degraded by the long-run failure share.
func (h *health) settle(now time.Time) *transition {
	switch {
	case h.state == StateUp && h.norm >= degradedShare:
		return h.set(now, StateDegraded, fmt.Sprintf("about %.0f%% of recent attempts failed", 100*h.norm))
	case h.state == StateDegraded && h.norm <= recoveredShare:
		return h.set(now, StateUp, "")
	}
	return nil
}
