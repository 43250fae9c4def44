package relay

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"

	"github.com/pyrorelay/pyrorelay/store"
)

// UserAgent is sent with every forwarded request.
var UserAgent = "pyrorelay/dev"

// client sends single entries to one destination and classifies the answers:
// one attempt, no retries. The Forwarder schedules its attempts around a
// queue; the Sender retries them in place for replay.
type client struct {
	dest    Destination
	http    *http.Client
	push    pushClients
	metrics *Metrics
	log     *slog.Logger

	// lastFailure is the last failed attempt, for LastFailure.
	lastFailure atomic.Pointer[Failure]
}

// newClient validates dest (with defaults applied) and builds its client.
// metrics and logger may be nil.
func newClient(dest Destination, metrics *Metrics, logger *slog.Logger) (*client, error) {
	dest = dest.WithDefaults()
	if err := dest.Validate(); err != nil {
		return nil, err
	}
	hc, err := dest.httpClient()
	if err != nil {
		return nil, fmt.Errorf("destination %q: %w", dest.Name, err)
	}
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &client{
		dest:    dest,
		http:    hc,
		push:    newPushClients(hc, dest.URL),
		metrics: metrics,
		log:     logger.With("destination", dest.Name),
	}, nil
}

// Failure is the last failed attempt to a destination.
type Failure struct {
	At     time.Time
	Status int // HTTP status, 0 for a transport error
	Reason string
}

// attempt sends e once and counts the attempt by its verdict. A request
// already sent when ctx ends may finish within the destination timeout, so
// its answer is not thrown away.
func (c *client) attempt(ctx context.Context, e *store.Entry) Outcome {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.dest.Timeout)
	defer cancel()
	c.metrics.inFlight.WithLabelValues(c.dest.Name).Inc()
	defer c.metrics.inFlight.WithLabelValues(c.dest.Name).Dec()
	start := time.Now()
	var o Outcome
	if e.Kind == store.KindPush {
		o = c.sendPush(actx, e)
	} else {
		o = c.sendIngest(actx, e)
	}
	c.metrics.latency.WithLabelValues(c.dest.Name).Observe(time.Since(start).Seconds())
	c.metrics.attempts.WithLabelValues(c.dest.Name, o.Verdict.String()).Inc()
	switch o.Verdict {
	case Delivered:
		c.metrics.deliveredBytes.WithLabelValues(c.dest.Name).Add(float64(len(e.Body)))
	default:
		c.lastFailure.Store(&Failure{At: time.Now(), Status: o.Status, Reason: o.Reason})
	}
	return o
}

func (c *client) sendIngest(ctx context.Context, e *store.Entry) Outcome {
	u := c.dest.URL + "/ingest"
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
	if err := c.dest.authorize(req.Header, e.Tenant); err != nil {
		return Outcome{Verdict: Retry, Reason: err.Error()}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		o := ClassifyHTTP(0, err)
		o.Reason = c.dest.redact(o.Reason)
		return o
	}
	defer resp.Body.Close()
	o := ClassifyHTTP(resp.StatusCode, nil)
	if o.Verdict != Delivered {
		// Only a refusal's body is worth reading: it says why.
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		// A server or proxy may echo the request's credentials.
		o.Reason = fmt.Sprintf("%d %s", resp.StatusCode, oneLine([]byte(c.dest.redact(string(snippet)))))
		o.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // keep the connection reusable
	return o
}

func (c *client) sendPush(ctx context.Context, e *store.Entry) Outcome {
	pc, err := c.push.forBody(e.Body)
	if err != nil {
		return Outcome{Verdict: Permanent, Reason: err.Error()}
	}
	req := connect.NewRequest(&storedPush{b: e.Body})
	req.Header().Set("User-Agent", UserAgent)
	if err := c.dest.authorize(req.Header(), e.Tenant); err != nil {
		return Outcome{Verdict: Retry, Reason: err.Error()}
	}
	_, err = pc.CallUnary(ctx, req)
	o := ClassifyConnect(err)
	if err != nil {
		o.Reason = oneLine([]byte(c.dest.redact(err.Error())))
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
