package daemon

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// movingCounts is a store that commits one write between any two readings.
type movingCounts struct{ n uint64 }

func (m *movingCounts) CommitCounts() (commits, writes uint64) {
	m.n++
	return m.n, m.n
}

// Both counters of one scrape come from one reading of the store, so
// writes/commits is exact; read twice, the store may commit in between.
func TestCommitCountersFromOneReading(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(newCommitCollector(&movingCounts{}))
	for range 3 {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, f := range fams {
			got[f.GetName()] = f.GetMetric()[0].GetCounter().GetValue()
		}
		c, w := got["pyrorelay_store_commits_total"], got["pyrorelay_store_writes_total"]
		if c == 0 || c != w {
			t.Fatalf("commits %v, writes %v: not from one reading", c, w)
		}
	}
}
