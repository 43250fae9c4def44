package selection

import (
	"fmt"
	"net/url"

	"github.com/grafana/pyroscope/api/model/labelset"

	"github.com/pyrorelay/pyrorelay/httpserver"
	"github.com/pyrorelay/pyrorelay/pushwire"
	"github.com/pyrorelay/pyrorelay/store"
)

// App matches entries by application name and labels: the --app flag.
type App struct {
	app    string
	labels map[string]string
}

// ParseApp reads --app with the Pyroscope server's own ingest name parser,
// so `myapp{env=prod}` means what it means to /ingest.
func ParseApp(v string) (*App, error) {
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
	m := &App{app: ls.ServiceName(), labels: map[string]string{}}
	for k, val := range ls.Labels() {
		if k != labelset.ReservedLabelNameName {
			m.labels[k] = val
		}
	}
	return m, nil
}

// Match reports whether e belongs to the application. An /ingest entry's
// name is parsed from its query; a Push entry matches when one of its
// series has the application as service_name (its labels are read off the
// protobuf without decoding the profiles).
func (m *App) Match(e *store.Entry) bool {
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
		_ = pushwire.EachSeries(PushBody(e), func(labels map[string]string) bool {
			found = m.matches(labels["service_name"], labels)
			return !found
		})
		return found
	default:
		return false
	}
}

func (m *App) matches(app string, labels map[string]string) bool {
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

// AppOf names an entry's application for people: the /ingest name, or
// "push" and the service_name of a Push's first series.
func AppOf(e *store.Entry) string {
	if e.Kind == store.KindIngest {
		if q, err := url.ParseQuery(e.Query); err == nil && q.Get("name") != "" {
			return q.Get("name")
		}
		return "(no name)"
	}
	app := ""
	err := pushwire.EachSeries(PushBody(e), func(labels map[string]string) bool {
		app = labels["service_name"]
		if app == "" {
			app = labels["__name__"]
		}
		return false
	})
	if err != nil || app == "" {
		return "(push)"
	}
	return "push " + app
}

// MaxPushBody bounds what PushBody decompresses: more than any Push the
// relay accepts with the largest body limit anyone sets.
const MaxPushBody = 1 << 30

// PushBody is the protobuf encoding of a stored Push entry, which the
// relay keeps gzipped when it arrived so; nil if it does not decompress.
func PushBody(e *store.Entry) []byte {
	b, err := httpserver.StoredPushMessage(e, MaxPushBody)
	if err != nil {
		return nil
	}
	return b
}
