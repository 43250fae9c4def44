// Package operations holds what operators load next to pyrorelay rather
// than into it: a Grafana dashboard (dashboard.json) and Prometheus
// alerting rules (alerts.yaml, and the same rules as a Prometheus Operator
// PrometheusRule in prometheusrule.yaml). The package has no code; its
// tests check that the files parse, that the two rule files agree, and that
// every metric they query is one a running relay exports, so the files
// cannot drift from the code.
package operations
