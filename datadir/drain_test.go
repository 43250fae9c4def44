package datadir

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/daemon"
	"github.com/pyrorelay/pyrorelay/relay"
	"github.com/pyrorelay/pyrorelay/store"
)

func TestDrainConfig(t *testing.T) {
	cfg := daemon.DefaultConfig()
	if _, err := DrainConfig(cfg); !errors.Is(err, ErrNoDestinations) {
		t.Errorf("no destinations: %v", err)
	}
	// A receiver forwarding to a destination not given is no error for a
	// drain: it serves nothing.
	cfg.Destinations = []relay.Destination{{Name: "prod", URL: "http://127.0.0.1:1"}}
	cfg.Receivers = []daemon.Receiver{{Name: "r", Listen: ":4040", ForwardTo: []string{"missing"}}}
	got, err := DrainConfig(cfg)
	if err != nil || got.Receivers != nil || len(got.Destinations) != 1 {
		t.Errorf("DrainConfig = %+v, %v", got, err)
	}
}

func TestDrainedErr(t *testing.T) {
	empty := daemon.DrainResult{Destination: "a", Before: store.QueueStats{Entries: 2}}
	left := daemon.DrainResult{Destination: "b", After: store.QueueStats{Entries: 1}}
	for _, c := range []struct {
		d    Drained
		want string
	}{
		{Drained{Results: []daemon.DrainResult{empty, left}}, ""},
		{Drained{Results: []daemon.DrainResult{empty, left}, Why: "timed out after 1s"},
			"drain timed out after 1s: 1 of 2 destinations still have entries queued; they stay queued for the next run or serve"},
		{Drained{Results: []daemon.DrainResult{empty}, Why: "interrupted"}, ""},
		{Drained{Results: []daemon.DrainResult{empty}, Why: "reading the queues failed: boom"}, "reading the queues failed: boom"},
	} {
		err := c.d.Err()
		if (err == nil) != (c.want == "") || (err != nil && err.Error() != c.want) {
			t.Errorf("%+v: Err = %v, want %q", c.d, err, c.want)
		}
	}
}

func TestDrain(t *testing.T) {
	var got atomic.Int64
	dst := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { got.Add(1) }))
	t.Cleanup(dst.Close)
	cfg := daemon.DefaultConfig()
	cfg.DataDir = fill(t, 3)
	cfg.Listen = "0.0.0.0:9999"
	cfg.Destinations = []relay.Destination{{Name: "prod", URL: dst.URL}}
	cfg, err := DrainConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Drain(context.Background(), cfg, time.Minute, nil)
	if err != nil || d.Err() != nil || d.Left() != 0 || len(d.Results) != 1 || d.Results[0].Delivered() != 3 || got.Load() != 3 {
		t.Fatalf("Drain = %+v, %v; destination got %d", d, err, got.Load())
	}

	running, err := store.Open(cfg.DataDir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer running.Close()
	_, err = Drain(context.Background(), cfg, time.Minute, nil)
	if !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), "watch it with `pyrorelay queue status --url http://127.0.0.1:9999`") {
		t.Errorf("locked: %v", err)
	}
}
