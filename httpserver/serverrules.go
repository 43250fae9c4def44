package httpserver

import (
	"fmt"
	"unicode/utf8"

	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
)

// The rules below are the Pyroscope server's own, checked here so that a
// request the server would refuse is refused now, while the client still
// has it, instead of being acknowledged and dead-lettered later. Limits the
// server lets an operator raise per tenant (label counts and lengths,
// profile sizes) are not checked: a relay cannot know them.

// maxTenantIDLength is the longest X-Scope-OrgID the server takes.
const maxTenantIDLength = 150

// ValidateTenant checks an X-Scope-OrgID the relay will pass on: at most
// 150 characters, each a letter, a digit or one of !-_.*'(), and neither
// "." nor "..".
func ValidateTenant(id string) error {
	for i := 0; i < len(id); i++ {
		if !tenantChar(id[i]) {
			return badRequest("X-Scope-OrgID %q: character %q is not allowed: use letters, digits and !-_.*'()", id, id[i])
		}
	}
	switch {
	case len(id) > maxTenantIDLength:
		return badRequest("X-Scope-OrgID is %d characters long, over the %d the server takes", len(id), maxTenantIDLength)
	case id == "." || id == "..":
		return badRequest("X-Scope-OrgID %q is not a tenant", id)
	}
	return nil
}

func tenantChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '-', '_', '.', '*', '\'', '(', ')':
		return true
	}
	return false
}

// metricNameLabel holds a Push series' profile type name.
const metricNameLabel = "__name__"

// validateSeriesLabels applies the server's label rules a Push series
// breaks whatever the server's limits: no label name twice, and a
// __name__, when given, that is a metric name (not empty, valid UTF-8).
func validateSeriesLabels(s *pushv1.RawProfileSeries) error {
	labels := s.GetLabels()
	// Series carry a handful of labels: comparing each pair costs less
	// than a map.
	for i, l := range labels {
		for _, prev := range labels[:i] {
			if prev.GetName() == l.GetName() {
				return fmt.Errorf("label name %q appears twice", l.GetName())
			}
		}
		if l.GetName() == metricNameLabel && (l.GetValue() == "" || !utf8.ValidString(l.GetValue())) {
			return fmt.Errorf("invalid metric name: __name__ %q", l.GetValue())
		}
	}
	return nil
}
