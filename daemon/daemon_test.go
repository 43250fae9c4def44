package daemon

// Tests of the running relay as a library: New and Run on 127.0.0.1:0
// with a store in t.TempDir(), requests in, forwards out, Reload.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/internal/poll"
	"github.com/pyrorelay/pyrorelay/relay"
	"github.com/pyrorelay/pyrorelay/store"
)

// deliverDeadline bounds every wait for a forward: generous, for a loaded
// 2-core machine.
const deliverDeadline = 30 * time.Second

// waitFor polls cond until it holds or timeout passes, then fails the
// test with what and cond's last explanation.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	poll.For(t, timeout, what, cond)
}

// received is one request a destination got.
type received struct {
	query  string
	header http.Header
	body   []byte
}

// destination is a Pyroscope stand-in that accepts and keeps every request.
type destination struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []received
}

func newDestination(t *testing.T) *destination {
	d := &destination{}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		d.mu.Lock()
		d.reqs = append(d.reqs, received{query: r.URL.RawQuery, header: r.Header.Clone(), body: body})
		d.mu.Unlock()
	}))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *destination) requests() []received {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]received(nil), d.reqs...)
}

// ids lists the req_id of every request received.
func (d *destination) ids() []string {
	var out []string
	for _, r := range d.requests() {
		q, _ := url.ParseQuery(r.query)
		if id := q.Get("req_id"); id != "" {
			out = append(out, id)
		}
	}
	return out
}

// testConfig is a relay on a free loopback port with its store in a
// temporary directory, forwarding to dests.
func testConfig(t *testing.T, dests ...relay.Destination) Config {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.ShutdownTimeout = 10 * time.Second
	cfg.Destinations = dests
	return cfg
}

// start runs d until the test ends and returns the base URL of its
// default receiver; the cleanup checks that Run returned without error.
func start(t *testing.T, d *Daemon) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(deliverDeadline):
			t.Errorf("Run did not return after its context ended")
		}
	})
	var addr string
	waitFor(t, deliverDeadline, "the default receiver to serve", func() (bool, string) {
		select {
		case err := <-done:
			t.Fatalf("Run returned before serving: %v", err)
		default:
		}
		addr = d.Addrs()[defaultReceiver]
		return addr != "" && d.Ready(), fmt.Sprint(d.Addrs())
	})
	return "http://" + addr
}

// postIngest posts a folded profile carrying id and fails the test unless
// it is acknowledged.
func postIngest(t *testing.T, base, id string) {
	t.Helper()
	q := url.Values{}
	q.Set("name", "app.cpu{env=test}")
	q.Set("from", fmt.Sprint(time.Now().Add(-10*time.Second).Unix()))
	q.Set("until", fmt.Sprint(time.Now().Unix()))
	q.Set("req_id", id)
	resp, err := http.Post(base+"/ingest?"+q.Encode(), "", bytes.NewReader([]byte("main;work;id_"+id+" 10\n")))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST /ingest %s: status %d: %s", id, resp.StatusCode, b)
	}
}

// TestRunForwards: a Daemon made with New and Run serves /ingest, stores
// what it acknowledges and forwards it to its destination.
func TestRunForwards(t *testing.T) {
	dst := newDestination(t)
	d, err := New(testConfig(t, relay.Destination{Name: "prod", URL: dst.srv.URL}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	base := start(t, d)
	postIngest(t, base, "one")
	waitFor(t, deliverDeadline, "the profile at the destination", func() (bool, string) {
		ids := dst.ids()
		return len(ids) == 1 && ids[0] == "one", fmt.Sprint(ids)
	})
}

// TestReloadAddsDestination: Reload with one more destination starts its
// forwarder and the default receiver routes to it, on the same address.
func TestReloadAddsDestination(t *testing.T) {
	a, b := newDestination(t), newDestination(t)
	cfg := testConfig(t, relay.Destination{Name: "a", URL: a.srv.URL})
	d, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(context.Background(), cfg); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Reload before Run = %v, want ErrNotRunning", err)
	}
	base := start(t, d)
	postIngest(t, base, "before")

	next := cfg
	next.Destinations = []relay.Destination{{Name: "a", URL: a.srv.URL}, {Name: "b", URL: b.srv.URL}}
	if err := d.Reload(context.Background(), next); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := "http://" + d.Addrs()[defaultReceiver]; got != base {
		t.Errorf("the receiver moved from %s to %s: only its routes changed", base, got)
	}
	postIngest(t, base, "after")
	waitFor(t, deliverDeadline, "both profiles at a, the second at b", func() (bool, string) {
		return len(a.ids()) == 2 && len(b.ids()) == 1 && b.ids()[0] == "after", fmt.Sprintf("a %v, b %v", a.ids(), b.ids())
	})
}

// TestReloadRefusesBadConfig: a configuration that does not check out is
// refused and the one in force keeps serving.
func TestReloadRefusesBadConfig(t *testing.T) {
	dst := newDestination(t)
	cfg := testConfig(t, relay.Destination{Name: "prod", URL: dst.srv.URL})
	d, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	base := start(t, d)
	bad := cfg
	bad.Destinations = []relay.Destination{{Name: "prod", URL: dst.srv.URL + "/ingest"}}
	err = d.Reload(context.Background(), bad)
	if err == nil || !strings.Contains(err.Error(), "base URL") {
		t.Fatalf("Reload of a destination URL ending in /ingest = %v, want a base URL error", err)
	}
	postIngest(t, base, "still")
	waitFor(t, deliverDeadline, "the profile at the destination", func() (bool, string) {
		return len(dst.ids()) == 1, fmt.Sprint(dst.ids())
	})
}

// TestNewRefusesBadConfig: New checks the configuration and names the
// field that is wrong; nothing is opened.
func TestNewRefusesBadConfig(t *testing.T) {
	cfg := testConfig(t)
	cfg.WhenFull = "sometimes"
	if _, err := New(cfg, Options{}); err == nil || !strings.Contains(err.Error(), "when_full") {
		t.Fatalf("New = %v, want an error naming when_full", err)
	}
}

// TestSelfProfileReachesDestination runs the relay with SelfProfile: its
// own profiles travel through its queue to the destination as /ingest
// requests named service_name=pyrorelay.
func TestSelfProfileReachesDestination(t *testing.T) {
	dst := newDestination(t)
	cfg := testConfig(t, relay.Destination{Name: "d", URL: dst.srv.URL})
	cfg.SelfProfile = true
	cfg.SelfProfileInterval = 200 * time.Millisecond
	d, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	start(t, d)
	waitFor(t, deliverDeadline, "cpu, heap and goroutine self-profiles at the destination", func() (bool, string) {
		kinds := map[string]int{}
		for _, r := range dst.requests() {
			q, err := url.ParseQuery(r.query)
			if err != nil || !strings.Contains(q.Get("name"), "service_name=pyrorelay") {
				continue
			}
			kinds[selfProfileKind(t, &store.Entry{Query: r.query, ContentType: r.header.Get("Content-Type"), Body: r.body})]++
		}
		return kinds["cpu"] > 0 && kinds["heap"] > 0 && kinds["goroutine"] > 0, fmt.Sprint(kinds)
	})
	for _, r := range dst.requests() {
		if !strings.HasPrefix(r.header.Get("User-Agent"), "pyrorelay/") {
			t.Errorf("self-profile forwarded with User-Agent %q, want the relay's", r.header.Get("User-Agent"))
			break
		}
	}
}

// TestRunRefusesBusyAddress: a receiver that cannot bind fails Run with
// an error naming it, and Run closes the store on the way out, so another
// relay can open the same data dir.
func TestRunRefusesBusyAddress(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := testConfig(t)
	cfg.Listen = busy.Addr().String()
	d, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = d.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), `receiver "default": listen`) {
		t.Fatalf("Run on a busy address = %v, want a listen error naming the receiver", err)
	}
	if d.Ready() || len(d.Addrs()) != 0 {
		t.Errorf("after a failed Run: ready %v, addrs %v", d.Ready(), d.Addrs())
	}
	again := cfg
	again.Listen = "127.0.0.1:0"
	d2, err := New(again, Options{})
	if err != nil {
		t.Fatal(err)
	}
	start(t, d2)
}
