package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// relayMetrics is one scrape of the relay's /metrics: series text (name
// and labels, as exposed) to value. The text format is simple enough to
// read line by line, and doing so keeps the tool free of parsing deps.
type relayMetrics map[string]float64

func scrapeMetrics(ctx context.Context, client *http.Client, base string) (relayMetrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	// Plain text: the exposition format we parse below.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	// Uncompressed: gzip would cost the relay more CPU than the scrape is
	// worth, and the tool scrapes often.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s/metrics: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s/metrics: %s", base, resp.Status)
	}
	m := relayMetrics{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scrape %s/metrics: %w", base, err)
	}
	return m, nil
}

// queues returns a family's value per destination label, e.g. the
// entries waiting in each queue.
func (m relayMetrics) queues(family string) map[string]float64 {
	out := map[string]float64{}
	prefix := family + `{destination="`
	for k, v := range m {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			name, _, _ := strings.Cut(rest, `"`)
			out[name] = v
		}
	}
	return out
}

// sum adds a family's values over its destinations.
func (m relayMetrics) sum(family string) float64 {
	total := 0.0
	for _, v := range m.queues(family) {
		total += v
	}
	return total
}
