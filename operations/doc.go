// Package operations holds what operators load next to pyrorelay rather
// than into it: a Grafana dashboard (dashboard.json) and Prometheus
// alerting rules (alerts.yaml). The package has no code; its tests check
// that both parse and that every metric they query is one a running relay
// exports, so the files cannot drift from the code.
package operations
