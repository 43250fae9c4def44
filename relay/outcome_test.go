package relay

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
)

func TestClassifyHTTP(t *testing.T) {
	type want struct {
		verdict Verdict
		strike  bool
		fault   bool
	}
	cases := map[int]want{}
	// Every 2xx is a success, not just 200: some proxies answer 202 or 204.
	for s := 200; s < 300; s++ {
		cases[s] = want{Delivered, false, false}
	}
	// The destination says the entry itself is wrong: retrying cannot help.
	for _, s := range []int{400, 409, 410, 413, 415, 422} {
		cases[s] = want{Permanent, false, false}
	}
	// Credentials or URL are wrong: every entry would get the same answer,
	// so the destination is at fault and the entry stays queued.
	for _, s := range []int{401, 403, 404, 405, 407} {
		cases[s] = want{Retry, false, true}
	}
	// Busy or down: retry, but never count it against the entry, or an
	// outage would empty the queue into dead-letter.
	for _, s := range []int{408, 429, 502, 503, 504} {
		cases[s] = want{Retry, false, false}
	}
	// A generic server error may be caused by this entry: retry with a strike.
	for _, s := range []int{500, 501, 505, 507, 511, 599} {
		cases[s] = want{Retry, true, false}
	}
	// 1xx and unfollowed redirects point at a misconfiguration, not at the
	// entry: keep the entry and retry.
	for _, s := range []int{100, 101, 300, 301, 302, 303, 304, 307, 308} {
		cases[s] = want{Retry, false, false}
	}
	for status, w := range cases {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			o := ClassifyHTTP(status, nil)
			if o.Verdict != w.verdict || o.Strike != w.strike || o.DestinationFault != w.fault {
				t.Errorf("ClassifyHTTP(%d) = %v strike=%v fault=%v, want %v strike=%v fault=%v",
					status, o.Verdict, o.Strike, o.DestinationFault, w.verdict, w.strike, w.fault)
			}
			if o.Status != status {
				t.Errorf("Status = %d, want %d", o.Status, status)
			}
			// Only a rate limit is exempt from the poison count by movement.
			if o.Throttled != (status == http.StatusTooManyRequests) {
				t.Errorf("Throttled = %v", o.Throttled)
			}
			if o.RetryAfter != 0 {
				t.Errorf("RetryAfter = %v, want 0 (the caller reads the header)", o.RetryAfter)
			}
		})
	}

	t.Run("transport error", func(t *testing.T) {
		err := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
		o := ClassifyHTTP(0, err)
		if o.Verdict != Retry || o.Strike {
			t.Errorf("verdict %v strike=%v, want retry without strike", o.Verdict, o.Strike)
		}
		if o.Status != 0 || o.Reason != err.Error() {
			t.Errorf("status %d reason %q, want 0 and the error text", o.Status, o.Reason)
		}
	})
}

func TestClassifyConnect(t *testing.T) {
	retry := []connect.Code{
		connect.CodeUnavailable, connect.CodeResourceExhausted, connect.CodeDeadlineExceeded,
		connect.CodeAborted, connect.CodeCanceled,
	}
	strike := []connect.Code{connect.CodeInternal, connect.CodeUnknown, connect.CodeDataLoss}
	fault := []connect.Code{
		connect.CodeUnauthenticated, connect.CodePermissionDenied, connect.CodeNotFound, connect.CodeUnimplemented,
	}
	permanent := []connect.Code{
		connect.CodeInvalidArgument, connect.CodeAlreadyExists,
		connect.CodeFailedPrecondition, connect.CodeOutOfRange,
	}
	type tc struct {
		code    connect.Code
		verdict Verdict
		strike  bool
		fault   bool
	}
	var cases []tc
	for _, c := range retry {
		cases = append(cases, tc{c, Retry, false, false})
	}
	for _, c := range strike {
		cases = append(cases, tc{c, Retry, true, false})
	}
	for _, c := range fault {
		cases = append(cases, tc{c, Retry, false, true})
	}
	for _, c := range permanent {
		cases = append(cases, tc{c, Permanent, false, false})
	}
	// Every code connect defines (1 to 16) must be in one of the lists
	// above, so that a reordering of the switch cannot drop one silently.
	if len(cases) != 16 {
		t.Fatalf("table covers %d codes, want all 16", len(cases))
	}
	for _, c := range cases {
		t.Run(c.code.String(), func(t *testing.T) {
			err := connect.NewError(c.code, errors.New("boom"))
			o := ClassifyConnect(err)
			if o.Verdict != c.verdict || o.Strike != c.strike || o.DestinationFault != c.fault {
				t.Errorf("ClassifyConnect(%v) = %v strike=%v fault=%v, want %v strike=%v fault=%v",
					c.code, o.Verdict, o.Strike, o.DestinationFault, c.verdict, c.strike, c.fault)
			}
			if o.Reason == "" {
				t.Error("empty reason")
			}
			if o.Throttled != (c.code == connect.CodeResourceExhausted) {
				t.Errorf("Throttled = %v", o.Throttled)
			}
			// Wrapping must not change the verdict.
			w := ClassifyConnect(fmt.Errorf("push: %w", err))
			if w.Verdict != c.verdict || w.Strike != c.strike {
				t.Errorf("wrapped: %v strike=%v, want %v strike=%v", w.Verdict, w.Strike, c.verdict, c.strike)
			}
		})
	}

	t.Run("nil", func(t *testing.T) {
		o := ClassifyConnect(nil)
		if o.Verdict != Delivered || o.Status != http.StatusOK || o.Strike {
			t.Errorf("got %+v, want delivered with status 200", o)
		}
	})
	t.Run("context deadline", func(t *testing.T) {
		for _, err := range []error{context.DeadlineExceeded, fmt.Errorf("post: %w", context.DeadlineExceeded)} {
			o := ClassifyConnect(err)
			if o.Verdict != Retry || o.Strike {
				t.Errorf("%v: got %v strike=%v, want retry without strike", err, o.Verdict, o.Strike)
			}
		}
	})
	t.Run("retry-after in error meta", func(t *testing.T) {
		err := connect.NewError(connect.CodeResourceExhausted, errors.New("slow down"))
		err.Meta().Set("Retry-After", "7")
		o := ClassifyConnect(err)
		if o.Verdict != Retry || o.RetryAfter != 7*time.Second {
			t.Errorf("got %v RetryAfter=%v, want retry after 7s", o.Verdict, o.RetryAfter)
		}
	})
	t.Run("no retry-after", func(t *testing.T) {
		o := ClassifyConnect(connect.NewError(connect.CodeUnavailable, errors.New("down")))
		if o.RetryAfter != 0 {
			t.Errorf("RetryAfter = %v, want 0", o.RetryAfter)
		}
	})
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   string
		want time.Duration
	}{
		{"empty", "", 0},
		{"seconds", "120", 120 * time.Second},
		{"zero", "0", 0},
		{"negative", "-5", 0},
		{"http date ahead", now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{"rfc850 date ahead", now.Add(time.Minute).Format(time.RFC850), time.Minute},
		{"http date past", now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"http date now", now.Format(http.TimeFormat), 0},
		{"garbage", "soon", 0},
		{"fraction", "1.5", 0},
		{"seconds with unit", "10s", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseRetryAfter(tt.in, now); got != tt.want {
				t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestVerdictString(t *testing.T) {
	for v, want := range map[Verdict]string{Delivered: "delivered", Retry: "retry", Permanent: "permanent"} {
		if got := v.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(v), got, want)
		}
	}
}
