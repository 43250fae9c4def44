package relay

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"connectrpc.com/connect"
)

// Verdict is what to do with an entry after one attempt.
type Verdict int

const (
	// Delivered: the destination took it; ack it.
	Delivered Verdict = iota
	// Retry: try again after a backoff.
	Retry
	// Permanent: the destination will never take it; dead-letter it.
	Permanent
)

func (v Verdict) String() string {
	switch v {
	case Delivered:
		return "delivered"
	case Retry:
		return "retry"
	default:
		return "permanent"
	}
}

// Outcome is the classified result of one attempt.
type Outcome struct {
	Verdict Verdict
	// Strike marks a failure that points at this entry rather than at the
	// destination being down or busy: a generic server error. Strikes count
	// toward the poison cap; failures while the destination is simply down
	// (refused connections, timeouts, 502/503/504, 429) do not, so an
	// outage never empties a queue into dead-letter.
	Strike bool
	// Throttled marks a rate-limit answer (429, resource_exhausted). A rate
	// limit takes some entries and refuses others, so a refusal while other
	// entries get through says nothing about this entry: it must not count
	// toward the poison cap the way other failures do then.
	Throttled bool
	// DestinationFault marks an answer that says the destination is
	// misconfigured (wrong credentials, wrong URL), not that the entry is
	// wrong: the entry stays queued and the destination goes down until an
	// operator fixes it, instead of every entry being dead-lettered.
	DestinationFault bool
	Status           int           // HTTP status, 0 for a transport error
	Reason           string        // one line for logs and dead letters
	RetryAfter       time.Duration // from a Retry-After header, 0 if none
}

// ClassifyHTTP classifies the answer to an /ingest request: status is the
// HTTP status, or 0 when err says why there was none.
func ClassifyHTTP(status int, err error) Outcome {
	if err != nil {
		return Outcome{Verdict: Retry, Reason: err.Error()}
	}
	o := Outcome{Status: status, Reason: http.StatusText(status)}
	switch {
	case status >= 200 && status < 300:
		o.Verdict = Delivered
	case status == http.StatusTooManyRequests:
		o.Verdict, o.Throttled = Retry, true
	case status == http.StatusUnauthorized, status == http.StatusForbidden,
		status == http.StatusNotFound, status == http.StatusMethodNotAllowed,
		status == http.StatusProxyAuthRequired:
		// Wrong credentials or a URL that does not serve /ingest: every
		// entry would get the same answer.
		o.Verdict, o.DestinationFault = Retry, true
	case status == http.StatusRequestTimeout,
		status == http.StatusBadGateway, status == http.StatusServiceUnavailable,
		status == http.StatusGatewayTimeout:
		o.Verdict = Retry
	case status >= 500:
		o.Verdict, o.Strike = Retry, true
	case status >= 400:
		o.Verdict = Permanent
	default:
		// 1xx and unfollowed 3xx: a misconfigured URL or proxy. Retry and
		// let the operator see it, rather than dead-letter everything.
		o.Verdict = Retry
	}
	return o
}

// ClassifyConnect classifies the answer to a Push request.
func ClassifyConnect(err error) Outcome {
	if err == nil {
		return Outcome{Verdict: Delivered, Status: http.StatusOK}
	}
	o := Outcome{Reason: err.Error()}
	if errors.Is(err, context.DeadlineExceeded) {
		o.Verdict = Retry
		return o
	}
	var cerr *connect.Error
	if errors.As(err, &cerr) {
		o.RetryAfter = parseRetryAfter(cerr.Meta().Get("Retry-After"), time.Now())
	}
	switch connect.CodeOf(err) {
	case connect.CodeResourceExhausted:
		o.Verdict, o.Throttled = Retry, true
	case connect.CodeUnavailable, connect.CodeDeadlineExceeded,
		connect.CodeAborted, connect.CodeCanceled:
		o.Verdict = Retry
	case connect.CodeInternal, connect.CodeUnknown, connect.CodeDataLoss:
		o.Verdict, o.Strike = Retry, true
	case connect.CodeUnauthenticated, connect.CodePermissionDenied,
		connect.CodeNotFound, connect.CodeUnimplemented:
		// Credentials or a URL that does not serve the Push API (a 404
		// from a proxy arrives as unimplemented).
		o.Verdict, o.DestinationFault = Retry, true
	default:
		// invalid_argument, already_exists, failed_precondition,
		// out_of_range: the entry itself.
		o.Verdict = Permanent
	}
	return o
}

// parseRetryAfter reads a Retry-After value: seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
