package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// sinksUp is the state when the sinks came back.
type sinksUp struct {
	at          time.Time
	ackedBefore int64
	down        int     // destinations that were down
	entries     float64 // per down destination, averaged
	bytes       float64
	fileBytes   int64
	// downRequests is what the down sinks were sent until then.
	downRequests uint64
}

// bringUp ends the sinks' outage and notes the backlog at that moment.
func bringUp(ctx context.Context, mc *http.Client, target string, sinks []*sink, acks *ackCounter, dataDir string) (*sinksUp, error) {
	m, err := scrapeMetrics(ctx, mc, target)
	if err != nil {
		return nil, err
	}
	u := &sinksUp{ackedBefore: acks.n.Load()}
	// The backlog is that of the destinations that were down; a relay the
	// tool did not configure may name them otherwise: then all count.
	entries, bytes := m.queues("pyrorelay_queue_entries"), m.queues("pyrorelay_queue_bytes")
	var n float64
	for _, s := range sinks {
		if v, ok := entries[s.name]; ok && s.down.Load() {
			u.entries += v
			u.bytes += bytes[s.name]
			n++
		}
	}
	if n == 0 {
		u.entries, u.bytes, n = m.sum("pyrorelay_queue_entries"), m.sum("pyrorelay_queue_bytes"), float64(len(entries))
	}
	if n > 0 {
		u.entries /= n
		u.bytes /= n
	}
	u.down = int(n)
	if dataDir != "" {
		if fi, err := os.Stat(filepath.Join(dataDir, "pyrorelay.db")); err == nil {
			u.fileBytes = fi.Size()
		}
	}
	u.at = time.Now()
	for _, s := range sinks {
		if s.down.Load() {
			u.downRequests += s.requests.Load()
			s.upAt.Store(u.at.UnixNano())
		}
		s.down.Store(false)
	}
	return u, nil
}

// writeRelayConfig writes the relay's YAML: one destination per sink, with
// short backoffs so that a sink coming back is noticed within --max-backoff.
func writeRelayConfig(path string, cfg config, sinks []*sink) error {
	var b strings.Builder
	b.WriteString("destinations:\n")
	for _, s := range sinks {
		fmt.Fprintf(&b, "  - name: %s\n    url: %s\n    min_backoff: %s\n    max_backoff: %s\n", s.name, s.URL(), cfg.minBackoff, cfg.maxBackoff)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("relay config: %w", err)
	}
	return nil
}
