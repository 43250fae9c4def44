package relay

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/store"
)

// modelDest answers one attempt of entry id at time at (since the start).
type modelDest func(rng *rand.Rand, id uint64, at time.Duration) Outcome

func answer(status int) Outcome { return ClassifyHTTP(status, nil) }

func refused() Outcome { return ClassifyHTTP(0, fmt.Errorf("connection refused")) }

func randomFailures(share float64, status int) modelDest {
	return func(rng *rand.Rand, _ uint64, _ time.Duration) Outcome {
		if rng.Float64() < share {
			return answer(status)
		}
		return answer(http.StatusOK)
	}
}

// TestSchedulerModel drives the scheduler, its health state machine and its
// limiter with random failure sequences on a fake clock, and checks the
// invariants the forwarder relies on: every entry ends acked, dead-lettered
// for a reason about the entry itself, or still held; a down destination
// has at most one request in flight; nothing starts during a pause; and a
// destination that is back is noticed within its probe interval.
func TestSchedulerModel(t *testing.T) {
	const (
		entries     = 100 + int(arrivalsFor/arrivalEvery)
		maxStrikes  = 5
		probeMax    = 2 * time.Second
		outageStart = 2 * time.Second
		outageEnd   = 5 * time.Minute
	)
	poison := map[uint64]bool{7: true, 113: true}
	bad := map[uint64]bool{42: true}
	outage := func(at time.Duration) (time.Duration, bool) {
		switch {
		case at < outageStart:
			return 0, true
		case at < outageEnd:
			return 0, false
		}
		return outageEnd, true
	}
	tests := []struct {
		name string
		dest modelDest
		// back says since when the destination takes entries, if it does.
		back       func(at time.Duration) (time.Duration, bool)
		wantPoison map[uint64]bool
		wantBad    map[uint64]bool
		wantDown   bool
	}{
		{name: "healthy", dest: randomFailures(0, 0)},
		{name: "2% random 503s", dest: randomFailures(0.02, http.StatusServiceUnavailable)},
		{name: "20% random 503s", dest: randomFailures(0.2, http.StatusServiceUnavailable)},
		{name: "50% random 503s", dest: randomFailures(0.5, http.StatusServiceUnavailable)},
		{name: "50% random 502s", dest: randomFailures(0.5, http.StatusBadGateway)},
		{name: "30% random 500s", dest: randomFailures(0.3, http.StatusInternalServerError)},
		{name: "20% random 429s", dest: randomFailures(0.2, http.StatusTooManyRequests)},
		{name: "poison and bad entries among 5% random 503s", dest: func(rng *rand.Rand, id uint64, at time.Duration) Outcome {
			switch {
			case poison[id]:
				return answer(http.StatusInternalServerError)
			case bad[id]:
				return answer(http.StatusBadRequest)
			}
			return randomFailures(0.05, http.StatusServiceUnavailable)(rng, id, at)
		}, wantPoison: poison, wantBad: bad},
		{name: "down for minutes", wantDown: true, back: outage, dest: func(rng *rand.Rand, id uint64, at time.Duration) Outcome {
			if at >= outageStart && at < outageEnd {
				return refused()
			}
			return answer(http.StatusOK)
		}},
		{name: "misconfigured for minutes", wantDown: true, back: outage, dest: func(rng *rand.Rand, id uint64, at time.Duration) Outcome {
			if at >= outageStart && at < outageEnd {
				return answer(http.StatusUnauthorized)
			}
			return answer(http.StatusOK)
		}},
		{name: "flapping 3s of every 10s", back: func(at time.Duration) (time.Duration, bool) {
			phase := at % (10 * time.Second)
			return at - phase + 3*time.Second, phase >= 3*time.Second
		}, dest: func(rng *rand.Rand, id uint64, at time.Duration) Outcome {
			if at%(10*time.Second) < 3*time.Second {
				return refused()
			}
			return answer(http.StatusOK)
		}},
	}
	for _, tt := range tests {
		for seed := range uint64(5) {
			t.Run(fmt.Sprintf("%s/seed %d", tt.name, seed), func(t *testing.T) {
				runModel(t, seed, tt.dest, tt.back, entries, maxStrikes, probeMax, tt.wantDown, func(acked, permanent, poisoned map[uint64]int) {
					for id := range uint64(entries) {
						switch {
						case tt.wantPoison[id]:
							if poisoned[id] != 1 {
								t.Errorf("poison entry %d: dead-lettered as poison %d times, want once", id, poisoned[id])
							}
						case tt.wantBad[id]:
							if permanent[id] != 1 {
								t.Errorf("bad entry %d: dead-lettered as permanent %d times, want once", id, permanent[id])
							}
						default:
							if acked[id] != 1 || permanent[id]+poisoned[id] != 0 {
								t.Errorf("entry %d: acked %d times, dead-lettered %d times; want acked once", id, acked[id], permanent[id]+poisoned[id])
							}
						}
					}
				})
			})
		}
	}
}

// The model's traffic: entries at the start, then one every arrivalEvery
// for arrivalsFor, so that there is always something to deliver while
// a destination is tested.
const (
	arrivalEvery = 250 * time.Millisecond
	arrivalsFor  = 6 * time.Minute
)

func runModel(t *testing.T, seed uint64, dest modelDest, back func(time.Duration) (time.Duration, bool), entries, maxStrikes int, probeMax time.Duration, wantDown bool,
	check func(acked, permanent, poisoned map[uint64]int)) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	start := time.Unix(1_000_000, 0)
	now := start
	policy := retryPolicy{min: 50 * time.Millisecond, max: 30 * time.Second}
	s := &scheduler{
		now:       func() time.Time { return now },
		policy:    policy,
		maxHeld:   1 << 30,
		lim:       newLimiter(2, 8, nil),
		health:    newHealth(now, retryPolicy{min: policy.min, max: probeMax}, 8),
		onWaiting: func(int) {},
	}
	item := func(i int) store.Item {
		return store.Item{Seq: uint64(i + 1), Entry: &store.Entry{ID: uint64(i), Body: []byte("x")}}
	}
	initial := entries - int(arrivalsFor/arrivalEvery)
	for i := range initial {
		s.add([]store.Item{item(i)}, false)
	}
	arrived := initial
	nextArrival := start.Add(arrivalEvery)

	type flight struct {
		j    *job
		ends time.Time
	}
	var inFlight []flight
	acked, permanent, poisoned := map[uint64]int{}, map[uint64]int{}, map[uint64]int{}
	var downSince, lastProbe time.Time
	sawDown := false
	for step := 0; ; step++ {
		if step > 1_000_000 {
			t.Fatalf("not settled after %d steps at %v: %d acked", step, now.Sub(start), len(acked))
		}
		for arrived < entries && !nextArrival.After(now) {
			s.add([]store.Item{item(arrived)}, false)
			arrived++
			nextArrival = nextArrival.Add(arrivalEvery)
		}
		// Start what may start now.
		for {
			s.mu.lock()
			state := s.health.state
			j, at := s.pickLocked(now)
			if j != nil {
				if state == StateDown && len(inFlight) > 0 {
					t.Fatalf("at %v: a request started while the destination is down and %d are in flight", now.Sub(start), len(inFlight))
				}
				if state != StateDown && len(inFlight) >= s.lim.current() {
					t.Fatalf("at %v: %d in flight, limit %d", now.Sub(start), len(inFlight)+1, s.lim.current())
				}
				if now.Before(s.pauseUntil) {
					t.Fatalf("at %v: a request started during a pause until %v", now.Sub(start), s.pauseUntil.Sub(start))
				}
				if j.probe {
					if !lastProbe.IsZero() && now.Sub(lastProbe) > probeMax+time.Second {
						t.Fatalf("at %v: %v between probes, more than the probe interval %v", now.Sub(start), now.Sub(lastProbe), probeMax)
					}
					lastProbe = now
				}
				s.inFlight++
			}
			s.mu.unlock()
			if j == nil {
				_ = at
				break
			}
			if j.it.Entry == nil {
				// A job that waited for a retry is sent after its entry
				// is read again, as the forwarder's reload does.
				s.loaded(j, item(int(j.it.Seq-1)).Entry)
			}
			// Answers take 1-20 ms.
			inFlight = append(inFlight, flight{j, now.Add(time.Duration(1+rng.IntN(20)) * time.Millisecond)})
			// Only entries about to be sent or in flight are in memory;
			// waiting ones keep their position alone.
			s.mu.lock()
			heldBytes, want := s.held, len(s.fresh)+len(inFlight)
			s.mu.unlock()
			if heldBytes != want {
				t.Fatalf("at %v: %d bytes held, want %d (one per entry read ahead or in flight)", now.Sub(start), heldBytes, want)
			}
		}
		if len(inFlight) == 0 {
			waiting, held := s.counts()
			if held == 0 && arrived == entries {
				break
			}
			// Nothing in flight: move the clock to when something may start.
			s.mu.lock()
			_, at := s.pickLocked(now)
			s.mu.unlock()
			if arrived < entries && (at.IsZero() || nextArrival.Before(at)) {
				at = nextArrival
			}
			if at.IsZero() || !at.After(now) {
				t.Fatalf("at %v: %d held (%d waiting), nothing in flight, and nothing to wait for", now.Sub(start), held, waiting)
			}
			now = at
			continue
		}
		// Finish the request that ends first.
		first := 0
		for i, f := range inFlight {
			if f.ends.Before(inFlight[first].ends) {
				first = i
			}
		}
		f := inFlight[first]
		if arrived < entries && nextArrival.Before(f.ends) {
			now = nextArrival
			continue
		}
		inFlight = append(inFlight[:first], inFlight[first+1:]...)
		if f.ends.After(now) {
			now = f.ends
		}
		id := f.j.it.Entry.ID
		o := dest(rng, id, now.Sub(start))
		wasDown := s.health.state == StateDown
		r := s.done(f.j, o, 10*time.Millisecond, maxStrikes)
		if s.health.state == StateDown && !wasDown {
			downSince, lastProbe, sawDown = now, time.Time{}, true
		}
		if s.health.state == StateDown && back != nil {
			// A destination that is back is noticed within a probe
			// interval (and an answer's time).
			if since, ok := back(now.Sub(start)); ok && now.Sub(start)-since > probeMax+time.Second {
				t.Fatalf("at %v: still down (since %v), although the destination took entries again at %v",
					now.Sub(start), downSince.Sub(start), since)
			}
		}
		switch r.decision {
		case decideAck:
			acked[id]++
		case decidePermanent:
			permanent[id]++
		case decidePoison:
			poisoned[id]++
		}
	}
	if wantDown && !sawDown {
		t.Error("the destination never went down")
	}
	check(acked, permanent, poisoned)
}

// TestRetryPolicyNeverWaitsPastItsMaximum: the backoff library applies its
// jitter after its cap, which would let a 5 min maximum wait 7.5 min.
func TestRetryPolicyNeverWaitsPastItsMaximum(t *testing.T) {
	p := retryPolicy{min: 500 * time.Millisecond, max: 5 * time.Minute}
	b := p.newBackoff()
	for i := range 200 {
		if d := p.next(b); d > p.max || d <= 0 {
			t.Fatalf("wait %d: %v, want in (0, %v]", i, d, p.max)
		}
	}
	if d := p.retryAfter(time.Hour); d != p.max {
		t.Errorf("Retry-After of an hour waits %v, want the maximum %v", d, p.max)
	}
	if d := p.retryAfter(time.Second); d != time.Second {
		t.Errorf("Retry-After of a second waits %v", d)
	}
}
