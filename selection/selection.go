package selection

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pyrorelay/pyrorelay/store"
)

// Selection is a parsed set of --since, --until and --app values.
type Selection struct {
	// Filter selects the entries when a store is read.
	Filter store.Filter
	// Desc says what is selected, for log lines: "since ..., app ...";
	// empty when everything is.
	Desc string
}

// Parse reads the values of --since, --until and --app, from flags or
// from the admin API's query; now is what relative times count from.
// Errors name the flag.
func Parse(since, until, app string, now time.Time) (Selection, error) {
	var sel Selection
	var parts []string
	var err error
	if sel.Filter.Since, err = ParseWhen("--since", since, now); err != nil {
		return sel, err
	}
	if sel.Filter.Until, err = ParseWhen("--until", until, now); err != nil {
		return sel, err
	}
	if s, u := sel.Filter.Since, sel.Filter.Until; !s.IsZero() && !u.IsZero() && !s.Before(u) {
		return sel, fmt.Errorf("--since %s is not before --until %s: nothing would be selected", s.Format(time.RFC3339), u.Format(time.RFC3339))
	}
	if !sel.Filter.Since.IsZero() {
		parts = append(parts, "since "+sel.Filter.Since.Format(time.RFC3339))
	}
	if !sel.Filter.Until.IsZero() {
		parts = append(parts, "until "+sel.Filter.Until.Format(time.RFC3339))
	}
	if app != "" {
		m, err := ParseApp(app)
		if err != nil {
			return sel, err
		}
		sel.Filter.Match = m.Match
		parts = append(parts, "app "+app)
	}
	sel.Desc = strings.Join(parts, ", ")
	return sel, nil
}

// Matches applies the selection to an entry read from an export, where the
// store is not there to do it.
func (s Selection) Matches(e *store.Entry) bool {
	t := e.ReceivedAt
	if !s.Filter.Since.IsZero() && t.Before(s.Filter.Since) {
		return false
	}
	if !s.Filter.Until.IsZero() && !t.Before(s.Filter.Until) {
		return false
	}
	return s.Filter.Match == nil || s.Filter.Match(e)
}

// Describe is Desc in parentheses after a space, to end a summary line
// with; "" when everything is selected.
func (s Selection) Describe() string {
	if s.Desc == "" {
		return ""
	}
	return " (" + s.Desc + ")"
}

// ParseWhen reads a time flag: RFC 3339, a date (UTC), or relative to now
// (-2h, now-30m, -7d, now). An empty value is the zero time. flag names
// the flag in the error.
func ParseWhen(flag, v string, now time.Time) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	bad := func() (time.Time, error) {
		return time.Time{}, fmt.Errorf("%s %q: want RFC 3339 (2026-03-01T12:00:00Z), a date (2026-03-01) or a time relative to now (-2h, -30m, -7d, now)", flag, v)
	}
	if v == "now" {
		return now, nil
	}
	if rel, ok := strings.CutPrefix(v, "now"); ok {
		v = rel
	}
	if rel, ok := strings.CutPrefix(v, "-"); ok {
		d, err := parseAge(rel)
		if err != nil || d < 0 {
			return bad()
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return bad()
}

// parseAge is time.ParseDuration plus whole days ("7d", "1d12h").
func parseAge(s string) (time.Duration, error) {
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil {
			return 0, err
		}
		days, s = time.Duration(n)*24*time.Hour, s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	return days + d, err
}
