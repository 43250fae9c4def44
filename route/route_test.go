package route

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	typesv1 "github.com/grafana/pyroscope/api/gen/proto/go/types/v1"
)

func mustCompile(t *testing.T, rules []Rule, def ...string) *Table {
	t.Helper()
	tab, err := Compile(rules, def)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return tab
}

func TestRoute(t *testing.T) {
	tab := mustCompile(t, []Rule{
		{Match: map[string]string{"service_name": "checkout-.*", "env": "prod"}, ForwardTo: []string{"prod"}},
		{Match: map[string]string{TenantKey: "team-a|team-b"}, ForwardTo: []string{"staging", "prod", "staging"}},
		{Match: map[string]string{"env": ""}, ForwardTo: []string{"unlabelled"}},
		{Match: map[string]string{"env": "prod"}, ForwardTo: []string{"prod-other"}},
	}, "default", "audit")
	tests := []struct {
		name   string
		labels map[string]string
		tenant string
		want   []string
	}{
		{"all conditions of the first rule", map[string]string{"service_name": "checkout-api", "env": "prod"}, "", []string{"prod"}},
		{"first match wins over a later one", map[string]string{"service_name": "checkout-api", "env": "prod"}, "team-a", []string{"prod"}},
		{"one condition of two is not enough", map[string]string{"service_name": "checkout-api", "env": "dev"}, "", []string{"audit", "default"}},
		{"anchored at the start", map[string]string{"service_name": "my-checkout-api", "env": "prod"}, "", []string{"prod-other"}},
		{"anchored at the end", map[string]string{"service_name": "checkout", "env": "prodx"}, "", []string{"audit", "default"}},
		{"tenant alternatives, destinations sorted and deduplicated", map[string]string{"env": "dev"}, "team-b", []string{"prod", "staging"}},
		{"tenant anchored", map[string]string{"env": "dev"}, "team-ab", []string{"audit", "default"}},
		{"a label named like the tenant key is not the tenant", map[string]string{TenantKey: "team-a", "env": "dev"}, "", []string{"audit", "default"}},
		{"a missing label reads as empty", map[string]string{"service_name": "x"}, "", []string{"unlabelled"}},
		{"an empty label reads as empty", map[string]string{"env": ""}, "", []string{"unlabelled"}},
		{"no labels at all", nil, "", []string{"unlabelled"}},
		{"default", map[string]string{"env": "qa"}, "other", []string{"audit", "default"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tab.Route(tt.labels, tt.tenant); !slices.Equal(got, tt.want) {
				t.Errorf("Route(%v, %q) = %v, want %v", tt.labels, tt.tenant, got, tt.want)
			}
		})
	}
}

func TestRouteEmptyMatchCatchesAll(t *testing.T) {
	tab := mustCompile(t, []Rule{
		{Match: map[string]string{"env": "prod"}, ForwardTo: []string{"prod"}},
		{ForwardTo: []string{"rest"}},
	}, "never")
	if got := tab.Route(map[string]string{"env": "dev"}, ""); !slices.Equal(got, []string{"rest"}) {
		t.Errorf("got %v, want [rest]", got)
	}
	if got := tab.Destinations(); !slices.Equal(got, []string{"never", "prod", "rest"}) {
		t.Errorf("Destinations() = %v", got)
	}
}

func TestRouteNoRules(t *testing.T) {
	tab := mustCompile(t, nil, "b", "a")
	if got := tab.Route(map[string]string{"x": "y"}, "t"); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("got %v, want the default [a b]", got)
	}
	empty := mustCompile(t, nil)
	if got := empty.Route(nil, ""); len(got) != 0 {
		t.Errorf("empty default routes to %v", got)
	}
}

// TestRouteByBuildsLabelsOnlyWhenRead: the labels are built at most once,
// and not at all when no rule the profile meets reads a label.
func TestRouteByBuildsLabelsOnlyWhenRead(t *testing.T) {
	labels := map[string]string{"env": "prod"}
	tests := []struct {
		name   string
		rules  []Rule
		tenant string
		want   []string
		builds int
	}{
		{"no rules", nil, "t", []string{"def"}, 0},
		{"tenant rules only", []Rule{
			{Match: map[string]string{TenantKey: "a"}, ForwardTo: []string{"a"}},
			{Match: map[string]string{TenantKey: "t"}, ForwardTo: []string{"t"}},
		}, "t", []string{"t"}, 0},
		{"a rule with no condition", []Rule{{ForwardTo: []string{"all"}}}, "", []string{"all"}, 0},
		{"tenant fails before the label is read", []Rule{
			{Match: map[string]string{TenantKey: "other", "env": "prod"}, ForwardTo: []string{"x"}},
		}, "t", []string{"def"}, 0},
		{"two rules read labels, built once", []Rule{
			{Match: map[string]string{"env": "dev"}, ForwardTo: []string{"dev"}},
			{Match: map[string]string{"env": "prod"}, ForwardTo: []string{"prod"}},
		}, "", []string{"prod"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := mustCompile(t, tt.rules, "def")
			builds := 0
			got := tab.RouteBy(func() map[string]string { builds++; return labels }, tt.tenant)
			if !slices.Equal(got, tt.want) || builds != tt.builds {
				t.Errorf("RouteBy = %v after %d label builds, want %v after %d", got, builds, tt.want, tt.builds)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name  string
		rules []Rule
		field string
		msg   string
	}{
		{"bad regex", []Rule{{Match: map[string]string{"env": "prod"}, ForwardTo: []string{"a"}}, {Match: map[string]string{"service_name": "("}, ForwardTo: []string{"a"}}},
			"routes[1].match.service_name", "bad regular expression"},
		{"no destination", []Rule{{Match: map[string]string{"env": "prod"}}}, "routes[0].forward_to", "at least one"},
		{"empty destination name", []Rule{{ForwardTo: []string{"a", ""}}}, "routes[0].forward_to", "empty destination"},
		{"bad label name", []Rule{{Match: map[string]string{"service-name": "x"}, ForwardTo: []string{"a"}}}, "routes[0].match.service-name", "not allowed"},
		{"empty label name", []Rule{{Match: map[string]string{"": "x"}, ForwardTo: []string{"a"}}}, "routes[0].match.", "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.rules, []string{"a"})
			var re *Error
			if !errors.As(err, &re) {
				t.Fatalf("Compile: %v, want a *route.Error", err)
			}
			if re.Field != tt.field || !strings.Contains(err.Error(), tt.msg) || !strings.HasPrefix(err.Error(), tt.field+": ") {
				t.Errorf("error %q (field %q), want field %q and %q", err, re.Field, tt.field, tt.msg)
			}
		})
	}
}

func labels(kv ...string) []*typesv1.LabelPair {
	var out []*typesv1.LabelPair
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, &typesv1.LabelPair{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

func series(kv ...string) *pushv1.RawProfileSeries {
	return &pushv1.RawProfileSeries{Labels: labels(kv...), Samples: []*pushv1.RawSample{{RawProfile: []byte("p")}}}
}

func TestSeriesLabels(t *testing.T) {
	got := SeriesLabels(series("service_name", "a", "env", "prod", "env", "dev"))
	if len(got) != 2 || got["service_name"] != "a" || got["env"] != "prod" {
		t.Errorf("SeriesLabels = %v, want the first env", got)
	}
}

func TestSplitPush(t *testing.T) {
	tab := mustCompile(t, []Rule{
		{Match: map[string]string{"env": "prod"}, ForwardTo: []string{"prod", "archive"}},
		{Match: map[string]string{"env": "staging"}, ForwardTo: []string{"staging"}},
		{Match: map[string]string{TenantKey: "tenant-x"}, ForwardTo: []string{"archive", "prod"}},
	}, "staging")
	p1 := series("service_name", "a", "env", "prod")
	s1 := series("service_name", "b", "env", "staging")
	p2 := series("service_name", "c", "env", "prod")
	d1 := series("service_name", "d")

	t.Run("one destination set is not split", func(t *testing.T) {
		req := &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{s1, d1}}
		parts := tab.SplitPush(req, "")
		if len(parts) != 1 || parts[0].Request != req || !slices.Equal(parts[0].ForwardTo, []string{"staging"}) {
			t.Fatalf("parts %+v, want the request itself to [staging]", parts)
		}
	})
	t.Run("two sets, order kept", func(t *testing.T) {
		req := &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{p1, s1, p2, d1}}
		parts := tab.SplitPush(req, "")
		if len(parts) != 2 {
			t.Fatalf("%d parts, want 2: %+v", len(parts), parts)
		}
		if !slices.Equal(parts[0].ForwardTo, []string{"archive", "prod"}) || !slices.Equal(parts[0].Request.Series, []*pushv1.RawProfileSeries{p1, p2}) {
			t.Errorf("part 0: %v %v", parts[0].ForwardTo, parts[0].Request.Series)
		}
		if !slices.Equal(parts[1].ForwardTo, []string{"staging"}) || !slices.Equal(parts[1].Request.Series, []*pushv1.RawProfileSeries{s1, d1}) {
			t.Errorf("part 1: %v %v", parts[1].ForwardTo, parts[1].Request.Series)
		}
		if len(req.Series) != 4 {
			t.Errorf("the request was modified: %d series", len(req.Series))
		}
	})
	t.Run("rules naming the same set in another order group together", func(t *testing.T) {
		req := &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{p1, d1}}
		parts := tab.SplitPush(req, "tenant-x")
		if len(parts) != 1 || parts[0].Request != req || !slices.Equal(parts[0].ForwardTo, []string{"archive", "prod"}) {
			t.Fatalf("parts %+v, want one part to [archive prod]", parts)
		}
	})
	t.Run("no series", func(t *testing.T) {
		req := &pushv1.PushRequest{}
		if parts := tab.SplitPush(req, ""); len(parts) != 1 || parts[0].Request != req {
			t.Fatalf("parts %+v", parts)
		}
	})
	t.Run("unsorted destinations from a custom function", func(t *testing.T) {
		req := &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{p1, s1}}
		parts := Split(req, func(s *pushv1.RawProfileSeries) []string {
			if s == p1 {
				return []string{"b", "a", "b"}
			}
			return []string{"a", "b"}
		})
		if len(parts) != 1 || !slices.Equal(parts[0].ForwardTo, []string{"a", "b"}) {
			t.Fatalf("parts %+v, want one part to [a b]", parts)
		}
	})
}

// TestSplitProperties checks Split against its contract on random
// requests and random route tables, from fixed seeds so a failure
// reproduces: each destination gets exactly the series routed to it, each
// once; series routed identically are in the same part; parts have distinct
// destination sets; order is kept; one set means no split.
func TestSplitProperties(t *testing.T) {
	dests := []string{"a", "b", "c", "d"}
	values := []string{"x", "y", "z", ""}
	names := []string{"service_name", "env", "region"}
	for seed := range uint64(500) {
		rng := rand.New(rand.NewPCG(seed, 42))
		pick := func(from []string) string { return from[rng.IntN(len(from))] }
		var rules []Rule
		for range rng.IntN(5) {
			r := Rule{Match: map[string]string{}}
			for range rng.IntN(3) {
				name := pick(names)
				if rng.IntN(5) == 0 {
					name = TenantKey
				}
				r.Match[name] = pick([]string{"x", "y|z", ".*", "", "x|"})
			}
			for range 1 + rng.IntN(3) {
				r.ForwardTo = append(r.ForwardTo, pick(dests))
			}
			rules = append(rules, r)
		}
		var def []string
		for range rng.IntN(3) {
			def = append(def, pick(dests))
		}
		tab, err := Compile(rules, def)
		if err != nil {
			t.Fatalf("seed %d: Compile: %v", seed, err)
		}
		tenant := pick([]string{"x", "y", ""})
		req := &pushv1.PushRequest{}
		for i := range 1 + rng.IntN(8) {
			kv := []string{"id", fmt.Sprint(i)}
			for _, n := range names {
				if rng.IntN(4) > 0 {
					kv = append(kv, n, pick(values))
				}
			}
			req.Series = append(req.Series, series(kv...))
		}

		parts := tab.SplitPush(req, tenant)
		check := func(ok bool, format string, args ...any) {
			t.Helper()
			if !ok {
				t.Fatalf("seed %d: %s\nrules %+v default %v tenant %q", seed, fmt.Sprintf(format, args...), rules, def, tenant)
			}
		}
		// What each destination should receive, series by series.
		want := map[string][]*pushv1.RawProfileSeries{}
		sets := map[string]bool{}
		for _, s := range req.Series {
			r := tab.Route(SeriesLabels(s), tenant)
			sets[strings.Join(r, ",")] = true
			for _, d := range r {
				want[d] = append(want[d], s)
			}
		}
		got := map[string][]*pushv1.RawProfileSeries{}
		seen := map[*pushv1.RawProfileSeries]int{}
		partSets := map[string]bool{}
		for _, p := range parts {
			key := strings.Join(p.ForwardTo, ",")
			check(!partSets[key], "two parts go to %v", p.ForwardTo)
			partSets[key] = true
			check(slices.IsSorted(p.ForwardTo), "ForwardTo %v not sorted", p.ForwardTo)
			check(len(p.Request.Series) > 0, "an empty part")
			last := -1
			for _, s := range p.Request.Series {
				seen[s]++
				check(slices.Equal(tab.Route(SeriesLabels(s), tenant), p.ForwardTo), "series in a part for other destinations")
				i := slices.Index(req.Series, s)
				check(i > last, "series order changed")
				last = i
				for _, d := range p.ForwardTo {
					got[d] = append(got[d], s)
				}
			}
		}
		for _, s := range req.Series {
			check(seen[s] == 1, "series in %d parts, want 1", seen[s])
		}
		check(len(parts) == len(sets), "%d parts for %d destination sets", len(parts), len(sets))
		for _, d := range dests {
			check(sameSet(got[d], want[d]), "destination %s gets %d series, want %d", d, len(got[d]), len(want[d]))
		}
		if len(sets) == 1 {
			check(parts[0].Request == req, "one destination set, but the request was copied")
		}
	}
}

func sameSet(a, b []*pushv1.RawProfileSeries) bool {
	if len(a) != len(b) {
		return false
	}
	for _, s := range a {
		if !slices.Contains(b, s) {
			return false
		}
	}
	return true
}
