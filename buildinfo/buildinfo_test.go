package buildinfo

import (
	"runtime"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestReadPrefersTheLinkerFlags(t *testing.T) {
	if got := Read("v1.2.3", "abc123"); got.Version != "v1.2.3" || got.Revision != "abc123" || got.GoVersion == "" {
		t.Errorf("Read = %+v", got)
	}
	if got := Read("dev", ""); got.Version == "" || got.Revision == "" {
		t.Errorf("Read without flags = %+v: want a version and a revision (unknown at worst)", got)
	}
}

func TestRegister(t *testing.T) {
	reg := prometheus.NewRegistry()
	Register(reg, Info{"v1.2.3", "abc123", "go1.26.8"})
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || mfs[0].GetName() != "pyrorelay_build_info" || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("gathered %v, %v", mfs, err)
	}
	m := mfs[0].GetMetric()[0]
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if m.GetGauge().GetValue() != 1 || labels["version"] != "v1.2.3" || labels["revision"] != "abc123" || labels["goversion"] != "go1.26.8" {
		t.Errorf("pyrorelay_build_info %v = %v", labels, m.GetGauge().GetValue())
	}
}

func TestString(t *testing.T) {
	want := "pyrorelay v1.2.3 (revision abc123, go1.99, " + runtime.GOOS + "/" + runtime.GOARCH + ")"
	if got := (Info{"v1.2.3", "abc123", "go1.99"}).String(); got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}
