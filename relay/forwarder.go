package relay

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"github.com/cenkalti/backoff/v4"

	"github.com/pyrorelay/pyrorelay/store"
)

// Queue is the part of the store a Forwarder drains.
type Queue interface {
	ReadBatch(ctx context.Context, queue string, after uint64, max, maxBytes int) ([]store.Item, int, error)
	Ack(ctx context.Context, queue string, seqs ...uint64) error
	MoveToDeadLetter(ctx context.Context, queue string, seq uint64, d store.DeadLetter) error
	Wake(queue string) <-chan struct{}
	Expire(ctx context.Context, queue string, cutoff time.Time) (int, error)
}

// UserAgent is sent with every forwarded request.
var UserAgent = "pyrorelay/dev"

// maxBatchBytes bounds what one read of the queue holds in memory.
const maxBatchBytes = 32 << 20

// pollInterval is a safety net under the wake signal: a queue is re-read
// this often even when nothing says it changed (for entries put by another
// tool, such as an import, that has no way to wake this process).
const pollInterval = 30 * time.Second

// Forwarder drains one destination's queue. Create it with NewForwarder and
// run it with Run.
type Forwarder struct {
	dest    Destination
	queue   Queue
	client  *http.Client
	push    pushClients
	metrics *Metrics
	log     *slog.Logger

	// delivered counts successes; a failure while it moves means other
	// entries get through, which singles this entry out (poison).
	delivered atomic.Uint64
	// lastFailure is the last failed attempt, for LastFailure.
	lastFailure atomic.Pointer[Failure]
	// lim sets the requests in flight; backlog is whether the last read
	// of the queue found more than it asked for room for.
	lim     *limiter
	backlog atomic.Bool
}

// NewForwarder returns a forwarder for dest over q. metrics may be shared
// by all forwarders; logger may be nil.
func NewForwarder(dest Destination, q Queue, metrics *Metrics, logger *slog.Logger) (*Forwarder, error) {
	dest = dest.WithDefaults()
	if err := dest.Validate(); err != nil {
		return nil, err
	}
	client, err := dest.httpClient()
	if err != nil {
		return nil, fmt.Errorf("destination %q: %w", dest.Name, err)
	}
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	gauge := metrics.concurrency.WithLabelValues(dest.Name)
	return &Forwarder{
		dest:    dest,
		queue:   q,
		client:  client,
		push:    newPushClients(client, dest.URL),
		metrics: metrics,
		log:     logger.With("destination", dest.Name),
		lim:     newLimiter(dest.Concurrency, dest.MaxConcurrency, func(n int) { gauge.Set(float64(n)) }),
	}, nil
}

// Name is the destination's name, which is also its queue's name.
func (f *Forwarder) Name() string { return f.dest.Name }

// Run drains the queue until ctx is done. Requests in flight then get up to
// the destination timeout to finish, and are acked if they succeed; what is
// not delivered stays queued for the next start.
func (f *Forwarder) Run(ctx context.Context) {
	work := make(chan store.Item)
	acks := newAcker(f.queue, f.dest.Name, f.log)
	var wg sync.WaitGroup
	// A worker per request that may be in flight; the limiter decides how
	// many are (the dispatcher takes a slot before it hands an entry over).
	for range f.dest.MaxConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				f.deliver(ctx, it, acks)
				f.lim.release()
			}
		}()
	}
	defer func() {
		close(work)
		wg.Wait()
		acks.close() // the last acks are durable before Run returns
	}()
	if f.dest.MaxAge > 0 {
		// Its own goroutine: the dispatcher below blocks while every
		// worker retries, which is exactly when entries grow old.
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.expireLoop(ctx)
		}()
	}

	poll := time.NewTicker(pollInterval)
	defer poll.Stop()
	var cursor uint64 // position of the last entry handed to a worker
	readBackoff := backoff.NewExponentialBackOff(backoff.WithMaxElapsedTime(0), backoff.WithMaxInterval(10*time.Second))
	for {
		want := f.lim.current()
		items, quarantined, err := f.queue.ReadBatch(ctx, f.dest.Name, cursor, want, maxBatchBytes)
		if quarantined > 0 {
			f.metrics.quarantined.WithLabelValues(f.dest.Name).Add(float64(quarantined))
			f.log.Error("corrupt records moved to quarantine", "count", quarantined)
		}
		if err != nil {
			if ctx.Err() != nil {
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
		f.backlog.Store(full)
		if !full {
			f.lim.caughtUp()
		}
		if len(items) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-f.queue.Wake(f.dest.Name):
			case <-poll.C:
			}
			continue
		}
		for _, it := range items {
			if !f.lim.acquire(ctx) {
				return
			}
			select {
			case work <- it:
				cursor = it.Seq
			case <-ctx.Done():
				f.lim.release()
				return
			}
		}
	}
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
			f.metrics.deadLettered.WithLabelValues(f.dest.Name, "expired").Add(float64(n))
			f.log.Warn("entries older than max_age moved to dead-letter", "count", n, "max_age", f.dest.MaxAge)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// deliver sends one entry until it is delivered, dead-lettered, or ctx ends.
// The retry policy is send's; deliver only decides what the queue does with
// the result.
func (f *Forwarder) deliver(ctx context.Context, it store.Item, acks *acker) {
	var expired func(*store.Entry) bool
	if f.dest.MaxAge > 0 {
		expired = f.outlived
	}
	o, attempts, fate := f.send(ctx, it.Entry, expired)
	switch fate {
	case FateDelivered:
		// Acks share commits (see acker); the worker does not wait for one.
		acks.ack(it.Seq)
		f.lim.succeeded(f.backlog.Load())
	case FatePermanent:
		f.deadLetter(ctx, it, o, attempts, "permanent")
	case FatePoison:
		f.deadLetter(ctx, it, o, attempts, "poison")
	case FateExpired:
		// Left queued: expireLoop moves it to dead-letter, counts it and
		// logs the count, once, whoever noticed first (Debug here: after
		// a long outage every queued entry may take this way).
		f.log.Debug("entry older than max_age: not sent again, expiry moves it to dead-letter", "entry", it.Entry.ID, "attempts", attempts, "max_age", f.dest.MaxAge, "last_reason", o.Reason)
	}
}

// outlived reports whether e has waited longer than max_age. expireLoop
// moves such an entry to dead-letter; a worker still retrying it would
// deliver it after the operator was told it was not, and a `dead-letter
// requeue` would then deliver it twice.
func (f *Forwarder) outlived(e *store.Entry) bool {
	return time.Since(e.ReceivedAt) > f.dest.MaxAge
}

func (f *Forwarder) deadLetter(ctx context.Context, it store.Item, o Outcome, attempts int, kind string) {
	err := f.queue.MoveToDeadLetter(context.WithoutCancel(ctx), f.dest.Name, it.Seq, store.DeadLetter{
		Reason: o.Reason, Status: o.Status, Attempts: attempts,
	})
	if err != nil {
		f.log.Error("dead-letter entry", "entry", it.Entry.ID, "err", err)
		return
	}
	f.metrics.deadLettered.WithLabelValues(f.dest.Name, kind).Inc()
	f.log.Warn("entry moved to dead-letter", "entry", it.Entry.ID, "kind", kind, "status", o.Status, "reason", o.Reason, "attempts", attempts)
}

// attempt sends e once. A request already sent when ctx ends may finish
// within the destination timeout, so its answer is not thrown away.
func (f *Forwarder) attempt(ctx context.Context, e *store.Entry) Outcome {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.dest.Timeout)
	defer cancel()
	f.metrics.inFlight.WithLabelValues(f.dest.Name).Inc()
	defer f.metrics.inFlight.WithLabelValues(f.dest.Name).Dec()
	start := time.Now()
	defer func() { f.metrics.latency.WithLabelValues(f.dest.Name).Observe(time.Since(start).Seconds()) }()
	if e.Kind == store.KindPush {
		return f.sendPush(actx, e)
	}
	return f.sendIngest(actx, e)
}

func (f *Forwarder) sendIngest(ctx context.Context, e *store.Entry) Outcome {
	u := f.dest.URL + "/ingest"
	if e.Query != "" {
		u += "?" + e.Query
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(e.Body))
	if err != nil {
		return Outcome{Verdict: Permanent, Reason: "build request: " + err.Error()}
	}
	if e.ContentType != "" {
		req.Header.Set("Content-Type", e.ContentType)
	}
	if e.ContentEncoding != "" {
		req.Header.Set("Content-Encoding", e.ContentEncoding)
	}
	req.Header.Set("User-Agent", UserAgent)
	if err := f.dest.authorize(req.Header, e.Tenant); err != nil {
		return Outcome{Verdict: Retry, Reason: err.Error()}
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return ClassifyHTTP(0, err)
	}
	defer resp.Body.Close()
	o := ClassifyHTTP(resp.StatusCode, nil)
	if o.Verdict != Delivered {
		// Only a refusal's body is worth reading: it says why.
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		// A server or proxy may echo the request's credentials.
		o.Reason = fmt.Sprintf("%d %s", resp.StatusCode, oneLine([]byte(f.dest.redact(string(snippet)))))
		o.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // keep the connection reusable
	return o
}

func (f *Forwarder) sendPush(ctx context.Context, e *store.Entry) Outcome {
	client, err := f.push.forBody(e.Body)
	if err != nil {
		return Outcome{Verdict: Permanent, Reason: err.Error()}
	}
	req := connect.NewRequest(&storedPush{b: e.Body})
	req.Header().Set("User-Agent", UserAgent)
	if err := f.dest.authorize(req.Header(), e.Tenant); err != nil {
		return Outcome{Verdict: Retry, Reason: err.Error()}
	}
	_, err = client.CallUnary(ctx, req)
	o := ClassifyConnect(err)
	if err != nil {
		o.Reason = oneLine([]byte(f.dest.redact(err.Error())))
	}
	return o
}

// oneLine makes a server's answer fit a log line or a dead-letter reason.
func oneLine(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "?")
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
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
