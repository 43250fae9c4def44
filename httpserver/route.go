package httpserver

import (
	"context"
	"fmt"
	"sync"

	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/grafana/pyroscope/api/model/labelset"
	"google.golang.org/protobuf/proto"

	"github.com/pyrorelay/pyrorelay/route"
	"github.com/pyrorelay/pyrorelay/store"
)

// Router chooses the destination queues of a profile from its labels and
// the tenant that sent it (the X-Scope-OrgID header, empty when absent,
// whether or not the tenant is passed through). *route.Table implements
// it. The returned slice is sorted without duplicates and is not modified.
//
// The labels come as a function, called at most once and only if a rule
// reads a label: with no such rule (a receiver without routes), no request
// pays for building them.
type Router interface {
	RouteBy(labels func() map[string]string, tenant string) []string
}

// IngestLabels are the labels an /ingest request is routed by, read from
// its name (`app.cpu{env=prod,region=eu}`) with the Pyroscope server's own
// parser, the way the server labels the profile it stores: every label of
// the name, and service_name, the application name without a profile-type
// suffix ("app"), unless the name sets service_name itself, in which case
// the application name is app_name (unless that is set too).
//
// __name__ is left out: the parser puts the application name there, but in
// Pyroscope __name__ is the profile type (process_cpu, memory...), which
// for /ingest depends on the body; a rule on __name__ sees it empty.
func IngestLabels(name string) (map[string]string, error) {
	ls, err := labelset.Parse(name)
	if err != nil {
		return nil, fmt.Errorf("bad name %q: %w", name, err)
	}
	out := make(map[string]string, len(ls.Labels())+1)
	for k, v := range ls.Labels() {
		if k != labelset.ReservedLabelNameName {
			out[k] = v
		}
	}
	app := AppName(name)
	if _, ok := out["service_name"]; !ok {
		out["service_name"] = app
	} else if _, ok := out["app_name"]; !ok {
		out["app_name"] = app
	}
	return out, nil
}

// ingestQueues are the queues of an /ingest request with name (validated
// already) sent by tenant: the router's choice by the name's labels, or
// every configured queue.
func (s *Server) ingestQueues(name, tenant string) []string {
	if s.cfg.Router == nil {
		return s.cfg.Queues
	}
	return s.cfg.Router.RouteBy(func() map[string]string {
		// ValidateIngest parsed the same name with the same parser.
		labels, _ := IngestLabels(name)
		return labels
	}, tenant)
}

// pushPart is one store entry of a Push request: the series bound for
// exactly queues, encoded.
type pushPart struct {
	queues []string
	body   []byte
	// encoding is the body's Content-Encoding: "gzip" for a request
	// stored compressed as it arrived.
	encoding string
}

// splitPush cuts a Push request into one entry per destination set. Without
// a router it is one entry for every configured queue. A part that is the
// whole request keeps raw, the message as it arrived (compressed or not),
// when there is one; the others are encoded again.
func (s *Server) splitPush(req *pushv1.PushRequest, raw rawPush, tenant string) ([]pushPart, error) {
	var parts []route.Part
	if s.cfg.Router == nil {
		parts = []route.Part{{ForwardTo: s.cfg.Queues, Request: req}}
	} else {
		parts = route.Split(req, func(series *pushv1.RawProfileSeries) []string {
			return s.cfg.Router.RouteBy(func() map[string]string { return route.SeriesLabels(series) }, tenant)
		})
	}
	out := make([]pushPart, len(parts))
	for i, p := range parts {
		if p.Request == req && raw.msg != nil {
			out[i] = pushPart{queues: p.ForwardTo, body: raw.msg, encoding: raw.encoding}
			continue
		}
		body, err := proto.Marshal(p.Request)
		if err != nil {
			return nil, fmt.Errorf("re-encode push: %w", err)
		}
		out[i] = pushPart{queues: p.ForwardTo, body: body}
	}
	return out, nil
}

// putAll stores one entry per part, at once so that they can share a group
// commit, and returns the first error once every Put has returned. The
// client gets its 200 only when every part is durable; if one fails it gets
// the error and retries the whole push, so the parts that were stored reach
// their destinations twice: at-least-once, as after any crash.
func (s *Server) putAll(ctx context.Context, entries []*store.Entry, queues [][]string) error {
	if len(entries) == 1 {
		return s.put(ctx, entries[0], queues[0])
	}
	errs := make([]error, len(entries))
	var wg sync.WaitGroup
	for i := range entries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.put(ctx, entries[i], queues[i])
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
