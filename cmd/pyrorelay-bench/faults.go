package main

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// sinkFaults is how a sink misbehaves on top of --mode, as the proxies and
// uplinks in front of real servers do: it refuses a share of requests at
// random with 503, and it is down for a while in every period (flapping).
type sinkFaults struct {
	failPercent          float64
	flapDown, flapPeriod time.Duration
	start                time.Time // flapping counts periods from here
}

// refuse reports whether to refuse a request arriving at now.
func (f *sinkFaults) refuse(now time.Time) bool {
	if f.flapPeriod > 0 && now.Sub(f.start)%f.flapPeriod < f.flapDown {
		return true
	}
	return f.failPercent > 0 && rand.Float64()*100 < f.failPercent
}

func (f *sinkFaults) String() string {
	s := ""
	if f.failPercent > 0 {
		s = fmt.Sprintf("%g%% random 503s", f.failPercent)
	}
	if f.flapPeriod > 0 {
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("down %s of every %s", f.flapDown, f.flapPeriod)
	}
	return s
}

// applyFaults gives the first n sinks (all if n is 0) the configured
// faults, from start on.
func applyFaults(cfg config, sinks []*sink, start time.Time) {
	for i, s := range sinks {
		if cfg.faultSinks == 0 || i < cfg.faultSinks {
			s.faults = sinkFaults{failPercent: cfg.failPercent, flapDown: cfg.flapDown, flapPeriod: cfg.flapPeriod, start: start}
		}
	}
}

// sinkDelivery is what one sink was delivered while the load ran: the
// figure that says whether a relay keeps up with a flaky destination,
// which acknowledgements alone do not.
type sinkDelivery struct {
	Name   string  `json:"name"`
	Faults string  `json:"faults,omitempty"`
	InLoad uint64  `json:"delivered_in_load"`
	PerS   float64 `json:"delivered_per_s"`
	// VsAcked is delivered over acknowledged during the load: 1 keeps up.
	VsAcked float64 `json:"delivered_vs_acked"`
	// QueuedAtEnd is the sink's queue when the load stopped.
	QueuedAtEnd float64 `json:"queued_at_load_end"`
}

// deliveredCounts snapshots what each sink was delivered so far.
func deliveredCounts(sinks []*sink) []uint64 {
	n := make([]uint64, len(sinks))
	for i, s := range sinks {
		n[i] = s.delivered.Load()
	}
	return n
}

// loadDelivery is each sink's delivery during a load that acknowledged
// acked requests in elapsed, from the counts taken at its start.
func loadDelivery(sinks []*sink, before []uint64, acked int, elapsed time.Duration, queued map[string]float64) []sinkDelivery {
	out := make([]sinkDelivery, len(sinks))
	for i, s := range sinks {
		d := sinkDelivery{Name: s.name, Faults: s.faults.String(), InLoad: s.delivered.Load() - before[i], QueuedAtEnd: queued[s.name]}
		if elapsed > 0 {
			d.PerS = float64(d.InLoad) / elapsed.Seconds()
		}
		if acked > 0 {
			d.VsAcked = float64(d.InLoad) / float64(acked)
		}
		out[i] = d
	}
	return out
}

// outageFigures are a long outage's (down-then-up with --down-for): how
// hard the relay knocked on a down destination once it had been down a
// minute, and how soon it delivered again once it was back.
type outageFigures struct {
	// RequestsPerS is requests per second per down sink from a minute
	// into the outage to its end.
	RequestsPerS float64 `json:"requests_per_s_after_first_minute"`
	// ResumeAfter is from the sinks' return to the last of them taking
	// its first entry.
	ResumeAfter time.Duration `json:"resume_after_ns"`
}

// minuteMark is the down sinks' request count a minute into the load.
type minuteMark struct {
	at       time.Time
	requests uint64
}

// markMinute returns the request count of the down sinks at when, or nil
// if the outage ended (stop closed) first.
func markMinute(stop <-chan struct{}, sinks []*sink, when time.Duration) *minuteMark {
	select {
	case <-stop:
		return nil
	case <-time.After(when):
	}
	m := &minuteMark{at: time.Now()}
	for _, s := range sinks {
		if s.down.Load() {
			m.requests += s.requests.Load()
		}
	}
	return m
}

// outage works out the figures once the sinks are back and have drained.
func outage(mark *minuteMark, up *sinksUp, sinks []*sink) *outageFigures {
	o := &outageFigures{}
	if mark != nil && up.down > 0 && up.at.After(mark.at) {
		o.RequestsPerS = float64(up.downRequests-mark.requests) / up.at.Sub(mark.at).Seconds() / float64(up.down)
	}
	for _, s := range sinks {
		if ok := s.firstOK.Load(); ok != 0 && s.upAt.Load() != 0 {
			o.ResumeAfter = max(o.ResumeAfter, time.Duration(ok-s.upAt.Load()))
		}
	}
	return o
}
