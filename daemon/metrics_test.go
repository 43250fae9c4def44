package daemon

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyrorelay/pyrorelay/store"
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

// The store's size is exported as the bbolt file's and the record log's,
// each what is on disk.
func TestStoreSizeCollector(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, store.FileName), make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pyrorelay-0123456789abcdef-00000007.seg"), make([]byte, 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(newStoreSizeCollector(filepath.Join(dir, store.FileName)))
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		got[f.GetName()] = f.GetMetric()[0].GetGauge().GetValue()
	}
	if got["pyrorelay_store_size_bytes"] != 4096 || got["pyrorelay_store_log_bytes"] != 1000 {
		t.Errorf("store size %v, log %v; want 4096 and 1000", got["pyrorelay_store_size_bytes"], got["pyrorelay_store_log_bytes"])
	}
}
