package relay

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/grafana/pyroscope/api/gen/proto/go/push/v1/pushv1connect"
	"google.golang.org/protobuf/proto"
)

// TestPushCodecCopies: what the codec hands Connect never shares memory with
// the stored request. Connect pools the buffer Marshal returns and writes
// later requests into it; a slice of the stored bytes there corrupted the
// entry for every other reader (caught by the Push forwarding tests).
func TestPushCodecCopies(t *testing.T) {
	stored := []byte("stored push bytes")
	keep := bytes.Clone(stored)
	var c pushCodec
	out, err := c.Marshal(&storedPush{b: stored})
	if err != nil {
		t.Fatal(err)
	}
	appended, err := c.MarshalAppend(make([]byte, 0, 64), &storedPush{b: stored})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{out, appended} {
		if !bytes.Equal(b, keep) {
			t.Fatalf("codec wrote %q, want %q", b, keep)
		}
		for i := range b {
			b[i] = 'x'
		}
	}
	if !bytes.Equal(stored, keep) {
		t.Fatalf("writing into the codec's output changed the stored bytes to %q", stored)
	}
}

func TestProfilesCompressed(t *testing.T) {
	gz := readTestdata(t, "cpu.pb.gz")
	encode := func(profiles ...[]byte) []byte {
		msg := &pushv1.PushRequest{}
		for _, p := range profiles {
			msg.Series = append(msg.Series, &pushv1.RawProfileSeries{
				Labels:  samplePush(t).Series[0].Labels,
				Samples: []*pushv1.RawSample{{RawProfile: p, ID: "id"}},
			})
		}
		b, err := proto.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name    string
		body    []byte
		want    bool
		wantErr error
	}{
		{"every profile gzipped", encode(gz, gz), true, nil},
		{"one profile not gzipped", encode(gz, []byte("raw pprof")), false, nil},
		{"no profile", encode(), false, nil},
		{"broken framing", encode(gz)[:40], false, errBadPush},
		{"not protobuf", []byte{0xff, 0xff, 0xff}, false, errBadPush},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := profilesCompressed(tt.body)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("profilesCompressed = %v, %v; want %v, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// TestForwardPushCompression: a Push whose profiles are gzipped already
// goes out as it is stored; one with a raw profile is gzipped on the wire.
// Either way the destination decodes the request that was stored.
func TestForwardPushCompression(t *testing.T) {
	for _, tt := range []struct {
		name     string
		profile  []byte
		stored   string // the entry's ContentEncoding: gzip stores the request compressed
		wantGzip bool
	}{
		{"gzipped profiles", readTestdata(t, "cpu.pb.gz"), "", false},
		{"raw profile", bytes.Repeat([]byte("uncompressed pprof "), 500), "", true},
		{"stored gzipped", bytes.Repeat([]byte("uncompressed pprof "), 500), "gzip", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t)
			var (
				mu        sync.Mutex
				encodings []string
				accepts   []string
				wire      [][]byte
				got       []*pushv1.PushRequest
			)
			mux := http.NewServeMux()
			path, h := pushv1connect.NewPusherServiceHandler(pushFunc(func(_ context.Context, req *connect.Request[pushv1.PushRequest]) (*connect.Response[pushv1.PushResponse], error) {
				mu.Lock()
				got = append(got, proto.Clone(req.Msg).(*pushv1.PushRequest))
				mu.Unlock()
				return connect.NewResponse(&pushv1.PushResponse{}), nil
			}))
			mux.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				encodings = append(encodings, r.Header.Get("Content-Encoding"))
				accepts = append(accepts, r.Header.Get("Accept-Encoding"))
				b, _ := io.ReadAll(r.Body)
				wire = append(wire, b)
				mu.Unlock()
				r.Body = io.NopCloser(bytes.NewReader(b))
				h.ServeHTTP(w, r)
			}))
			srv := newServer(t, mux)
			want := samplePush(t)
			want.Series[0].Samples[0].RawProfile = tt.profile
			want.Series = want.Series[:1]
			e := pushEntry(t, want, "")
			if tt.stored == "gzip" {
				var buf bytes.Buffer
				zw := gzip.NewWriter(&buf)
				_, _ = zw.Write(e.Body)
				_ = zw.Close()
				e.Body, e.ContentEncoding = buf.Bytes(), "gzip"
			}
			stored := bytes.Clone(e.Body)
			put(t, st, []string{"dest"}, e)
			runForwarder(t, testDest("dest", srv.URL), st, nil)

			eventually(t, "push delivered", queueEmpty(t, st, "dest"))
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 1 || !proto.Equal(got[0], want) {
				t.Fatalf("destination got %d requests, or not the stored one", len(got))
			}
			if gzipped := encodings[0] == "gzip"; gzipped != tt.wantGzip {
				t.Errorf("Content-Encoding %q, want gzip: %v", encodings[0], tt.wantGzip)
			}
			// A request stored compressed goes out as it was stored,
			// not compressed twice.
			if tt.stored == "gzip" && !bytes.Equal(wire[0], stored) {
				t.Errorf("sent %d bytes, not the %d stored", len(wire[0]), len(stored))
			}
			// An answer is an empty message: a request sent plain does
			// not ask for it gzipped.
			if !tt.wantGzip && strings.Contains(accepts[0], "gzip") {
				t.Errorf("Accept-Encoding %q on a plain request, want no gzip", accepts[0])
			}
		})
	}
}
