package httpserver

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/grafana/pyroscope/api/model/labelset"

	"github.com/pyrorelay/pyrorelay/store"
)

// ValidatePush checks a Push request before it is stored: at least one
// series, every series with a non-empty label set of valid names, no name
// twice and a valid __name__ (see serverrules.go), every sample with a
// profile.
func ValidatePush(req *pushv1.PushRequest) error {
	if len(req.GetSeries()) == 0 {
		return errors.New("push has no series")
	}
	for i, s := range req.GetSeries() {
		if len(s.GetLabels()) == 0 {
			return fmt.Errorf("series %d has no labels", i)
		}
		if err := validateSeriesLabels(s); err != nil {
			return fmt.Errorf("series %d: %w", i, err)
		}
		for _, l := range s.GetLabels() {
			if err := validatePushLabelName(l.GetName()); err != nil {
				return fmt.Errorf("series %d: %w", i, err)
			}
			if !utf8.ValidString(l.GetValue()) {
				return fmt.Errorf("series %d: label %q: value is not valid UTF-8", i, l.GetName())
			}
		}
		for j, smp := range s.GetSamples() {
			if len(smp.GetRawProfile()) == 0 {
				return fmt.Errorf("series %d sample %d: raw_profile is empty", i, j)
			}
		}
	}
	return nil
}

// validatePushLabelName allows what the ingest name parser allows in label
// names; unlike /ingest, Push labels may be reserved names such as __name__.
func validatePushLabelName(name string) error {
	if name == "" {
		return errors.New("label name is empty")
	}
	for _, r := range name {
		if !labelset.IsLabelNameRuneAllowed(r) {
			return fmt.Errorf("label name %q: character %q is not allowed", name, r)
		}
	}
	return nil
}

// pushService stores Push requests; it implements
// pushv1connect.PusherServiceHandler.
type pushService struct {
	s *Server
}

func (p pushService) Push(ctx context.Context, req *connect.Request[pushv1.PushRequest]) (*connect.Response[pushv1.PushResponse], error) {
	if err := ValidatePush(req.Msg); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	tenant := req.Header().Get(tenantHeader)
	if p.s.cfg.TenantPassthrough && tenant != "" {
		if err := ValidateTenant(tenant); err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, err)
		}
	}
	// One entry per destination set: without routes, or when every
	// series goes to the same destinations, that is one entry.
	raw, _ := rawPushFrom(ctx)
	parts, err := p.s.splitPush(req.Msg, raw, tenant)
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	now := time.Now()
	entries := make([]*store.Entry, len(parts))
	queues := make([][]string, len(parts))
	for i, part := range parts {
		e := &store.Entry{Kind: store.KindPush, ReceivedAt: now, Body: part.body, ContentEncoding: part.encoding}
		if p.s.cfg.TenantPassthrough {
			e.Tenant = tenant
		}
		p.s.metrics.bytes.WithLabelValues(endpointPush).Add(float64(len(part.body)))
		entries[i], queues[i] = e, part.queues
	}
	if err := p.s.putAll(ctx, entries, queues); err != nil {
		return nil, connect.NewError(connectCode(errStatusStore(err)), err)
	}
	return connect.NewResponse(&pushv1.PushResponse{}), nil
}

func connectCode(status int) connect.Code {
	switch status {
	case 408:
		// The commit did not finish in time (or the client left): a
		// retriable code, not internal.
		return connect.CodeDeadlineExceeded
	case 429:
		return connect.CodeResourceExhausted
	case 503, 507:
		return connect.CodeUnavailable
	default:
		return connect.CodeInternal
	}
}
