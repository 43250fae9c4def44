package operations

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// The rule file's structure, as Prometheus reads it (rulefmt.RuleGroups).
// Decoding with KnownFields catches a misspelt key, which Prometheus
// refuses too.
type ruleFile struct {
	Groups []ruleGroup `yaml:"groups"`
}

type ruleGroup struct {
	Name     string `yaml:"name"`
	Interval string `yaml:"interval,omitempty"`
	Limit    int    `yaml:"limit,omitempty"`
	Rules    []rule `yaml:"rules"`
}

type rule struct {
	Record        string            `yaml:"record,omitempty"`
	Alert         string            `yaml:"alert,omitempty"`
	Expr          string            `yaml:"expr"`
	For           string            `yaml:"for,omitempty"`
	KeepFiringFor string            `yaml:"keep_firing_for,omitempty"`
	Labels        map[string]string `yaml:"labels,omitempty"`
	Annotations   map[string]string `yaml:"annotations,omitempty"`
}

var (
	metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

func loadRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile("alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var rf ruleFile
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	return rf
}

// promTemplateFuncs are the template functions Prometheus gives alert
// annotations; stubs are enough to check that a template parses and runs.
var promTemplateFuncs = template.FuncMap{
	"humanize":           func(v any) string { return "1" },
	"humanize1024":       func(v any) string { return "1" },
	"humanizeDuration":   func(v any) string { return "1s" },
	"humanizePercentage": func(v any) string { return "1%" },
	"humanizeTimestamp":  func(v any) string { return "1970" },
	"toTime":             func(v any) time.Time { return time.Time{} },
	"title":              strings.Title, //nolint:staticcheck // what Prometheus provides
	"toUpper":            strings.ToUpper,
	"toLower":            strings.ToLower,
	"reReplaceAll":       func(p, r, s string) string { return regexp.MustCompile(p).ReplaceAllString(s, r) },
	"match":              regexp.MatchString,
	"safeHtml":           func(s string) string { return s },
	"stripPort":          func(s string) string { return s },
	"externalURL":        func() string { return "http://prometheus" },
	"pathPrefix":         func() string { return "" },
}

// checkTemplate parses and runs an annotation the way Prometheus expands
// it: with $labels, $externalLabels and $value defined in front.
func checkTemplate(text string, labels map[string]string) error {
	const defs = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$value := .Value}}"
	tmpl, err := template.New("annotation").Funcs(promTemplateFuncs).Option("missingkey=zero").Parse(defs + text)
	if err != nil {
		return err
	}
	data := struct {
		Labels, ExternalLabels map[string]string
		Value                  float64
	}{labels, map[string]string{}, 1}
	return tmpl.Execute(&bytes.Buffer{}, data)
}

func TestAlertRulesAreValid(t *testing.T) {
	rf := loadRules(t)
	if len(rf.Groups) == 0 {
		t.Fatal("alerts.yaml has no groups")
	}
	groups := map[string]bool{}
	for _, g := range rf.Groups {
		if g.Name == "" || groups[g.Name] {
			t.Errorf("group name %q is empty or used twice", g.Name)
		}
		groups[g.Name] = true
		if g.Interval != "" {
			if _, err := model.ParseDuration(g.Interval); err != nil {
				t.Errorf("group %s: interval: %v", g.Name, err)
			}
		}
		if len(g.Rules) == 0 {
			t.Errorf("group %s has no rules", g.Name)
		}
		alerts := map[string]bool{}
		for i, r := range g.Rules {
			name := r.Alert + r.Record
			t.Run(name, func(t *testing.T) {
				if (r.Alert == "") == (r.Record == "") {
					t.Fatalf("rule %d: set exactly one of alert and record", i)
				}
				if r.Record != "" && !metricNameRE.MatchString(r.Record) {
					t.Errorf("record %q is not a metric name", r.Record)
				}
				if r.Alert != "" {
					if !labelNameRE.MatchString(r.Alert) || alerts[r.Alert] {
						t.Errorf("alert name %q is not a valid name, or is used twice in the group", r.Alert)
					}
					alerts[r.Alert] = true
				}
				if strings.TrimSpace(r.Expr) == "" {
					t.Fatal("expr is empty")
				}
				if _, err := checkPromQL(r.Expr); err != nil {
					t.Errorf("expr %q: %v", r.Expr, err)
				}
				for field, d := range map[string]string{"for": r.For, "keep_firing_for": r.KeepFiringFor} {
					if d == "" {
						continue
					}
					if _, err := model.ParseDuration(d); err != nil {
						t.Errorf("%s: %v", field, err)
					}
				}
				for k, v := range r.Labels {
					if !labelNameRE.MatchString(k) || strings.HasPrefix(k, "__") {
						t.Errorf("label name %q is not valid", k)
					}
					if err := checkTemplate(v, map[string]string{}); err != nil {
						t.Errorf("label %s: %v", k, err)
					}
				}
				if r.Alert == "" {
					return
				}
				if sev := r.Labels["severity"]; sev != "warning" && sev != "critical" {
					t.Errorf("severity %q: want warning or critical, what routing trees match on", sev)
				}
				for _, a := range []string{"summary", "description"} {
					if r.Annotations[a] == "" {
						t.Errorf("annotation %s is missing", a)
					}
				}
				for k, v := range r.Annotations {
					if err := checkTemplate(v, map[string]string{"instance": "relay:4040", "destination": "prod", "reason": "permanent"}); err != nil {
						t.Errorf("annotation %s: %v", k, err)
					}
				}
			})
		}
	}
}

// TestAlertRulesCoverTheIssue pins what each alert the operators asked for
// watches, so an edit cannot quietly weaken one.
func TestAlertRulesCoverTheIssue(t *testing.T) {
	byName := map[string]rule{}
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			byName[r.Alert] = r
		}
	}
	tests := []struct {
		alert    string
		contains []string
		minFor   time.Duration
	}{
		{"PyrorelayDestinationDown", []string{"pyrorelay_destination_up", "== 0"}, 5 * time.Minute},
		{"PyrorelayQueueOldestEntryTooOld", []string{"pyrorelay_queue_oldest_age_seconds", "> 2700"}, 0},
		{"PyrorelayDeadLettersGrowing", []string{"increase(pyrorelay_dead_lettered_total[15m])", "> 0"}, 0},
		{"PyrorelayDiskBudgetNearlyFull", []string{"pyrorelay_stored_bytes", "pyrorelay_disk_budget_bytes", "> 0.8"}, 0},
		{"PyrorelayDown", []string{`up{job=~"pyrorelay.*"} == 0`}, 5 * time.Minute},
		{"PyrorelayRefusingProfiles", []string{"rate(pyrorelay_requests_received_total", `code=~"429|503|507"`, "by (instance, receiver, code)", "> 0"}, 5 * time.Minute},
		{"PyrorelayTLSCertificateExpiresSoon", []string{"pyrorelay_tls_certificate_not_after_timestamp_seconds - time() < 14 * 86400"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.alert, func(t *testing.T) {
			r, ok := byName[tc.alert]
			if !ok {
				t.Fatalf("alert %s is missing", tc.alert)
			}
			expr := strings.Join(strings.Fields(r.Expr), " ")
			for _, s := range tc.contains {
				if !strings.Contains(expr, s) {
					t.Errorf("expr %q does not contain %q", expr, s)
				}
			}
			if tc.minFor > 0 {
				d, err := model.ParseDuration(r.For)
				if err != nil || time.Duration(d) < tc.minFor {
					t.Errorf("for: %q, want at least %s", r.For, tc.minFor)
				}
			}
		})
	}
}

// TestPrometheusRuleMatchesAlerts checks that prometheusrule.yaml, for the
// Prometheus Operator, holds exactly the rules of alerts.yaml.
func TestPrometheusRuleMatchesAlerts(t *testing.T) {
	b, err := os.ReadFile("prometheusrule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var pr struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name      string            `yaml:"name"`
			Namespace string            `yaml:"namespace"`
			Labels    map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec ruleFile `yaml:"spec"`
	}
	if err := dec.Decode(&pr); err != nil {
		t.Fatalf("prometheusrule.yaml: %v", err)
	}
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" || pr.Metadata.Name == "" {
		t.Errorf("apiVersion %q, kind %q, name %q: want a named monitoring.coreos.com/v1 PrometheusRule", pr.APIVersion, pr.Kind, pr.Metadata.Name)
	}
	want := loadRules(t)
	if !reflect.DeepEqual(pr.Spec, want) {
		got, _ := yaml.Marshal(pr.Spec)
		wantText, _ := yaml.Marshal(want)
		t.Errorf("prometheusrule.yaml's spec differs from alerts.yaml: copy alerts.yaml's groups into spec\n--- prometheusrule.yaml spec:\n%s\n--- alerts.yaml:\n%s", got, wantText)
	}
}

// dashboard is the part of a Grafana dashboard the tests look at.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int                      `json:"id"`
	Type       string                   `json:"type"`
	Title      string                   `json:"title"`
	Datasource *datasourceRef           `json:"datasource"`
	GridPos    struct{ H, W, X, Y int } `json:"gridPos"`
	Targets    []struct {
		Expr       string         `json:"expr"`
		RefID      string         `json:"refId"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's panels
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	return d
}

// allPanels flattens rows.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// dashboardQueries returns every PromQL query of the dashboard: panel
// targets and query variables, each with where it is.
func dashboardQueries(t *testing.T, d dashboard) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			out[p.Title+"/"+tg.RefID] = tg.Expr
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			var s string
			if err := json.Unmarshal(v.Query, &s); err != nil {
				t.Fatalf("variable %s: query is neither an object nor a string", v.Name)
			}
			q.Query = s
		}
		// label_values(selector, label): the selector is what can drift.
		inner, ok := strings.CutPrefix(q.Query, "label_values(")
		if !ok {
			t.Errorf("variable %s: query %q is not label_values(...)", v.Name, q.Query)
			continue
		}
		i := strings.LastIndex(inner, ",")
		if i < 0 {
			t.Errorf("variable %s: query %q has no label", v.Name, q.Query)
			continue
		}
		out["variable "+v.Name] = inner[:i]
	}
	return out
}

func TestDashboardIsValid(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q and title %q must be set, so imports update the same dashboard", d.UID, d.Title)
	}
	ids := map[int]string{}
	for _, p := range allPanels(d.Panels) {
		if prev, dup := ids[p.ID]; dup || p.ID == 0 {
			t.Errorf("panel %q: id %d is zero or also used by %q", p.Title, p.ID, prev)
		}
		ids[p.ID] = p.Title
		if p.Title == "" {
			t.Errorf("panel %d has no title", p.ID)
		}
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v is outside the 24-column grid", p.Title, g)
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, ds := range []*datasourceRef{p.Datasource} {
			if ds == nil || ds.UID != "${datasource}" {
				t.Errorf("panel %q: datasource %+v, want the ${datasource} variable so the dashboard imports anywhere", p.Title, ds)
			}
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: refId %q is empty or used twice", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
		}
	}
	queries := dashboardQueries(t, d)
	if len(queries) == 0 {
		t.Fatal("dashboard has no queries")
	}
	for where, q := range queries {
		if _, err := checkPromQL(q); err != nil {
			t.Errorf("%s: %q: %v", where, q, err)
		}
	}
}

// TestDashboardCoversTheIssue checks the dashboard shows what operators
// asked for: ingest rate, acknowledge latency, queue depth and oldest age
// per destination, forward success and failure, dead letters, disk use.
func TestDashboardCoversTheIssue(t *testing.T) {
	var all []string
	for _, q := range dashboardQueries(t, loadDashboard(t)) {
		all = append(all, q)
	}
	joined := strings.Join(all, "\n")
	for _, want := range []string{
		"rate(pyrorelay_requests_received_total",
		"pyrorelay_request_duration_seconds_bucket",
		"by (instance, destination) (pyrorelay_queue_entries",
		"by (instance, destination) (pyrorelay_queue_oldest_age_seconds",
		"by (instance, destination, result) (rate(pyrorelay_forward_attempts_total",
		"pyrorelay_dead_lettered_total",
		"pyrorelay_dead_letter_entries",
		"pyrorelay_store_size_bytes",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("no dashboard query contains %q", want)
		}
	}
}

// TestDashboardKeepsTheInstance checks that every per-destination panel
// keeps the instance: a sum over the fleet hides which relay is stuck.
func TestDashboardKeepsTheInstance(t *testing.T) {
	groupRE := regexp.MustCompile(`\b(by|without)\s*\(([^)]*)\)`)
	for where, q := range dashboardQueries(t, loadDashboard(t)) {
		for _, m := range groupRE.FindAllStringSubmatch(q, -1) {
			if m[1] != "by" {
				continue
			}
			labels := strings.Split(m[2], ",")
			for i := range labels {
				labels[i] = strings.TrimSpace(labels[i])
			}
			if slices.Contains(labels, "destination") && !slices.Contains(labels, "instance") {
				t.Errorf("%s: %q groups by destination without instance: two relays' queues for one destination add up, and a stuck relay cannot be found", where, q)
			}
		}
	}
}

// optionalMetrics may be missing from a relay's scrape because the code
// that exports them has not landed yet; the alert and panel using them
// stay silent until it does. Keep this list empty when it can be.
var optionalMetrics = map[string]string{}

// scrapeMetrics are series Prometheus makes itself for each target it
// scrapes; no exporter has them.
var scrapeMetrics = map[string]bool{"up": true, "scrape_duration_seconds": true, "scrape_samples_scraped": true}

// openLabelValues are labels whose values come from what happened, not
// from a fixed set: a query may name a value the test relay never saw, as
// long as the relay can take it.
var openLabelValues = map[string]func(string) bool{
	// code is the HTTP status the relay answered (gRPC codes mapped to one).
	"code": func(v string) bool { n, err := strconv.Atoi(v); return err == nil && n >= 100 && n <= 599 },
}

// TestQueriedMetricsAreExported runs the relay, makes it export every
// labelled series once, and checks that each metric and label the alert
// rules and the dashboard use is in its /metrics.
func TestQueriedMetricsAreExported(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the relay binary")
	}
	fams := scrapeRunningRelay(t)

	type use struct{ where, expr string }
	var uses []use
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			uses = append(uses, use{"alert " + r.Alert + r.Record, r.Expr})
		}
	}
	for where, q := range dashboardQueries(t, loadDashboard(t)) {
		uses = append(uses, use{"dashboard " + where, q})
	}
	sort.Slice(uses, func(i, j int) bool { return uses[i].where < uses[j].where })

	// Labels Prometheus adds at scrape time, or that histograms carry.
	external := []string{"job", "instance"}
	for _, u := range uses {
		info, err := checkPromQL(u.expr)
		if err != nil {
			t.Errorf("%s: %v", u.where, err)
			continue
		}
		exprLabels := map[string]bool{}
		for _, s := range info.Selectors {
			if s.Metric == "" {
				continue
			}
			if scrapeMetrics[s.Metric] {
				for _, m := range s.Matchers {
					if !slices.Contains(external, m.Label) {
						t.Errorf("%s: %s has only the target's labels, not %q", u.where, s.Metric, m.Label)
					}
				}
				continue
			}
			fam, ok := fams.lookup(s.Metric)
			if !ok {
				if why, opt := optionalMetrics[s.Metric]; opt {
					t.Logf("%s: %s is not exported yet (%s)", u.where, s.Metric, why)
					continue
				}
				t.Errorf("%s: metric %s is not exported by the relay", u.where, s.Metric)
				continue
			}
			for l := range fam.labels {
				exprLabels[l] = true
			}
			for _, m := range s.Matchers {
				if slices.Contains(external, m.Label) {
					continue
				}
				values, ok := fam.labels[m.Label]
				if !ok {
					t.Errorf("%s: %s has no label %q (it has %v)", u.where, s.Metric, m.Label, fam.labelNames())
					continue
				}
				for _, v := range literalAlternatives(m) {
					if valid, open := openLabelValues[m.Label]; open {
						if !valid(v) {
							t.Errorf("%s: %s{%s} cannot take the value %q", u.where, s.Metric, m.Label, v)
						}
						continue
					}
					if !values[v] {
						t.Errorf("%s: %s{%s} never takes the value %q (seen: %v)", u.where, s.Metric, m.Label, v, keys(values))
					}
				}
			}
		}
		for _, l := range info.GroupLabels {
			if !slices.Contains(external, l) && !exprLabels[l] {
				t.Errorf("%s: grouping label %q is on none of the expression's metrics", u.where, l)
			}
		}
	}
	// An exception outlives its reason only until the metric lands.
	for m := range optionalMetrics {
		if _, ok := fams.lookup(m); ok {
			t.Errorf("%s is exported now: remove it from optionalMetrics", m)
		}
	}
}

// literalAlternatives returns the values an = or =~ matcher names when
// they are plain words (a|b|c), for checking against the scrape; other
// matchers return nothing.
func literalAlternatives(m matcher) []string {
	switch m.Op {
	case "=":
		return []string{m.Value}
	case "=~":
		if regexp.MustCompile(`^[A-Za-z0-9_]+(\|[A-Za-z0-9_]+)*$`).MatchString(m.Value) {
			return strings.Split(m.Value, "|")
		}
	}
	return nil
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
