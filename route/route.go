// Package route chooses where a profile goes. A receiver's route table is an
// ordered list of rules, each matching the profile's labels (and the tenant
// that sent it) with anchored regular expressions and naming the
// destinations it goes to; the first rule that matches wins, and a profile no
// rule matches goes to the table's default destinations (the receiver's
// forward_to).
//
// The labels of an /ingest request are those of its `name` query (see
// package httpserver, IngestLabels); those of a Push request are each
// series' own, so one Push can be bound for several destination sets: Split
// cuts it into one request per destination set, and no further.
//
// The tenant is matched under the reserved key TenantKey ("__tenant__") in
// a rule's match, so one map holds every condition and "no tenant" is
// written the way a missing label is: as the empty string.
package route

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/grafana/pyroscope/api/model/labelset"
)

// TenantKey is the match key that is compared with the request's tenant
// (its X-Scope-OrgID header, empty when absent) instead of a label. No
// Pyroscope label has this name; a series label that does is ignored.
const TenantKey = "__tenant__"

// Rule is one entry of a route table as it is written in a config file:
//
//	match: {service_name: "checkout-.*", env: prod}
//	forward_to: [prod]
//
// Every key of Match must match (a logical AND). Each value is a regular
// expression (RE2 syntax) anchored at both ends, as in Prometheus label
// matchers: "prod" matches exactly "prod", "prod|staging" either, "" only
// an empty or missing label. A rule with an empty Match matches every
// profile.
type Rule struct {
	Match     map[string]string `yaml:"match"`
	ForwardTo []string          `yaml:"forward_to"`
}

// Table is a compiled route table. It is immutable and safe for concurrent
// use.
type Table struct {
	rules []compiled
	def   []string
}

type compiled struct {
	matchers []matcher
	dests    []string
}

// matcher is one condition of a rule: the label name (or TenantKey) and
// the anchored expression its value must match.
type matcher struct {
	name string
	re   *regexp.Regexp
}

// Error is a rule that does not compile; Field is its path in the rule
// list, as in "routes[1].match.service_name" or "routes[0].forward_to", so
// a config error can name the receiver, the rule and the field.
type Error struct {
	Field string
	Err   error
}

func (e *Error) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Compile checks rules and compiles them into a table whose default is def
// (the destinations of a profile no rule matches). Destination lists are
// deduplicated and sorted, so two rules naming the same destinations in a
// different order route identically. Whether the destinations exist is the
// caller's to check (Destinations lists every one the table can return).
func Compile(rules []Rule, def []string) (*Table, error) {
	t := &Table{def: normalize(def)}
	for i, r := range rules {
		field := fmt.Sprintf("routes[%d]", i)
		if len(r.ForwardTo) == 0 {
			return nil, &Error{Field: field + ".forward_to", Err: errors.New("must name at least one destination")}
		}
		for _, d := range r.ForwardTo {
			if d == "" {
				return nil, &Error{Field: field + ".forward_to", Err: errors.New("has an empty destination name")}
			}
		}
		c := compiled{dests: normalize(r.ForwardTo)}
		// Sorted names: the same rule always checks its conditions in
		// the same order, whatever order the map iterates in.
		for _, name := range slices.Sorted(maps.Keys(r.Match)) {
			f := field + ".match." + name
			if err := validKey(name); err != nil {
				return nil, &Error{Field: f, Err: err}
			}
			re, err := regexp.Compile("^(?:" + r.Match[name] + ")$")
			if err != nil {
				return nil, &Error{Field: f, Err: fmt.Errorf("bad regular expression %q: %w", r.Match[name], err)}
			}
			c.matchers = append(c.matchers, matcher{name: name, re: re})
		}
		t.rules = append(t.rules, c)
	}
	return t, nil
}

// validKey refuses a match key no label can have, so that a typo such as
// "service-name" fails the config instead of never matching.
func validKey(name string) error {
	if name == "" {
		return errors.New("label name is empty")
	}
	if name == TenantKey {
		return nil
	}
	for _, r := range name {
		if !labelset.IsLabelNameRuneAllowed(r) {
			return fmt.Errorf("label name %q: character %q is not allowed in a label name", name, r)
		}
	}
	return nil
}

// normalize returns a sorted copy of names without duplicates.
func normalize(names []string) []string {
	out := slices.Clone(names)
	slices.Sort(out)
	return slices.Compact(out)
}

// isSet reports whether names is sorted without duplicates, as Route
// returns them, so Split can skip normalizing.
func isSet(names []string) bool {
	for i := 1; i < len(names); i++ {
		if names[i-1] >= names[i] {
			return false
		}
	}
	return true
}

// Route returns the destinations of a profile with labels, sent by tenant:
// those of the first rule that matches, or the default. A label missing
// from labels reads as the empty string. The returned slice is sorted,
// without duplicates, and shared: the caller must not modify it.
func (t *Table) Route(labels map[string]string, tenant string) []string {
	return t.RouteBy(func() map[string]string { return labels }, tenant)
}

// RouteBy is Route with the labels built only if a rule reads one, and
// then once: a table with no rules, or with rules on the tenant alone,
// routes without them. Building a profile's labels means parsing its name
// or walking its series, per request.
func (t *Table) RouteBy(labels func() map[string]string, tenant string) []string {
	var m map[string]string
	built := false
	value := func(name string) string {
		if name == TenantKey {
			return tenant
		}
		if !built {
			m, built = labels(), true
		}
		return m[name]
	}
	for _, r := range t.rules {
		if r.matches(value) {
			return r.dests
		}
	}
	return t.def
}

// matches reports whether every condition holds, value giving the label
// (or tenant) each one reads.
func (r *compiled) matches(value func(name string) string) bool {
	for _, m := range r.matchers {
		if !m.re.MatchString(value(m.name)) {
			return false
		}
	}
	return true
}

// Default is the destinations of a profile no rule matches.
func (t *Table) Default() []string { return slices.Clone(t.def) }

// Destinations lists every destination the table can route to, the
// default's included, sorted.
func (t *Table) Destinations() []string {
	all := slices.Clone(t.def)
	for _, r := range t.rules {
		all = append(all, r.dests...)
	}
	return normalize(all)
}

// Len is the number of rules.
func (t *Table) Len() int { return len(t.rules) }

// RuleDestinations is the destinations of rule i, for error messages and
// checks of the caller.
func (t *Table) RuleDestinations(i int) []string { return slices.Clone(t.rules[i].dests) }

// SeriesLabels returns the labels of a Push series as a map. When a name
// occurs twice the first value wins.
func SeriesLabels(s *pushv1.RawProfileSeries) map[string]string {
	m := make(map[string]string, len(s.GetLabels()))
	for _, l := range s.GetLabels() {
		if _, dup := m[l.GetName()]; !dup {
			m[l.GetName()] = l.GetValue()
		}
	}
	return m
}

// Part is a piece of a Push request and the destinations it goes to.
type Part struct {
	// ForwardTo is sorted and without duplicates; it may be empty when
	// the router sends some series nowhere in particular (the caller
	// decides what an empty set means).
	ForwardTo []string
	// Request holds the series bound for exactly ForwardTo, in their
	// original order. It shares the series messages with the request
	// that was split; when the request is not split it is that request.
	Request *pushv1.PushRequest
}

// SplitPush splits req by the destinations of each series (see Split).
func (t *Table) SplitPush(req *pushv1.PushRequest, tenant string) []Part {
	return Split(req, func(s *pushv1.RawProfileSeries) []string {
		return t.Route(SeriesLabels(s), tenant)
	})
}

// Split groups the series of req by their destination set, as dests
// returns it: each part holds the series bound for exactly the same set,
// so every destination receives every series meant for it once, in one of
// the parts whose ForwardTo names it, and nothing else. Parts come in the
// order their first series appears in req. A request whose series all go
// to the same destinations is not split: the one part carries req itself.
func Split(req *pushv1.PushRequest, dests func(*pushv1.RawProfileSeries) []string) []Part {
	series := req.GetSeries()
	if len(series) == 0 {
		return []Part{{ForwardTo: []string{}, Request: req}}
	}
	type group struct {
		forwardTo []string
		series    []*pushv1.RawProfileSeries
	}
	var groups []*group
	byKey := map[string]*group{}
	for _, s := range series {
		d := dests(s)
		if !isSet(d) {
			d = normalize(d)
		}
		key := strings.Join(d, "\x00")
		g := byKey[key]
		if g == nil {
			g = &group{forwardTo: slices.Clone(d)}
			if g.forwardTo == nil {
				g.forwardTo = []string{}
			}
			byKey[key] = g
			groups = append(groups, g)
		}
		g.series = append(g.series, s)
	}
	if len(groups) == 1 {
		return []Part{{ForwardTo: groups[0].forwardTo, Request: req}}
	}
	parts := make([]Part, len(groups))
	for i, g := range groups {
		parts[i] = Part{ForwardTo: g.forwardTo, Request: &pushv1.PushRequest{Series: g.series}}
	}
	return parts
}
