package httpserver

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/grafana/pyroscope/api/gen/proto/go/push/v1/pushv1connect"
	typesv1 "github.com/grafana/pyroscope/api/gen/proto/go/types/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/pyrorelay/pyrorelay/store"
)

// pushClient returns a Push client for base; h2c makes its transport speak
// HTTP/2 without TLS, which gRPC needs.
func pushClient(t *testing.T, base string, h2c bool, opts ...connect.ClientOption) pushv1connect.PusherServiceClient {
	t.Helper()
	tr := &http.Transport{}
	if h2c {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: pollDeadline}
	return pushv1connect.NewPusherServiceClient(hc, base, opts...)
}

func labels(kv ...string) []*typesv1.LabelPair {
	var ls []*typesv1.LabelPair
	for i := 0; i+1 < len(kv); i += 2 {
		ls = append(ls, &typesv1.LabelPair{Name: kv[i], Value: kv[i+1]})
	}
	return ls
}

// cpuSeries is a series the way pyroscope-rs and Alloy send it.
func cpuSeries(profile []byte) *pushv1.RawProfileSeries {
	return &pushv1.RawProfileSeries{
		Labels: labels("__name__", "process_cpu", "service_name", "app", "env", "prod"),
		Samples: []*pushv1.RawSample{
			{RawProfile: profile, ID: "0d7c1c4e-4b7e-4b1e-9d3e-6f0a1b2c3d4e"},
		},
	}
}

// storedPushBody is the protobuf encoding of a stored Push entry, which
// keeps the request compressed as it arrived.
func storedPushBody(t testing.TB, e store.Entry) []byte {
	t.Helper()
	switch e.ContentEncoding {
	case "":
		return e.Body
	case "gzip":
		return gunzip(t, e.Body)
	default:
		t.Fatalf("push entry has content encoding %q", e.ContentEncoding)
		return nil
	}
}

func gunzip(t testing.TB, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return out
}

// protocols are the wire protocols a Push client may use.
var protocols = []struct {
	name string
	h2c  bool
	opts []connect.ClientOption
}{
	{"connect proto", false, nil},
	{"connect json", false, []connect.ClientOption{connect.WithProtoJSON()}},
	{"connect proto gzip", false, []connect.ClientOption{connect.WithSendGzip()}},
	{"connect json gzip", false, []connect.ClientOption{connect.WithProtoJSON(), connect.WithSendGzip()}},
	{"grpc h2c", true, []connect.ClientOption{connect.WithGRPC()}},
	{"grpc h2c gzip", true, []connect.ClientOption{connect.WithGRPC(), connect.WithSendGzip()}},
	{"grpc-web", false, []connect.ClientOption{connect.WithGRPCWeb()}},
	{"grpc-web gzip", false, []connect.ClientOption{connect.WithGRPCWeb(), connect.WithSendGzip()}},
	{"connect proto over h2c", true, nil},
}

// checkPushEntry asserts the fake store holds exactly one push entry whose
// body decodes to want.
func checkPushEntry(t *testing.T, fs *fakeStore, want *pushv1.PushRequest, before, after time.Time) store.Entry {
	t.Helper()
	calls := fs.entries()
	if len(calls) != 1 {
		t.Fatalf("stored %d entries, want 1", len(calls))
	}
	e := calls[0].Entry
	if e.Kind != store.KindPush {
		t.Errorf("Kind = %v, want push", e.Kind)
	}
	if e.Query != "" || e.ContentType != "" {
		t.Errorf("push entry has ingest fields: query %q, content type %q", e.Query, e.ContentType)
	}
	if e.ReceivedAt.Before(before) || e.ReceivedAt.After(after) {
		t.Errorf("ReceivedAt = %v, want between %v and %v", e.ReceivedAt, before, after)
	}
	var got pushv1.PushRequest
	if err := proto.Unmarshal(storedPushBody(t, e), &got); err != nil {
		t.Fatalf("stored body is not a PushRequest: %v", err)
	}
	if !proto.Equal(&got, want) {
		t.Errorf("stored PushRequest differs from the one sent:\n got %v\nwant %v", summarize(&got), summarize(want))
	}
	return e
}

// summarize prints a PushRequest without its profile bytes.
func summarize(r *pushv1.PushRequest) string {
	var sb strings.Builder
	for _, s := range r.GetSeries() {
		fmt.Fprintf(&sb, "{labels %v samples", s.GetLabels())
		for _, smp := range s.GetSamples() {
			fmt.Fprintf(&sb, " [%d bytes id %q]", len(smp.GetRawProfile()), smp.GetID())
		}
		sb.WriteString("} ")
	}
	return sb.String()
}

func TestPushProtocols(t *testing.T) {
	gz := readFile(t, "cpu.pb.gz")
	payloads := []struct {
		name string
		data []byte
	}{
		{"gzipped pprof", gz},
		{"plain pprof", gunzip(t, gz)},
	}
	for _, p := range protocols {
		for _, pl := range payloads {
			t.Run(p.name+"/"+pl.name, func(t *testing.T) {
				ts := newServer(t, Config{Queues: []string{"q"}})
				c := pushClient(t, serve(t, ts.Server), p.h2c, p.opts...)
				msg := &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{cpuSeries(pl.data)}}
				before := time.Now()
				if _, err := c.Push(context.Background(), connect.NewRequest(msg)); err != nil {
					t.Fatalf("Push: %v", err)
				}
				checkPushEntry(t, ts.store, msg, before, time.Now())
			})
		}
	}
}

// TestPushAnswerNotGzipped: the answer to a Push is an empty message, so
// it goes out plain even to a client that accepts gzip (compressing it
// cost a fresh gzip state per request and added bytes).
func TestPushAnswerNotGzipped(t *testing.T) {
	ts := newServer(t, Config{Queues: []string{"q"}})
	body, err := proto.Marshal(&pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{cpuSeries(readFile(t, "cpu.pb.gz"))}})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, serve(t, ts.Server)+pushv1connect.PusherServicePushProcedure, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/proto")
	req.Header.Set("Connect-Protocol-Version", "1")
	// Set by hand, so the transport leaves the answer as it came.
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if got := resp.Header.Get("Content-Encoding"); got != "" {
		t.Errorf("answer Content-Encoding %q, want none", got)
	}
}

// TestPushMultiSeries checks that one Push with several series and samples
// is stored as one entry, unchanged.
func TestPushMultiSeries(t *testing.T) {
	cpu, heap := readFile(t, "cpu.pb.gz"), readFile(t, "heap.pb.gz")
	msg := &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{
		cpuSeries(cpu),
		{
			Labels: labels("__name__", "memory", "service_name", "app", "__delta__", "false"),
			Samples: []*pushv1.RawSample{
				{RawProfile: heap, ID: "a"},
				{RawProfile: gunzip(t, heap), ID: "b"},
			},
		},
		{Labels: labels("service_name", "other"), Samples: []*pushv1.RawSample{{RawProfile: cpu}}},
	}}
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			ts := newServer(t, Config{})
			c := pushClient(t, serve(t, ts.Server), p.h2c, p.opts...)
			before := time.Now()
			if _, err := c.Push(context.Background(), connect.NewRequest(msg)); err != nil {
				t.Fatalf("Push: %v", err)
			}
			checkPushEntry(t, ts.store, msg, before, time.Now())
		})
	}
}

// rawProtoCodec sends pre-encoded request bytes, so a test can put on the
// wire what the protobuf library refuses to marshal (invalid UTF-8).
type rawProtoCodec struct{ raw []byte }

func (rawProtoCodec) Name() string { return "proto" }

func (c rawProtoCodec) Marshal(any) ([]byte, error) { return c.raw, nil }

func (rawProtoCodec) Unmarshal(b []byte, m any) error {
	msg, ok := m.(proto.Message)
	if !ok {
		return fmt.Errorf("unmarshal into %T: not a proto message", m)
	}
	return proto.Unmarshal(b, msg)
}

// encodeInvalidUTF8Push encodes, by hand, a push whose one label value is
// not UTF-8.
func encodeInvalidUTF8Push(profile []byte) []byte {
	var label, sample, series, req []byte
	label = protowire.AppendTag(label, 1, protowire.BytesType)
	label = protowire.AppendString(label, "service_name")
	label = protowire.AppendTag(label, 2, protowire.BytesType)
	label = protowire.AppendBytes(label, []byte{'a', 0xff, 0xfe})
	sample = protowire.AppendTag(sample, 1, protowire.BytesType)
	sample = protowire.AppendBytes(sample, profile)
	series = protowire.AppendTag(series, 1, protowire.BytesType)
	series = protowire.AppendBytes(series, label)
	series = protowire.AppendTag(series, 2, protowire.BytesType)
	series = protowire.AppendBytes(series, sample)
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	req = protowire.AppendBytes(req, series)
	return req
}

func TestPushInvalid(t *testing.T) {
	cpu := readFile(t, "cpu.pb.gz")
	sample := []*pushv1.RawSample{{RawProfile: cpu}}
	tests := []struct {
		name string
		msg  *pushv1.PushRequest
		raw  []byte // sent instead of msg when set
	}{
		{name: "no series", msg: &pushv1.PushRequest{}},
		{name: "series with no labels", msg: &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{Samples: sample}}}},
		{name: "second series with no labels", msg: &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{
			cpuSeries(cpu), {Samples: sample}}}},
		{name: "empty label name", msg: &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{
			{Labels: labels("service_name", "app", "", "x"), Samples: sample}}}},
		{name: "label name with dash", msg: &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{
			{Labels: labels("service-name", "app"), Samples: sample}}}},
		{name: "label name with space", msg: &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{
			{Labels: labels("service name", "app"), Samples: sample}}}},
		{name: "sample with empty raw_profile", msg: &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{
			{Labels: labels("service_name", "app"), Samples: []*pushv1.RawSample{{RawProfile: cpu}, {ID: "empty"}}}}}},
		{name: "invalid UTF-8 value", raw: encodeInvalidUTF8Push(cpu)},
		{name: "not protobuf", raw: []byte{0xff, 0xff, 0xff, 0xff}},
	}
	for _, p := range []struct {
		name string
		h2c  bool
		opts []connect.ClientOption
	}{
		{"connect", false, nil},
		{"grpc", true, []connect.ClientOption{connect.WithGRPC()}},
	} {
		for _, tc := range tests {
			t.Run(p.name+"/"+tc.name, func(t *testing.T) {
				ts := newServer(t, Config{})
				opts := p.opts
				msg := tc.msg
				if tc.raw != nil {
					opts = append(append([]connect.ClientOption(nil), opts...), connect.WithCodec(rawProtoCodec{tc.raw}))
					msg = &pushv1.PushRequest{}
				}
				c := pushClient(t, serve(t, ts.Server), p.h2c, opts...)
				_, err := c.Push(context.Background(), connect.NewRequest(msg))
				if code := connect.CodeOf(err); code != connect.CodeInvalidArgument {
					t.Fatalf("Push error = %v (code %v), want invalid_argument", err, code)
				}
				var ce *connect.Error
				if !errors.As(err, &ce) || ce.Message() == "" {
					t.Errorf("error %v carries no message", err)
				}
				if attempts, _ := ts.store.counts(); attempts != 0 {
					t.Errorf("store saw %d Put calls, want none", attempts)
				}
			})
		}
	}
}

// TestPushOverLimit checks that a push bigger than MaxBodySize, or one that
// decompresses to more than four times it, is refused as invalid (a 400, not
// a 429 clients would retry) even when it is compressed small on the wire.
func TestPushOverLimit(t *testing.T) {
	// 2 MiB of zeros gzip to about 2 KiB: far under the limit on the
	// wire, eight times over it decompressed.
	const limit = 256 << 10
	msg := &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{cpuSeries(make([]byte, 2<<20))}}
	for _, p := range []struct {
		name string
		h2c  bool
		opts []connect.ClientOption
	}{
		{"connect gzip", false, []connect.ClientOption{connect.WithSendGzip()}},
		{"connect plain", false, nil},
		{"grpc gzip", true, []connect.ClientOption{connect.WithGRPC(), connect.WithSendGzip()}},
		{"grpc-web gzip", false, []connect.ClientOption{connect.WithGRPCWeb(), connect.WithSendGzip()}},
	} {
		t.Run(p.name, func(t *testing.T) {
			ts := newServer(t, Config{MaxBodySize: limit})
			c := pushClient(t, serve(t, ts.Server), p.h2c, p.opts...)
			_, err := c.Push(context.Background(), connect.NewRequest(msg))
			if code := connect.CodeOf(err); code != connect.CodeInvalidArgument {
				t.Fatalf("Push error = %v (code %v), want invalid_argument", err, code)
			}
			if attempts, _ := ts.store.counts(); attempts != 0 {
				t.Errorf("store saw %d Put calls, want none", attempts)
			}
		})
	}
}

func TestPushStoreFailure(t *testing.T) {
	cpu := readFile(t, "cpu.pb.gz")
	tests := []struct {
		name string
		err  error
		want connect.Code
	}{
		{"disk full", syscall.ENOSPC, connect.CodeUnavailable},
		{"store closed", store.ErrClosed, connect.CodeUnavailable},
		{"commit timed out", fmt.Errorf("commit: %w", context.DeadlineExceeded), connect.CodeDeadlineExceeded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newServer(t, Config{})
			ts.store.setErr(tc.err)
			c := pushClient(t, serve(t, ts.Server), false)
			msg := &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{cpuSeries(cpu)}}
			_, err := c.Push(context.Background(), connect.NewRequest(msg))
			if code := connect.CodeOf(err); code != tc.want {
				t.Fatalf("Push error = %v (code %v), want %v", err, code, tc.want)
			}
			if attempts, stored := ts.store.counts(); attempts != 1 || stored != 0 {
				t.Errorf("store: %d attempts, %d stored; want 1 attempt, none stored", attempts, stored)
			}
		})
	}
}

func TestPushTenantPassthrough(t *testing.T) {
	cpu := readFile(t, "cpu.pb.gz")
	for _, tc := range tenantCases {
		t.Run(tc.name, func(t *testing.T) {
			ts := newServer(t, Config{TenantPassthrough: tc.passthrough})
			c := pushClient(t, serve(t, ts.Server), false)
			msg := &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{cpuSeries(cpu)}}
			req := connect.NewRequest(msg)
			if tc.tenant != "" {
				req.Header().Set(tenantHeader, tc.tenant)
			}
			before := time.Now()
			if _, err := c.Push(context.Background(), req); err != nil {
				t.Fatalf("Push: %v", err)
			}
			e := checkPushEntry(t, ts.store, msg, before, time.Now())
			if e.Tenant != tc.want {
				t.Errorf("Tenant = %q, want %q", e.Tenant, tc.want)
			}
		})
	}
}

func TestValidatePush(t *testing.T) {
	p := []byte{1}
	smp := []*pushv1.RawSample{{RawProfile: p}}
	tests := []struct {
		name string
		req  *pushv1.PushRequest
		ok   bool
	}{
		{"one series", &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{Labels: labels("service_name", "a"), Samples: smp}}}, true},
		{"reserved names allowed", &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{Labels: labels("__name__", "process_cpu", "__delta__", "false"), Samples: smp}}}, true},
		{"dots in label name", &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{Labels: labels("k8s.pod.name", "x"), Samples: smp}}}, true},
		{"empty value", &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{Labels: labels("service_name", ""), Samples: smp}}}, true},
		{"series without samples", &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{Labels: labels("service_name", "a")}}}, true},
		{"nil request", nil, false},
		{"no series", &pushv1.PushRequest{}, false},
		{"nil series", &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{nil}}, false},
		{"no labels", &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{Samples: smp}}}, false},
		{"nil label", &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{Labels: []*typesv1.LabelPair{nil}, Samples: smp}}}, false},
		{"empty label name", &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{Labels: labels("", "a"), Samples: smp}}}, false},
		{"dash in label name", &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{Labels: labels("a-b", "a"), Samples: smp}}}, false},
		{"space in label name", &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{Labels: labels("a b", "a"), Samples: smp}}}, false},
		{"non-ASCII label name", &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{Labels: labels("ä", "a"), Samples: smp}}}, false},
		{"invalid UTF-8 value", &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{Labels: labels("a", "\xff"), Samples: smp}}}, false},
		{"empty raw_profile", &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{Labels: labels("a", "b"), Samples: []*pushv1.RawSample{{}}}}}, false},
		{"nil sample", &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{Labels: labels("a", "b"), Samples: []*pushv1.RawSample{nil}}}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidatePush(tc.req)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidatePush = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
