package replay

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pyrorelay/pyrorelay/daemon"
	"github.com/pyrorelay/pyrorelay/relay"
)

// DefaultMaxBackoff is the longest wait between retries of one entry
// when neither the flag nor the destination named says otherwise.
const DefaultMaxBackoff = 30 * time.Second

// Target says where a replay sends: --to and the flags that adjust the
// destination it names.
type Target struct {
	// To is a Pyroscope or relay base URL, or the name of a destination
	// of the configuration (its credentials and TLS settings are used).
	To string
	// Headers are extra request headers, each "NAME=VALUE".
	Headers []string
	// BearerTokenFile, if set, replaces the destination's credentials.
	BearerTokenFile string
	// Tenant, if set, is sent as X-Scope-OrgID in place of the stored one.
	Tenant string
	// Concurrency is the number of requests in flight (at least 1).
	Concurrency int
	// Timeout and MaxBackoff, if not nil, replace the destination's;
	// otherwise a destination without its own gets relay.DefaultTimeout
	// and DefaultMaxBackoff.
	Timeout, MaxBackoff *time.Duration
}

// Destination is the destination t names, among the configured dests when
// t.To is no URL, with t's adjustments, checked.
func Destination(dests []relay.Destination, t Target) (relay.Destination, error) {
	var d relay.Destination
	if !strings.Contains(t.To, "://") {
		found := false
		for _, cd := range dests {
			if cd.Name == t.To {
				d, found = cd, true
				break
			}
		}
		if !found {
			return d, fmt.Errorf("--to %q: not a URL (http://host:port) nor a destination in --config", t.To)
		}
	} else {
		if u, err := url.Parse(t.To); err != nil || u.Host == "" {
			return d, fmt.Errorf("--to %q: not a URL: want http://host:port or https://host", t.To)
		}
		if err := daemon.CheckBaseURL(t.To); err != nil {
			return d, fmt.Errorf("--to: %w", err)
		}
		d = relay.Destination{Name: "replay", URL: t.To}
	}
	if d.Headers == nil {
		d.Headers = map[string]string{}
	}
	for _, h := range t.Headers {
		k, v, ok := strings.Cut(h, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return d, fmt.Errorf("--header %q: want NAME=VALUE", h)
		}
		d.Headers[strings.TrimSpace(k)] = v
	}
	if t.BearerTokenFile != "" {
		d.BearerTokenFile, d.BearerToken, d.BasicAuth = t.BearerTokenFile, "", nil
	}
	if t.Tenant != "" {
		d.TenantID = t.Tenant
	}
	d.Concurrency = max(t.Concurrency, 1)
	if t.Timeout != nil {
		d.Timeout = *t.Timeout
	} else if d.Timeout == 0 {
		d.Timeout = relay.DefaultTimeout
	}
	if t.MaxBackoff != nil {
		d.MaxBackoff = *t.MaxBackoff
	} else if d.MaxBackoff == 0 {
		d.MaxBackoff = DefaultMaxBackoff
	}
	if d.MinBackoff > d.MaxBackoff {
		d.MinBackoff = d.MaxBackoff
	}
	d = d.WithDefaults()
	return d, d.Validate()
}

// ParseRate reads a rate of entries per second: "50", "50/s", "0.5"; ""
// is 0, no pacing.
func ParseRate(v string) (float64, error) {
	v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "/s"))
	if v == "" {
		return 0, nil
	}
	r, err := strconv.ParseFloat(v, 64)
	if err != nil || r <= 0 {
		return 0, fmt.Errorf("--rate %q: want a positive number of entries per second, like 50 or 0.5/s", v)
	}
	return r, nil
}
