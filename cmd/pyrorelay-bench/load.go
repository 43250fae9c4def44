package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/grafana/pyroscope/api/gen/proto/go/push/v1/pushv1connect"
)

// loadSpec says how hard and how long to drive the relay.
type loadSpec struct {
	url      string
	endpoint string // ingest or push
	clients  int
	duration time.Duration // used when count is 0
	count    int
	timeout  time.Duration // per request
	rate     float64       // requests per second over all clients; 0: as fast as they can
	payload  *payload
	// firstID numbers this run's requests; ids are unique within a run.
	firstID uint64
}

// loadResult is what the clients saw.
type loadResult struct {
	Sent      int            `json:"sent"`
	Acked     int            `json:"acked"`
	Errors    map[string]int `json:"errors,omitempty"` // by status, or by kind of failure
	Elapsed   time.Duration  `json:"elapsed_ns"`
	latencies []time.Duration
	ackedIDs  []uint64
}

// ackCounter counts acknowledgements as they come, for rates measured
// while the load runs (a backlog drain that starts mid-load).
type ackCounter struct{ n atomic.Int64 }

// newLoadClient returns an HTTP client with a connection per load client:
// the clients model many processes each holding a connection.
func newLoadClient(clients int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:               nil, // loopback only: never through a proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        clients * 2,
		MaxIdleConnsPerHost: clients * 2,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// runLoad drives spec and returns once the count is sent or the duration
// is over, and every request in flight has its answer.
func runLoad(ctx context.Context, spec loadSpec, acks *ackCounter) loadResult {
	client := newLoadClient(spec.clients, spec.timeout)
	defer client.CloseIdleConnections()
	push := pushv1connect.NewPusherServiceClient(client, spec.url)
	prefix := spec.payload.ingestPrefix(spec.url)

	var next atomic.Uint64
	next.Store(spec.firstID)
	last := spec.firstID + uint64(spec.count)
	start := time.Now()
	deadline := start.Add(spec.duration)

	type clientResult struct {
		sent      int
		errors    map[string]int
		latencies []time.Duration
		acked     []uint64
	}
	results := make([]clientResult, spec.clients)
	var wg sync.WaitGroup
	// With a rate, a client sends only when the pacer lets it.
	var pace <-chan time.Time
	if spec.rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / spec.rate))
		defer t.Stop()
		pace = t.C
	}
	for c := range spec.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[c]
			r.errors = map[string]int{}
			for ctx.Err() == nil {
				if spec.count == 0 && !time.Now().Before(deadline) {
					return
				}
				if pace != nil {
					var end <-chan time.Time
					if spec.count == 0 {
						end = time.After(time.Until(deadline))
					}
					select {
					case <-pace:
					case <-ctx.Done():
						return
					case <-end:
						return
					}
				}
				id := next.Add(1)
				if spec.count > 0 && id > last {
					return
				}
				t0 := time.Now()
				var status string
				if spec.endpoint == "push" {
					status = sendPush(ctx, push, spec.payload, id)
				} else {
					status = sendIngest(ctx, client, prefix, spec.payload, id)
				}
				lat := time.Since(t0)
				r.sent++
				if status == "" {
					r.acked = append(r.acked, id)
					r.latencies = append(r.latencies, lat)
					acks.n.Add(1)
				} else {
					r.errors[status]++
				}
			}
		}()
	}
	wg.Wait()
	res := loadResult{Elapsed: time.Since(start), Errors: map[string]int{}}
	for _, r := range results {
		res.Sent += r.sent
		res.Acked += len(r.acked)
		res.latencies = append(res.latencies, r.latencies...)
		res.ackedIDs = append(res.ackedIDs, r.acked...)
		for k, v := range r.errors {
			res.Errors[k] += v
		}
	}
	slices.Sort(res.latencies)
	return res
}

// sendIngest posts one /ingest request; "" means acknowledged (2xx),
// anything else names the failure.
func sendIngest(ctx context.Context, client *http.Client, prefix string, p *payload, id uint64) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.ingestURL(prefix, id), bytes.NewReader(p.body))
	if err != nil {
		return "build request: " + err.Error()
	}
	req.Header.Set("Content-Type", p.contentType)
	resp, err := client.Do(req)
	if err != nil {
		return failure(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return ""
	}
	return strconv.Itoa(resp.StatusCode)
}

func sendPush(ctx context.Context, client pushv1connect.PusherServiceClient, p *payload, id uint64) string {
	_, err := client.Push(ctx, connect.NewRequest(p.pushRequest(id)))
	if err == nil {
		return ""
	}
	if code := connect.CodeOf(err); code != connect.CodeUnknown {
		return "push " + code.String()
	}
	return failure(err)
}

// failure names a transport error briefly, so that errors group.
func failure(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	default:
		return "transport: " + err.Error()
	}
}

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
