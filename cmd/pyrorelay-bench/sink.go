package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/grafana/pyroscope/api/gen/proto/go/push/v1/pushv1connect"
)

// sink is a stand-in Pyroscope destination on loopback: it takes /ingest
// and Push requests, records each request id it is given, and answers 200,
// or 503 while it is down (see faults), after its delay.
type sink struct {
	name string
	srv  *http.Server
	addr string

	down   atomic.Bool
	delay  atomic.Int64 // nanoseconds to sleep before answering
	faults sinkFaults   // set before the load starts
	upAt   atomic.Int64 // unix nanos when an outage (down) ended
	// firstOK is the first 200 after upAt, unix nanos.
	firstOK atomic.Int64

	mu   sync.Mutex
	seen map[uint64]uint32 // request id -> times delivered (answered 200)

	requests  atomic.Uint64 // all requests, refused ones included
	refused   atomic.Uint64
	delivered atomic.Uint64 // answered 200
	noID      atomic.Uint64 // 200s whose request carried no id
	bytes     atomic.Uint64
}

// startSink listens on addr ("127.0.0.1:0" for any port).
func startSink(name, addr string) (*sink, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sink %s: %w", name, err)
	}
	s := &sink{name: name, addr: ln.Addr().String(), seen: make(map[uint64]uint32)}
	mux := http.NewServeMux()
	mux.HandleFunc("/ingest", s.handleIngest)
	path, h := pushv1connect.NewPusherServiceHandler(sinkPush{s})
	mux.Handle(path, h)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL is the sink's base URL, for a relay destination.
func (s *sink) URL() string { return "http://" + s.addr }

func (s *sink) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

// admit runs what every request goes through: the count, the delay, and
// the outage; it reports whether to accept.
func (s *sink) admit(ctx context.Context) bool {
	s.requests.Add(1)
	if d := time.Duration(s.delay.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
	if s.down.Load() || s.faults.refuse(time.Now()) {
		s.refused.Add(1)
		return false
	}
	return true
}

func (s *sink) record(idText string) {
	s.delivered.Add(1)
	if up := s.upAt.Load(); up != 0 && s.firstOK.Load() == 0 {
		s.firstOK.CompareAndSwap(0, time.Now().UnixNano())
	}
	id, err := strconv.ParseUint(idText, 10, 64)
	if err != nil {
		s.noID.Add(1)
		return
	}
	s.mu.Lock()
	s.seen[id]++
	s.mu.Unlock()
}

func (s *sink) handleIngest(w http.ResponseWriter, r *http.Request) {
	// Read the whole body, as a server does, before answering.
	n, err := io.Copy(io.Discard, r.Body)
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusRequestTimeout)
		return
	}
	if !s.admit(r.Context()) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"code":"unavailable","message":"sink is down"}`)
		return
	}
	s.bytes.Add(uint64(n))
	s.record(queryParam(r.URL.RawQuery, reqIDParam))
	w.WriteHeader(http.StatusOK)
}

type sinkPush struct{ s *sink }

func (p sinkPush) Push(ctx context.Context, req *connect.Request[pushv1.PushRequest]) (*connect.Response[pushv1.PushResponse], error) {
	if !p.s.admit(ctx) {
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("sink is down"))
	}
	id := ""
	for _, series := range req.Msg.GetSeries() {
		for _, l := range series.GetLabels() {
			if l.GetName() == reqIDLabel {
				id = l.GetValue()
			}
		}
		for _, smp := range series.GetSamples() {
			p.s.bytes.Add(uint64(len(smp.GetRawProfile())))
		}
	}
	p.s.record(id)
	return connect.NewResponse(&pushv1.PushResponse{}), nil
}

// deliveryCheck compares what sinks saw with what the relay acknowledged.
type deliveryCheck struct {
	Acked      int `json:"acked"`
	Sinks      int `json:"sinks"`
	Missing    int `json:"missing"`    // (acked id, sink) pairs never delivered: must be 0
	Duplicates int `json:"duplicates"` // extra deliveries of an id to a sink (at-least-once)
	Unacked    int `json:"unacked"`    // ids delivered that the client never saw acknowledged
	NoID       int `json:"no_id"`      // deliveries that carried no request id
	// MissingSample names a few missing ids, to look them up in the relay.
	MissingSample []string `json:"missing_sample,omitempty"`
}

func checkDelivery(acked []uint64, sinks []*sink) deliveryCheck {
	c := deliveryCheck{Acked: len(acked), Sinks: len(sinks)}
	ackedSet := make(map[uint64]struct{}, len(acked))
	for _, id := range acked {
		ackedSet[id] = struct{}{}
	}
	for _, s := range sinks {
		s.mu.Lock()
		for _, id := range acked {
			if s.seen[id] == 0 {
				c.Missing++
				if len(c.MissingSample) < 5 {
					c.MissingSample = append(c.MissingSample, fmt.Sprintf("%s:%d", s.name, id))
				}
			}
		}
		for id, n := range s.seen {
			if n > 1 {
				c.Duplicates += int(n - 1)
			}
			if _, ok := ackedSet[id]; !ok {
				c.Unacked++
			}
		}
		s.mu.Unlock()
		c.NoID += int(s.noID.Load())
	}
	return c
}

// queryParam finds one parameter in a raw query without parsing the rest:
// the sinks must cost the machine little next to the relay they measure.
// The ids are digits, so no unescaping is needed.
func queryParam(raw, name string) string {
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}
