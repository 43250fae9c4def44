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
	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/grafana/pyroscope/api/gen/proto/go/push/v1/pushv1connect"
	"google.golang.org/protobuf/proto"

	"github.com/pyrorelay/pyrorelay/store"
)

// Queue is the part of the store a Forwarder drains.
type Queue interface {
	ReadBatch(ctx context.Context, queue string, after uint64, max, maxBytes int) ([]store.Item, int, error)
	Ack(ctx context.Context, queue string, seqs ...uint64) error
	MoveToDeadLetter(ctx context.Context, queue string, seq uint64, d store.DeadLetter) error
	Wake(queue string) <-chan struct{}
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
	push    pushv1connect.PusherServiceClient
	metrics *Metrics
	log     *slog.Logger

	// delivered counts successes; a failure while it moves means other
	// entries get through, which singles this entry out (poison).
	delivered atomic.Uint64
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
	return &Forwarder{
		dest:    dest,
		queue:   q,
		client:  client,
		push:    pushv1connect.NewPusherServiceClient(client, dest.URL, connect.WithSendGzip()),
		metrics: metrics,
		log:     logger.With("destination", dest.Name),
	}, nil
}

// Name is the destination's name, which is also its queue's name.
func (f *Forwarder) Name() string { return f.dest.Name }

// Run drains the queue until ctx is done. Requests in flight then get up to
// the destination timeout to finish, and are acked if they succeed; what is
// not delivered stays queued for the next start.
func (f *Forwarder) Run(ctx context.Context) {
	work := make(chan store.Item)
	var wg sync.WaitGroup
	for range f.dest.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				f.deliver(ctx, it)
			}
		}()
	}
	defer func() {
		close(work)
		wg.Wait()
	}()

	poll := time.NewTicker(pollInterval)
	defer poll.Stop()
	var cursor uint64 // position of the last entry handed to a worker
	readBackoff := backoff.NewExponentialBackOff(backoff.WithMaxElapsedTime(0), backoff.WithMaxInterval(10*time.Second))
	for {
		items, quarantined, err := f.queue.ReadBatch(ctx, f.dest.Name, cursor, f.dest.Concurrency, maxBatchBytes)
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
			select {
			case work <- it:
				cursor = it.Seq
			case <-ctx.Done():
				return
			}
		}
	}
}

// deliver sends one entry until it is delivered, dead-lettered, or ctx ends.
func (f *Forwarder) deliver(ctx context.Context, it store.Item) {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(f.dest.MinBackoff),
		backoff.WithMaxInterval(f.dest.MaxBackoff),
		backoff.WithMaxElapsedTime(0), // the queue, not the backoff, decides when to stop
	)
	strikes := 0
	for attempt := 1; ; attempt++ {
		seen := f.delivered.Load()
		o := f.attempt(ctx, it.Entry)
		f.metrics.attempts.WithLabelValues(f.dest.Name, o.Verdict.String()).Inc()
		switch o.Verdict {
		case Delivered:
			f.delivered.Add(1)
			f.metrics.delivered.WithLabelValues(f.dest.Name).Add(float64(len(it.Entry.Body)))
			// Ack with a context of its own: a delivered entry must be
			// acked even while shutting down, or it is sent again.
			if err := f.queue.Ack(context.WithoutCancel(ctx), f.dest.Name, it.Seq); err != nil {
				f.log.Error("ack delivered entry", "entry", it.Entry.ID, "err", err)
			}
			return
		case Permanent:
			f.deadLetter(ctx, it, o, attempt, "permanent")
			return
		}
		if o.Strike || f.delivered.Load() != seen {
			strikes++
		}
		if strikes >= f.dest.MaxAttempts {
			o.Reason = fmt.Sprintf("poison: failed %d times while the destination took other entries; last: %s", attempt, o.Reason)
			f.deadLetter(ctx, it, o, attempt, "poison")
			return
		}
		wait := b.NextBackOff()
		if o.RetryAfter > wait {
			wait = min(o.RetryAfter, f.dest.MaxBackoff)
		}
		f.log.Debug("retrying entry", "entry", it.Entry.ID, "attempt", attempt, "status", o.Status, "reason", o.Reason, "wait", wait)
		if !sleep(ctx, wait) {
			return
		}
	}
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
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // keep the connection reusable
	o := ClassifyHTTP(resp.StatusCode, nil)
	if o.Verdict != Delivered {
		o.Reason = fmt.Sprintf("%d %s", resp.StatusCode, oneLine(snippet))
		o.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return o
}

func (f *Forwarder) sendPush(ctx context.Context, e *store.Entry) Outcome {
	msg := new(pushv1.PushRequest)
	if err := proto.Unmarshal(e.Body, msg); err != nil {
		return Outcome{Verdict: Permanent, Reason: "stored push does not decode: " + err.Error()}
	}
	req := connect.NewRequest(msg)
	req.Header().Set("User-Agent", UserAgent)
	if err := f.dest.authorize(req.Header(), e.Tenant); err != nil {
		return Outcome{Verdict: Retry, Reason: err.Error()}
	}
	_, err := f.push.Push(ctx, req)
	o := ClassifyConnect(err)
	if err != nil {
		o.Reason = oneLine([]byte(err.Error()))
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
