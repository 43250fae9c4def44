package main

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/grafana/pyroscope/api/model/labelset"
	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/httpserver"
	"github.com/pyrorelay/pyrorelay/pushwire"
	"github.com/pyrorelay/pyrorelay/store"
)

// selectFlags are the filters shared by export, replay and dead-letter.
func selectFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "since", Usage: "only entries received at or after `T`: RFC 3339 (2026-03-01T12:00:00Z), a date (2026-03-01, UTC) or relative to now (-2h, -30m, -7d)"},
		&cli.StringFlag{Name: "until", Usage: "only entries received before `T` (same forms as --since)"},
		&cli.StringFlag{Name: "app", Usage: "only entries of application `NAME`, in the ingest name syntax: myapp, myapp.cpu or myapp{env=prod} (labels must all match)"},
	}
}

// selection is a parsed set of filter flags.
type selection struct {
	filter store.Filter
	desc   string // for log lines: "since ..., app ..."
}

// selectionFromFlags reads --since, --until and --app.
func selectionFromFlags(c *cli.Context, now time.Time) (selection, error) {
	return selectionOf(c.String("since"), c.String("until"), c.String("app"), now)
}

// selectionOf reads the values of --since, --until and --app, from flags
// or from the admin API's query.
func selectionOf(since, until, app string, now time.Time) (selection, error) {
	var sel selection
	var parts []string
	var err error
	if sel.filter.Since, err = parseWhen("--since", since, now); err != nil {
		return sel, err
	}
	if sel.filter.Until, err = parseWhen("--until", until, now); err != nil {
		return sel, err
	}
	if s, u := sel.filter.Since, sel.filter.Until; !s.IsZero() && !u.IsZero() && !s.Before(u) {
		return sel, fmt.Errorf("--since %s is not before --until %s: nothing would be selected", s.Format(time.RFC3339), u.Format(time.RFC3339))
	}
	if !sel.filter.Since.IsZero() {
		parts = append(parts, "since "+sel.filter.Since.Format(time.RFC3339))
	}
	if !sel.filter.Until.IsZero() {
		parts = append(parts, "until "+sel.filter.Until.Format(time.RFC3339))
	}
	if app != "" {
		m, err := parseAppSelector(app)
		if err != nil {
			return sel, err
		}
		sel.filter.Match = m.match
		parts = append(parts, "app "+app)
	}
	sel.desc = strings.Join(parts, ", ")
	return sel, nil
}

// matches applies the filter to an entry read from an export, where the
// store is not there to do it.
func (s selection) matches(e *store.Entry) bool {
	t := e.ReceivedAt
	if !s.filter.Since.IsZero() && t.Before(s.filter.Since) {
		return false
	}
	if !s.filter.Until.IsZero() && !t.Before(s.filter.Until) {
		return false
	}
	return s.filter.Match == nil || s.filter.Match(e)
}

// parseWhen reads a time flag: RFC 3339, a date, or relative to now.
func parseWhen(flag, v string, now time.Time) (time.Time, error) {
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

// appSelector matches entries by application name and labels.
type appSelector struct {
	app    string
	labels map[string]string
}

// parseAppSelector reads --app with the Pyroscope server's own ingest name
// parser, so `myapp{env=prod}` means what it means to /ingest.
func parseAppSelector(v string) (*appSelector, error) {
	ls, err := labelset.Parse(v)
	if err == nil {
		err = labelset.ValidateLabelSet(ls)
	}
	if err != nil {
		return nil, fmt.Errorf("--app %q: %v (want name or name{label=value,...}, as in an /ingest name)", v, err)
	}
	if ls.ServiceName() == "" {
		return nil, fmt.Errorf("--app %q: the application name is empty (want name or name{label=value,...})", v)
	}
	m := &appSelector{app: ls.ServiceName(), labels: map[string]string{}}
	for k, val := range ls.Labels() {
		if k != labelset.ReservedLabelNameName {
			m.labels[k] = val
		}
	}
	return m, nil
}

// match reports whether e belongs to the application. An /ingest entry's
// name is parsed from its query; a Push entry matches when one of its
// series has the application as service_name (its labels are read off the
// protobuf without decoding the profiles).
func (m *appSelector) match(e *store.Entry) bool {
	switch e.Kind {
	case store.KindIngest:
		q, err := url.ParseQuery(e.Query)
		if err != nil {
			return false
		}
		ls, err := labelset.Parse(q.Get("name"))
		if err != nil {
			return false
		}
		return m.matches(ls.ServiceName(), ls.Labels())
	case store.KindPush:
		found := false
		_ = pushwire.EachSeries(pushBody(e), func(labels map[string]string) bool {
			found = m.matches(labels["service_name"], labels)
			return !found
		})
		return found
	default:
		return false
	}
}

func (m *appSelector) matches(app string, labels map[string]string) bool {
	if app != m.app && httpserver.AppName(app) != m.app {
		return false
	}
	for k, v := range m.labels {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// pushBodyLimit bounds what pushBody decompresses: more than any Push the
// relay accepts with the largest body limit anyone sets.
const pushBodyLimit = 1 << 30

// pushBody is the protobuf encoding of a stored Push entry, which the
// relay keeps gzipped when it arrived so; nil if it does not decompress.
func pushBody(e *store.Entry) []byte {
	b, err := httpserver.StoredPushMessage(e, pushBodyLimit)
	if err != nil {
		return nil
	}
	return b
}
