package relay

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyrorelay/pyrorelay/store"
)

// Metrics are the forwarders' Prometheus metrics, labelled by destination
// name.
type Metrics struct {
	attempts     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	deadLettered *prometheus.CounterVec
	quarantined  *prometheus.CounterVec
	inFlight     *prometheus.GaugeVec
	concurrency  *prometheus.GaugeVec
	// deliveredBytes counts bytes, not entries.
	deliveredBytes *prometheus.CounterVec
	up             *prometheus.GaugeVec
	state          *prometheus.GaugeVec
	lastDelivery   *prometheus.GaugeVec
	retriesWaiting *prometheus.GaugeVec
	probes         *prometheus.CounterVec
}

// NewMetrics creates the forwarder metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pyrorelay_forward_attempts_total",
			Help: "Forward attempts by destination and result (delivered, retry, permanent).",
		}, []string{"destination", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pyrorelay_forward_duration_seconds",
			Help:    "Time of one forward attempt, by destination.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"destination"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pyrorelay_dead_lettered_total",
			Help: "Entries moved to dead-letter, by destination and reason (permanent, poison, expired).",
		}, []string{"destination", "reason"}),
		quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pyrorelay_quarantined_total",
			Help: "Queue entries whose record failed its checksum and was moved to quarantine.",
		}, []string{"destination"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pyrorelay_forward_in_flight",
			Help: "Forward requests in flight, by destination.",
		}, []string{"destination"}),
		concurrency: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pyrorelay_forward_concurrency",
			Help: "Forward requests allowed in flight now, by destination: its concurrency while the queue keeps up, up to its max_concurrency while a backlog drains.",
		}, []string{"destination"}),
		deliveredBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pyrorelay_delivered_bytes_total",
			Help: "Bytes of entries delivered, by destination.",
		}, []string{"destination"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pyrorelay_destination_up",
			Help: "1 while a destination is up or degraded, 0 while it is down (nothing gets through, or it is misconfigured: see the log).",
		}, []string{"destination"}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pyrorelay_destination_state",
			Help: "1 for the state a destination is in (up, degraded, down), 0 for the others.",
		}, []string{"destination", "state"}),
		lastDelivery: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pyrorelay_destination_last_success_timestamp_seconds",
			Help: "Unix time of the last entry a destination took; 0 if none since start.",
		}, []string{"destination"}),
		retriesWaiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pyrorelay_retries_waiting",
			Help: "Entries whose attempt failed and that wait aside for their next one, by destination.",
		}, []string{"destination"}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pyrorelay_destination_probes_total",
			Help: "Probe requests sent to a down destination (one at a time, with capped backoff).",
		}, []string{"destination"}),
	}
	if reg != nil {
		reg.MustRegister(m.attempts, m.latency, m.deadLettered, m.quarantined, m.inFlight, m.concurrency,
			m.deliveredBytes, m.up, m.state, m.lastDelivery, m.retriesWaiting, m.probes)
	}
	return m
}

// InitDestination creates every series of the destination at zero. A
// counter series that first appears at 1 has no increase() to Prometheus,
// so without this the first dead letter of a destination would never fire
// an alert, and dashboards would show gaps instead of zeros.
func (m *Metrics) InitDestination(name string) {
	for _, r := range []Verdict{Delivered, Retry, Permanent} {
		m.attempts.WithLabelValues(name, r.String())
	}
	for _, reason := range []string{"permanent", "poison", store.ReasonExpired} {
		m.deadLettered.WithLabelValues(name, reason)
	}
	m.latency.WithLabelValues(name)
	m.quarantined.WithLabelValues(name)
	m.inFlight.WithLabelValues(name)
	m.deliveredBytes.WithLabelValues(name)
	m.lastDelivery.WithLabelValues(name)
	m.retriesWaiting.WithLabelValues(name)
	m.probes.WithLabelValues(name)
	m.setState(name, StateUp)
}

// setState records the health state of a destination.
func (m *Metrics) setState(name string, s State) {
	up := 0.0
	if s != StateDown {
		up = 1
	}
	m.up.WithLabelValues(name).Set(up)
	for _, st := range []State{StateUp, StateDegraded, StateDown} {
		v := 0.0
		if st == s {
			v = 1
		}
		m.state.WithLabelValues(name, st.String()).Set(v)
	}
}

// StatsSource is what the queue collector reads at scrape time.
type StatsSource interface {
	Stats() (map[string]store.QueueStats, error)
}

// QueueCollector exports the store's per-queue counters at scrape time, so
// the numbers are what is on disk, not what this process has seen.
type QueueCollector struct {
	src                              StatsSource
	now                              func() time.Time
	entries, bytes, oldest, dead, db *prometheus.Desc
}

// NewQueueCollector returns a collector over src.
func NewQueueCollector(src StatsSource) *QueueCollector {
	l := []string{"destination"}
	return &QueueCollector{
		src:     src,
		now:     time.Now,
		entries: prometheus.NewDesc("pyrorelay_queue_entries", "Entries waiting in the queue of a destination.", l, nil),
		bytes:   prometheus.NewDesc("pyrorelay_queue_bytes", "Bytes waiting in the queue of a destination.", l, nil),
		oldest:  prometheus.NewDesc("pyrorelay_queue_oldest_age_seconds", "Age of the oldest entry waiting for a destination; 0 when the queue is empty.", l, nil),
		dead:    prometheus.NewDesc("pyrorelay_dead_letter_entries", "Entries in the dead-letter list of a destination.", l, nil),
		db:      prometheus.NewDesc("pyrorelay_dead_letter_bytes", "Bytes in the dead-letter list of a destination.", l, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *QueueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.entries, c.bytes, c.oldest, c.dead, c.db} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *QueueCollector) Collect(ch chan<- prometheus.Metric) {
	stats, err := c.src.Stats()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.entries, err)
		return
	}
	now := c.now()
	for name, st := range stats {
		age := 0.0
		if !st.Oldest.IsZero() {
			age = max(now.Sub(st.Oldest).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(st.Entries), name)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(st.Bytes), name)
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age, name)
		ch <- prometheus.MustNewConstMetric(c.dead, prometheus.GaugeValue, float64(st.DeadEntries), name)
		ch <- prometheus.MustNewConstMetric(c.db, prometheus.GaugeValue, float64(st.DeadBytes), name)
	}
}
