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
	"google.golang.org/protobuf/proto"

	"github.com/pyrorelay/pyrorelay/store"
)

// ValidatePush checks a Push request before it is stored: at least one
// series, every series with a non-empty label set of valid names, every
// sample with a profile.
func ValidatePush(req *pushv1.PushRequest) error {
	if len(req.GetSeries()) == 0 {
		return errors.New("push has no series")
	}
	for i, s := range req.GetSeries() {
		if len(s.GetLabels()) == 0 {
			return fmt.Errorf("series %d has no labels", i)
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
	body, err := proto.Marshal(req.Msg)
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("re-encode push: %w", err))
	}
	e := &store.Entry{Kind: store.KindPush, ReceivedAt: time.Now(), Body: body}
	if p.s.cfg.TenantPassthrough {
		e.Tenant = req.Header().Get(tenantHeader)
	}
	p.s.metrics.bytes.WithLabelValues(endpointPush).Add(float64(len(body)))
	if err := p.s.put(ctx, e); err != nil {
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
