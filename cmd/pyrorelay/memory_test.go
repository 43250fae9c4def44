package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/grafana/pyroscope/api/gen/proto/go/push/v1/pushv1connect"
	typesv1 "github.com/grafana/pyroscope/api/gen/proto/go/types/v1"
	"google.golang.org/protobuf/proto"
)

// peakRSS is the process's peak resident set (VmHWM) in bytes, or 0 where
// /proc does not say.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestStalledBodiesHoldLittleMemory is the attack of the issue against the
// binary: connections that each declare a 64 MiB body and send 3 bytes,
// in rounds. The relay's own account of the request bytes it holds stays
// at one small first buffer per connection, and comes back to zero when
// they close. Peak RSS is logged, not asserted: it depends on the machine.
func TestStalledBodiesHoldLittleMemory(t *testing.T) {
	const conns, rounds = 95, 3
	relay := startRelay(t, t.TempDir(), "--max-body-size", "64MiB", "--max-connections", "200", "--min-body-rate", "0")
	addr := strings.TrimPrefix(relay.URL, "http://")
	bound := float64(conns * 32 << 10)
	for round := range rounds {
		var open []net.Conn
		for range conns {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			open = append(open, c)
			fmt.Fprintf(c, "POST /ingest?name=app.cpu HTTP/1.1\r\nHost: relay\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\nabc", 64<<20)
		}
		held := 0.0
		deadline := time.Now().Add(30 * time.Second)
		for held < bound && time.Now().Before(deadline) {
			held = metric(scrape(t, relay.URL), "pyrorelay_request_memory_bytes")
			time.Sleep(20 * time.Millisecond)
		}
		if held > bound {
			t.Fatalf("round %d: %d connections declaring 64 MiB hold %.0f bytes, want at most %.0f", round, conns, held, bound)
		}
		if held < bound {
			t.Fatalf("round %d: only %.0f bytes held: not every request reached its body", round, held)
		}
		for _, c := range open {
			c.Close()
		}
		t.Logf("round %d: %.0f request bytes held by %d stalled connections; peak RSS so far %d MiB", round, held, conns, peakRSS(relay.cmd.Process.Pid)>>20)
		// The next round's count must not include this round's buffers,
		// which the relay lets go once it sees each close.
		deadline = time.Now().Add(30 * time.Second)
		for metric(scrape(t, relay.URL), "pyrorelay_request_memory_bytes") != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: request memory not given back after the connections closed", round)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestGzipPushBombRefused: a small gzip Push that inflates far past the
// limit is refused as invalid (not resource_exhausted, which SDKs retry)
// after inflating no more than the limit, and nothing is stored.
func TestGzipPushBombRefused(t *testing.T) {
	relay := startRelay(t, t.TempDir(), "--max-body-size", "4MiB")
	// 1 GiB of zeros in one raw profile, gzipped to about 1 MiB.
	var body bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&body, gzip.BestCompression)
	msg, err := proto.Marshal(&pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{
		Labels:  []*typesv1.LabelPair{{Name: "__name__", Value: "process_cpu"}, {Name: "service_name", Value: "bomb"}},
		Samples: []*pushv1.RawSample{{RawProfile: []byte("x")}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = zw.Write(msg)
	zeros := make([]byte, 1<<20)
	for range 1024 {
		_, _ = zw.Write(zeros) // trailing zeros: not a valid message, but never reached
	}
	_ = zw.Close()
	req, _ := http.NewRequest(http.MethodPost, relay.URL+pushv1connect.PusherServicePushProcedure, bytes.NewReader(body.Bytes()))
	req.Header.Set("Content-Type", "application/proto")
	req.Header.Set("Content-Encoding", "gzip")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("gzip bomb of %d bytes: status %d, want 400 (invalid_argument)", body.Len(), resp.StatusCode)
	}
	if n := metric(scrape(t, relay.URL), `pyrorelay_queue_entries{destination="_hold"}`); n != 0 {
		t.Errorf("the bomb was stored: %g entries", n)
	}
	t.Logf("gzip Push of %d bytes inflating to 1 GiB refused in %v; peak RSS %d MiB", body.Len(), took, peakRSS(relay.cmd.Process.Pid)>>20)

	// A well-formed gzipped Push still goes through the same path.
	c := pushv1connect.NewPusherServiceClient(http.DefaultClient, relay.URL, connect.WithSendGzip())
	ok := &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{
		Labels:  []*typesv1.LabelPair{{Name: "__name__", Value: "process_cpu"}, {Name: "service_name", Value: "app"}},
		Samples: []*pushv1.RawSample{{RawProfile: cliProfile}},
	}}}
	if _, err := c.Push(context.Background(), connect.NewRequest(ok)); err != nil {
		t.Fatalf("gzipped Push: %v", err)
	}
}

// TestGzipPushForwardedAsStored: a gzipped Push goes to the destination as
// it arrived, gzip and all, and decodes there to what the client sent; the
// queue holds the compressed bytes, not the inflated request.
func TestGzipPushForwardedAsStored(t *testing.T) {
	dest := newRecorder(t, nil)
	relay := startRelay(t, t.TempDir(), "--forward-to", "a="+dest.URL())
	// Uncompressed profiles: the request gzips well, as the 58 KB
	// Push that used to be stored inflated to 60 MB did.
	msg := &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{
		Labels:  []*typesv1.LabelPair{{Name: "__name__", Value: "process_cpu"}, {Name: "service_name", Value: "gz"}},
		Samples: []*pushv1.RawSample{{RawProfile: bytes.Repeat([]byte("uncompressed pprof "), 50000)}},
	}}}
	c := pushv1connect.NewPusherServiceClient(http.DefaultClient, relay.URL, connect.WithSendGzip())
	if _, err := c.Push(context.Background(), connect.NewRequest(msg)); err != nil {
		t.Fatalf("Push: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(dest.acceptedPushes()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the Push never reached the destination")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := dest.acceptedPushes(); len(got) != 1 || !proto.Equal(got[0], msg) {
		t.Fatalf("destination got %d pushes, or not the one sent", len(got))
	}
	// What the relay stored: the bytes it counts as received for Push.
	stored := 0.0
	for k, v := range scrape(t, relay.URL) {
		if strings.HasPrefix(k, "pyrorelay_received_bytes_total{") && strings.Contains(k, `endpoint="push"`) {
			stored += v
		}
	}
	if raw := float64(proto.Size(msg)); stored == 0 || stored > raw/10 {
		t.Errorf("stored %.0f bytes for a %.0f-byte request that arrived gzipped far smaller", stored, raw)
	}
	for _, r := range dest.requests() {
		if enc := r.Header.Get("Content-Encoding"); enc != "gzip" {
			t.Errorf("Push forwarded with Content-Encoding %q, want gzip", enc)
		}
		if raw := proto.Size(msg); len(r.Body) > raw/10 {
			t.Errorf("forwarded %d bytes for a %d-byte request that gzips far smaller", len(r.Body), raw)
		}
	}
}
