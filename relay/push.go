package relay

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"

	"connectrpc.com/connect"
	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/grafana/pyroscope/api/gen/proto/go/push/v1/pushv1connect"
	"google.golang.org/protobuf/proto"

	"github.com/pyrorelay/pyrorelay/pushwire"
)

// storedPush is a Push request as the store keeps it: its protobuf
// encoding, which is also what goes on the wire.
type storedPush struct{ b []byte }

// pushCodec is Connect's "proto" codec, except that a storedPush is sent as
// the bytes it holds. Decoding a stored request only for Connect to encode
// it again cost as much CPU as receiving it; the bytes are already a valid
// PushRequest (checked when it arrived, and by the record's checksum since).
type pushCodec struct{}

func (pushCodec) Name() string { return "proto" }

// Marshal returns a copy: Connect puts what Marshal returns into its
// buffer pool for later requests, and the stored bytes are shared with the
// store's cache and every other destination's forwarder.
func (c pushCodec) Marshal(m any) ([]byte, error) { return c.MarshalAppend(nil, m) }

// MarshalAppend appends the request to dst, a buffer from Connect's pool.
func (pushCodec) MarshalAppend(dst []byte, m any) ([]byte, error) {
	switch m := m.(type) {
	case *storedPush:
		return append(dst, m.b...), nil
	case proto.Message:
		return proto.MarshalOptions{}.MarshalAppend(dst, m)
	default:
		return nil, fmt.Errorf("push codec: cannot marshal %T", m)
	}
}

func (pushCodec) Unmarshal(b []byte, m any) error {
	pm, ok := m.(proto.Message)
	if !ok {
		return fmt.Errorf("push codec: cannot unmarshal into %T", m)
	}
	return proto.Unmarshal(b, pm)
}

// pushClients are a destination's three Push clients: one gzips the
// request, one does not, and one sends a request the store keeps gzipped
// as it arrived, as it is, saying it is gzip.
type pushClients struct {
	gzip, plain, gzipped *connect.Client[storedPush, pushv1.PushResponse]
}

func newPushClients(c *http.Client, baseURL string) pushClients {
	url := baseURL + pushv1connect.PusherServicePushProcedure
	return pushClients{
		gzip: connect.NewClient[storedPush, pushv1.PushResponse](c, url, connect.WithCodec(pushCodec{}), connect.WithSendGzip()),
		// Without gzip registered, the plain client does not ask for a
		// gzipped answer either (see httpClient).
		plain: connect.NewClient[storedPush, pushv1.PushResponse](c, url, connect.WithCodec(pushCodec{}), connect.WithAcceptCompression("gzip", nil, nil)),
		// "gzip" here compresses nothing: the body is gzip already. Answers
		// are decompressed as usual.
		gzipped: connect.NewClient[storedPush, pushv1.PushResponse](c, url, connect.WithCodec(pushCodec{}),
			connect.WithAcceptCompression("gzip",
				func() connect.Decompressor { return new(gzip.Reader) },
				func() connect.Compressor { return &passthrough{} }),
			connect.WithSendCompression("gzip")),
	}
}

// passthrough is a connect.Compressor that writes what it is given
// unchanged, for bodies compressed before they reach Connect.
type passthrough struct{ w io.Writer }

func (p *passthrough) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p *passthrough) Close() error                { return nil }
func (p *passthrough) Reset(w io.Writer)           { p.w = w }

// forBody picks the client for a stored request: gzip only pays when the
// profiles inside are not compressed already, and SDKs send pprof gzipped,
// so gzipping them again cost CPU for nothing.
//
// A body that starts with the gzip magic is a request stored gzipped as it
// arrived (a protobuf message cannot start so: 0x1f is field 3 of wire
// type 7, which does not exist); it is sent as it is.
func (p pushClients) forBody(b []byte) (*connect.Client[storedPush, pushv1.PushResponse], error) {
	if bytes.HasPrefix(b, gzipMagic) {
		return p.gzipped, nil
	}
	compressed, err := profilesCompressed(b)
	if err != nil {
		return nil, err
	}
	if compressed {
		return p.plain, nil
	}
	return p.gzip, nil
}

var gzipMagic = []byte{0x1f, 0x8b}

// errBadPush is returned for a stored Push request whose protobuf framing
// is broken.
var errBadPush = fmt.Errorf("stored %w", pushwire.ErrMalformed)

// profilesCompressed is pushwire.ProfilesCompressed with the error of a
// stored request.
func profilesCompressed(b []byte) (bool, error) {
	c, err := pushwire.ProfilesCompressed(b)
	if err != nil {
		return false, errBadPush
	}
	return c, nil
}
