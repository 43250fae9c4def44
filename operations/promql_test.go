package operations

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// This file is a small PromQL checker for the tests. The Prometheus parser
// (github.com/prometheus/prometheus/promql/parser) would add a dozen
// modules to go.mod and upgrade grpc and otel for everyone, for two files
// of YAML and JSON; instead this lexes an expression, checks its brackets,
// functions, selectors and ranges, and reports the metrics and labels it
// uses, which is what can drift from the code.

// selector is one metric an expression selects, with the label matchers
// written in its braces.
type selector struct {
	Metric   string
	Matchers []matcher
}

type matcher struct {
	Label, Op, Value string
}

// exprInfo is what an expression uses.
type exprInfo struct {
	Selectors []selector
	// GroupLabels are the labels of by, without, on, ignoring,
	// group_left and group_right lists.
	GroupLabels []string
}

type tokKind int

const (
	tIdent tokKind = iota
	tNumber
	tDuration
	tString
	tOp
	tOpen  // ( { [
	tClose // ) } ]
	tComma
)

type token struct {
	kind tokKind
	text string
	pos  int
}

// functions are PromQL's functions that take a plain expression.
var functions = setOf("abs", "absent", "ceil", "clamp", "clamp_max", "clamp_min", "day_of_month", "day_of_week",
	"day_of_year", "days_in_month", "exp", "floor", "histogram_avg", "histogram_count", "histogram_fraction",
	"histogram_quantile", "histogram_stddev", "histogram_stdvar", "histogram_sum", "hour", "label_join",
	"label_replace", "ln", "log10", "log2", "minute", "month", "round", "scalar", "sgn", "sort", "sort_desc",
	"sort_by_label", "sort_by_label_desc", "sqrt", "time", "timestamp", "vector", "year",
	"start", "end") // start() and end() follow @

// rangeFunctions take a range vector: their argument must have a [range].
var rangeFunctions = setOf("rate", "irate", "increase", "delta", "idelta", "deriv", "predict_linear", "resets",
	"changes", "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
	"quantile_over_time", "stddev_over_time", "stdvar_over_time", "last_over_time", "present_over_time",
	"absent_over_time", "mad_over_time", "holt_winters", "double_exponential_smoothing")

var aggregations = setOf("sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
	"bottomk", "topk", "quantile", "limitk", "limit_ratio")

// groupKeywords are followed by a parenthesised list of label names.
var groupKeywords = setOf("by", "without", "on", "ignoring", "group_left", "group_right")

var keywords = setOf("and", "or", "unless", "bool", "offset", "inf", "nan", "atan2")

func setOf(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// grafanaVars are the Grafana macros a dashboard query may use in a range,
// replaced by typical values before checking.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// checkPromQL checks expr and returns the metrics and labels it uses.
func checkPromQL(expr string) (*exprInfo, error) {
	toks, err := lexPromQL(grafanaVars.Replace(expr))
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("empty expression")
	}
	info := &exprInfo{}
	type frame struct {
		open      string // ( { [
		fn        string // function or aggregation that opened a (
		labelList bool   // a by/on/... list
		sawRange  bool   // a [range] directly inside
		// prevOperand is the state before a label list's keyword, which
		// the list does not change: sum(x) by (a) is complete after it,
		// on (a) group_left (b) still wants its right operand.
		prevOperand bool
		selector    int // index in info.Selectors of a {...} frame
		pos         int
	}
	var stack []*frame
	top := func() *frame {
		if len(stack) == 0 {
			return nil
		}
		return stack[len(stack)-1]
	}
	prevOperand := false // the previous token ended an operand
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		next := func() *token {
			if i+1 < len(toks) {
				return &toks[i+1]
			}
			return nil
		}
		f := top()
		// Inside braces: label matchers only.
		if f != nil && f.open == "{" && t.kind != tClose {
			if t.kind == tComma {
				continue
			}
			if t.kind != tIdent && t.kind != tString {
				return nil, fmt.Errorf("at %d: want a label name in {...}, got %q", t.pos, t.text)
			}
			if i+2 >= len(toks) || toks[i+1].kind != tOp || !setOf("=", "!=", "=~", "!~")[toks[i+1].text] || toks[i+2].kind != tString {
				return nil, fmt.Errorf("at %d: label matcher %q: want name, =, !=, =~ or !~, and a quoted value", t.pos, t.text)
			}
			m := matcher{Label: unquote(t), Op: toks[i+1].text, Value: unquote(toks[i+2])}
			if m.Op == "=~" || m.Op == "!~" {
				if _, err := regexp.Compile("^(?:" + m.Value + ")$"); err != nil {
					return nil, fmt.Errorf("at %d: label matcher %s%s%q: %v", t.pos, m.Label, m.Op, m.Value, err)
				}
			}
			sel := &info.Selectors[f.selector]
			sel.Matchers = append(sel.Matchers, m)
			i += 2
			continue
		}
		// Inside brackets: a range or subquery, [5m] or [1h:1m].
		if f != nil && f.open == "[" && t.kind != tClose {
			if t.kind != tDuration && !(t.kind == tOp && t.text == ":") {
				return nil, fmt.Errorf("at %d: want a duration in [...], got %q", t.pos, t.text)
			}
			continue
		}
		// Inside a by/on/... list: label names only.
		if f != nil && f.labelList && t.kind != tClose {
			switch t.kind {
			case tComma:
			case tIdent, tString:
				info.GroupLabels = append(info.GroupLabels, unquote(t))
			default:
				return nil, fmt.Errorf("at %d: want a label name in %s(...), got %q", t.pos, f.fn, t.text)
			}
			continue
		}
		switch t.kind {
		case tOpen:
			fr := &frame{open: t.text, pos: t.pos}
			switch t.text {
			case "[":
				if !prevOperand {
					return nil, fmt.Errorf("at %d: a range [...] must follow a selector or expression", t.pos)
				}
				if f != nil {
					f.sawRange = true
				}
			case "{":
				// A selector without a metric name, {job="x"}, selects by
				// labels alone.
				info.Selectors = append(info.Selectors, selector{})
				fr.selector = len(info.Selectors) - 1
			}
			stack = append(stack, fr)
			prevOperand = false
		case tClose:
			if f == nil || map[string]string{"(": ")", "{": "}", "[": "]"}[f.open] != t.text {
				return nil, fmt.Errorf("at %d: unbalanced %q", t.pos, t.text)
			}
			if rangeFunctions[f.fn] && !f.sawRange {
				return nil, fmt.Errorf("%s(...) at %d needs a range vector, such as metric[5m]", f.fn, f.pos)
			}
			stack = stack[:len(stack)-1]
			prevOperand = !f.labelList || f.prevOperand
		case tIdent:
			n := next()
			switch {
			case n != nil && n.kind == tOpen && n.text == "(":
				switch {
				case groupKeywords[t.text]:
				case functions[t.text], rangeFunctions[t.text], aggregations[t.text]:
					if prevOperand {
						return nil, fmt.Errorf("at %d: %s(...) follows an operand without an operator", t.pos, t.text)
					}
				default:
					return nil, fmt.Errorf("at %d: unknown function %q", t.pos, t.text)
				}
				stack = append(stack, &frame{open: "(", fn: t.text, labelList: groupKeywords[t.text], prevOperand: prevOperand, pos: t.pos})
				i++
				prevOperand = false
			case groupKeywords[t.text]:
				if t.text != "group_left" && t.text != "group_right" {
					return nil, fmt.Errorf("at %d: %s needs a label list", t.pos, t.text)
				}
				prevOperand = false
			case keywords[t.text]:
				prevOperand = t.text == "inf" || t.text == "nan"
			case aggregations[t.text]:
				// sum by (x) (...): the aggregation's group comes first.
				if n == nil || n.kind != tIdent || (n.text != "by" && n.text != "without") {
					return nil, fmt.Errorf("at %d: %s needs (...)", t.pos, t.text)
				}
				// Its expression is the paren group after the label list;
				// give it the aggregation's name for error messages.
				prevOperand = false
			default:
				if prevOperand {
					return nil, fmt.Errorf("at %d: metric %q follows an operand without an operator", t.pos, t.text)
				}
				info.Selectors = append(info.Selectors, selector{Metric: t.text})
				if n != nil && n.kind == tOpen && n.text == "{" {
					stack = append(stack, &frame{open: "{", selector: len(info.Selectors) - 1, pos: n.pos})
					i++
					prevOperand = false
					continue
				}
				prevOperand = true
			}
		case tNumber, tString:
			if prevOperand {
				return nil, fmt.Errorf("at %d: %q follows an operand without an operator", t.pos, t.text)
			}
			prevOperand = true
		case tDuration:
			// Only after offset, or in brackets (handled above).
			if i == 0 || toks[i-1].text != "offset" {
				return nil, fmt.Errorf("at %d: duration %q outside [...] or offset", t.pos, t.text)
			}
			prevOperand = true
		case tOp:
			if !prevOperand && t.text != "-" && t.text != "+" {
				return nil, fmt.Errorf("at %d: operator %q has no left operand", t.pos, t.text)
			}
			prevOperand = false
		case tComma:
			if f == nil || f.open != "(" {
				return nil, fmt.Errorf("at %d: comma outside a function's arguments", t.pos)
			}
			prevOperand = false
		}
	}
	if f := top(); f != nil {
		return nil, fmt.Errorf("at %d: %q is never closed", f.pos, f.open)
	}
	if !prevOperand {
		return nil, fmt.Errorf("expression ends with an operator")
	}
	return info, nil
}

func unquote(t token) string {
	if t.kind != tString {
		return t.text
	}
	s := t.text[1 : len(t.text)-1]
	if t.text[0] == '`' {
		return s
	}
	return strings.NewReplacer(`\\`, `\`, `\"`, `"`, `\'`, `'`).Replace(s)
}

// lexPromQL splits expr into tokens; a '$' outside a string is an error,
// since it means an unknown Grafana variable.
func lexPromQL(expr string) ([]token, error) {
	var toks []token
	r := []rune(expr)
	for i := 0; i < len(r); {
		c := r[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '#':
			for i < len(r) && r[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(r) && r[j] != c {
				if r[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			if j >= len(r) {
				return nil, fmt.Errorf("at %d: unterminated string", i)
			}
			toks = append(toks, token{tString, string(r[i : j+1]), i})
			i = j + 1
		case unicode.IsDigit(c) || (c == '.' && i+1 < len(r) && unicode.IsDigit(r[i+1])):
			j := i
			for j < len(r) && (unicode.IsDigit(r[j]) || r[j] == '.') {
				j++
			}
			if j < len(r) && (r[j] == 'e' || r[j] == 'E') && j+1 < len(r) && (unicode.IsDigit(r[j+1]) || r[j+1] == '-' || r[j+1] == '+') {
				j += 2
				for j < len(r) && unicode.IsDigit(r[j]) {
					j++
				}
				toks = append(toks, token{tNumber, string(r[i:j]), i})
				i = j
				continue
			}
			if j < len(r) && strings.ContainsRune("smhdwy", r[j]) {
				for j < len(r) && (unicode.IsDigit(r[j]) || strings.ContainsRune("smhdwy", r[j])) {
					j++
				}
				d := string(r[i:j])
				if !durationRE.MatchString(d) {
					return nil, fmt.Errorf("at %d: bad duration %q", i, d)
				}
				toks = append(toks, token{tDuration, d, i})
			} else {
				toks = append(toks, token{tNumber, string(r[i:j]), i})
			}
			i = j
		case c == '_' || unicode.IsLetter(c):
			// Metric names may hold ':' (recording rules), but a token
			// starting with ':' is the subquery colon of [1h:1m].
			j := i
			for j < len(r) && (r[j] == '_' || r[j] == ':' || unicode.IsLetter(r[j]) || unicode.IsDigit(r[j])) {
				j++
			}
			toks = append(toks, token{tIdent, string(r[i:j]), i})
			i = j
		case c == ':':
			toks = append(toks, token{tOp, ":", i})
			i++
		case strings.ContainsRune("({[", c):
			toks = append(toks, token{tOpen, string(c), i})
			i++
		case strings.ContainsRune(")}]", c):
			toks = append(toks, token{tClose, string(c), i})
			i++
		case c == ',':
			toks = append(toks, token{tComma, ",", i})
			i++
		case c == '$':
			return nil, fmt.Errorf("at %d: unknown variable outside a string: %q", i, string(r[i:min(i+20, len(r))]))
		default:
			if i+1 < len(r) {
				if two := string(r[i : i+2]); setOf("==", "!=", "=~", "!~", "<=", ">=")[two] {
					toks = append(toks, token{tOp, two, i})
					i += 2
					continue
				}
			}
			if !strings.ContainsRune("+-*/%^<>=@", c) {
				return nil, fmt.Errorf("at %d: unexpected %q", i, string(c))
			}
			toks = append(toks, token{tOp, string(c), i})
			i++
		}
	}
	return toks, nil
}

var durationRE = regexp.MustCompile(`^([0-9]+(ms|[smhdwy]))+$`)

func TestCheckPromQL(t *testing.T) {
	tests := []struct {
		expr    string
		metrics []string
		groups  []string
		wantErr string
	}{
		{expr: `up`, metrics: []string{"up"}},
		{expr: `sum by (a, b) (rate(x_total{c="d", e=~"f|g"}[5m])) > 0`, metrics: []string{"x_total"}, groups: []string{"a", "b"}},
		{expr: `sum(rate(x[$__rate_interval])) without (a)`, metrics: []string{"x"}, groups: []string{"a"}},
		{expr: "(a > 0)\nunless on (i, d)\n(b > 0)", metrics: []string{"a", "b"}, groups: []string{"i", "d"}},
		{expr: `histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))`, metrics: []string{"h_bucket"}, groups: []string{"le"}},
		{expr: `a / (b > 0) > 0.8`, metrics: []string{"a", "b"}},
		{expr: `a * on (x) group_left (y) b`, metrics: []string{"a", "b"}, groups: []string{"x", "y"}},
		{expr: `max_over_time(a[1h:1m]) offset 5m`, metrics: []string{"a"}},
		{expr: `-a + 1e3`, metrics: []string{"a"}},
		{expr: `{__name__="a"}`},
		{expr: `rate(x)`, wantErr: "needs a range vector"},
		{expr: `sum(rate(x[5m])`, wantErr: "never closed"},
		{expr: `sum(x))`, wantErr: "unbalanced"},
		{expr: `rat(x[5m])`, wantErr: "unknown function"},
		{expr: `x{a="b"`, wantErr: "never closed"},
		{expr: `x{a}`, wantErr: "label matcher"},
		{expr: `x{a=~"("}`, wantErr: "missing closing"},
		{expr: `x[5q]`, wantErr: "want a duration"},
		{expr: `x >`, wantErr: "ends with an operator"},
		{expr: `x y`, wantErr: "without an operator"},
		{expr: `x[$__foo]`, wantErr: "unknown variable"},
		{expr: `sum by a (x)`, wantErr: "needs a label list"},
		{expr: `x{a="b}`, wantErr: "unterminated string"},
		{expr: ``, wantErr: "empty"},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			info, err := checkPromQL(tc.expr)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range info.Selectors {
				if s.Metric != "" {
					got = append(got, s.Metric)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.metrics, ",") {
				t.Errorf("metrics %v, want %v", got, tc.metrics)
			}
			if strings.Join(info.GroupLabels, ",") != strings.Join(tc.groups, ",") {
				t.Errorf("group labels %v, want %v", info.GroupLabels, tc.groups)
			}
		})
	}
}
