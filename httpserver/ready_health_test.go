package httpserver

import (
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// healthStore is a fake store that says why it refuses writes.
type healthStore struct {
	fakeStore
	health atomic.Pointer[error]
}

func (h *healthStore) Health() error {
	if p := h.health.Load(); p != nil {
		return *p
	}
	return nil
}

// A relay whose store refuses writes (file at its cap, disk full, damaged
// page) is not ready, and /-/ready says why.
func TestReadyReportsStoreRefusingWrites(t *testing.T) {
	hs := &healthStore{}
	s := New(Config{}, Options{Store: hs, Registry: prometheus.NewRegistry(), Ready: func() bool { return true }})
	base := serve(t, s)
	get := func() (int, string) {
		req, _ := http.NewRequest(http.MethodGet, base+"/-/ready", nil)
		resp, body := do(t, nil, req)
		return resp.StatusCode, string(body)
	}
	if code, _ := get(); code != http.StatusOK {
		t.Errorf("/-/ready of a healthy store = %d, want 200", code)
	}
	err := errors.New("store refuses writes: database reached maximum size")
	hs.health.Store(&err)
	if code, body := get(); code != http.StatusServiceUnavailable || !strings.Contains(body, "maximum size") {
		t.Errorf("/-/ready of a store refusing writes = %d %q, want 503 with the reason", code, body)
	}
	hs.health.Store(nil)
	if code, _ := get(); code != http.StatusOK {
		t.Errorf("/-/ready once the store takes writes again = %d, want 200", code)
	}
}
