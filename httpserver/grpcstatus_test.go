package httpserver

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/grafana/pyroscope/api/gen/proto/go/push/v1/pushv1connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyrorelay/pyrorelay/store"
)

// TestGRPCFailuresCountedAsFailures: a refused gRPC push answers HTTP 200
// with grpc-status 3; the request counter must say 400, not 200.
func TestGRPCFailuresCountedAsFailures(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv := New(Config{}, Options{Store: &countingStore{}, Registry: reg, Gatherer: reg})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Shutdown(context.Background())

	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	client := pushv1connect.NewPusherServiceClient(&http.Client{Transport: tr}, "http://"+ln.Addr().String(), connect.WithGRPC())
	_, err = client.Push(context.Background(), connect.NewRequest(&pushv1.PushRequest{}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("empty push over gRPC: %v, want invalid_argument", err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := ""
	for _, mf := range mfs {
		if mf.GetName() != "pyrorelay_requests_received_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			found += strings.Join(labels, ",") + ";"
		}
	}
	if !strings.Contains(found, "code=400,endpoint=push") || strings.Contains(found, "code=200") {
		t.Fatalf("request counter series = %q, want the gRPC failure counted with code 400", found)
	}
}

// countingStore accepts everything.
type countingStore struct{}

func (countingStore) Put(context.Context, *store.Entry, []string) error { return nil }
