package httpserver

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"google.golang.org/protobuf/proto"

	"github.com/pyrorelay/pyrorelay/store"
)

// decodedLimit is the most bytes a Push body may decompress to: gzip
// shrinks a request of uncompressed profiles a few times over, and a body
// that inflates further is a bomb, not a profile. Within a budget, it is
// also at most a fifth of what one request may hold, so that the growing
// buffer, Connect's copy and the decoded message fit beside the body.
func decodedLimit(maxBody int64) int64 { return 4 * maxBody }

// decodedLimitIn is decodedLimit within budget b.
func decodedLimitIn(maxBody int64, b *Budget) int64 {
	return min(decodedLimit(maxBody), b.perRequest()/5)
}

// rawPush is a Push request's protobuf message as it arrived, compressed
// or not, kept so that it can be stored as it came instead of encoded
// again (see pushService.Push).
type rawPush struct {
	msg []byte
	// encoding is "gzip" when msg is gzipped, "" when it is the plain
	// protobuf encoding.
	encoding string
}

type rawPushKey struct{}

func rawPushFrom(ctx context.Context) (rawPush, bool) {
	rp, ok := ctx.Value(rawPushKey{}).(rawPush)
	return rp, ok
}

// decodePush reads a Push body within the limits and the memory budget and
// decompresses it, stopping at the decoded-size limit, before Connect sees
// it: Connect would inflate a gzip bomb to its own limit and count the
// rest, and refuse it as resource_exhausted, which clients retry. The
// message as it arrived travels in the request's context to the handler.
func (s *Server) decodePush(next http.Handler) http.Handler {
	limit := decodedLimitIn(s.cfg.MaxBodySize, s.budget)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := s.budget.newHold()
		defer h.release()
		raw, err := s.bodies.read(w, r, h, nil)
		if err != nil {
			s.refuse(w, r, asInputError(err))
			return
		}
		body, rp, err := decodeRPC(r, raw, func(gz []byte, prefix int) ([]byte, error) {
			return gunzipLimited(r.Context(), h, gz, prefix, limit)
		})
		if err != nil {
			s.refuse(w, r, asInputError(err))
			return
		}
		// Connect reads the body into a buffer of its own and decodes it
		// into a message that copies its bytes again: room for both.
		if err := h.grow(r.Context(), 2*int64(len(body))); err != nil {
			s.refuse(w, r, asInputError(budgetError(err)))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		ctx := r.Context()
		if rp.msg != nil {
			ctx = context.WithValue(ctx, rawPushKey{}, rp)
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// decodeRPC returns the body Connect is to read for the Push body raw, with
// its message decompressed by gunzip (into a buffer with prefix bytes free
// at its start), and the protobuf message as it arrived (nil msg when it
// is not one: JSON, or framing Connect will refuse). The request's headers
// are changed to say the body is not compressed.
func decodeRPC(r *http.Request, raw []byte, gunzip func(gz []byte, prefix int) ([]byte, error)) ([]byte, rawPush, error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	mt = strings.ToLower(mt)
	switch mt {
	case "application/proto", "application/json":
		// Connect unary: the body is the message, compressed as
		// Content-Encoding says.
		isProto := mt == "application/proto"
		switch strings.ToLower(r.Header.Get("Content-Encoding")) {
		case "", "identity":
			if isProto {
				return raw, rawPush{msg: raw}, nil
			}
			return raw, rawPush{}, nil
		case "gzip":
			plain, err := gunzip(raw, 0)
			if err != nil {
				return nil, rawPush{}, err
			}
			r.Header.Del("Content-Encoding")
			if isProto {
				return plain, rawPush{msg: raw, encoding: "gzip"}, nil
			}
			return plain, rawPush{}, nil
		}
	case "application/grpc", "application/grpc+proto", "application/grpc-web", "application/grpc-web+proto":
		// One length-prefixed message: a flags byte (bit 0: compressed
		// with grpc-encoding) and a big-endian length.
		if len(raw) < 5 || int(binary.BigEndian.Uint32(raw[1:5])) != len(raw)-5 {
			break
		}
		msg := raw[5:]
		if raw[0]&1 == 0 {
			return raw, rawPush{msg: msg}, nil
		}
		if !strings.EqualFold(r.Header.Get("Grpc-Encoding"), "gzip") {
			break
		}
		plain, err := gunzip(msg, 5)
		if err != nil {
			return nil, rawPush{}, err
		}
		plain[0] = raw[0] &^ 1
		binary.BigEndian.PutUint32(plain[1:5], uint32(len(plain)-5))
		return plain, rawPush{msg: msg, encoding: "gzip"}, nil
	}
	// Anything else goes to Connect as it came, for Connect to refuse.
	return raw, rawPush{}, nil
}

// gunzipLimited decompresses gz into a buffer with prefix bytes free at its
// start, growing it as the output comes, with room taken from h (if not
// nil), and stops as soon as the output passes limit (413).
func gunzipLimited(ctx context.Context, h *hold, gz []byte, prefix int, limit int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, badRequest("body is not valid gzip: %v", err)
	}
	b := make([]byte, prefix)
	reserved := 0 // the prefix-only buffer above is not counted
	for {
		if len(b) == cap(b) {
			size := min(max(2*cap(b), 4*len(gz), chunkSize), int(limit)+prefix+1)
			if size <= cap(b) {
				return nil, tooInflated(limit)
			}
			if h != nil {
				if err := h.grow(ctx, int64(size)); err != nil {
					return nil, budgetError(err)
				}
			}
			nb := make([]byte, len(b), size)
			copy(nb, b)
			if h != nil {
				h.shrink(int64(reserved))
			}
			b, reserved = nb, size
		}
		n, err := zr.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if int64(len(b)-prefix) > limit {
			return nil, tooInflated(limit)
		}
		if errors.Is(err, io.EOF) {
			return b, nil
		}
		if err != nil {
			return nil, badRequest("body is not valid gzip: %v", err)
		}
	}
}

// tooInflated refuses a body that decompresses to more than limit bytes.
func tooInflated(limit int64) *InputError {
	return &InputError{Status: http.StatusRequestEntityTooLarge,
		Reason: fmt.Sprintf("body decompresses to more than %d bytes (4 x --max-body-size, within --max-request-memory)", limit)}
}

// asInputError is err as the refusal to answer with.
func asInputError(err error) *InputError {
	var ie *InputError
	if errors.As(err, &ie) {
		return ie
	}
	return &InputError{Status: http.StatusInternalServerError, Reason: err.Error()}
}

// StoredPushMessage is the protobuf encoding of the Push request stored
// in e: its body, decompressed (to at most limit bytes) when the request
// was stored gzipped as it arrived.
func StoredPushMessage(e *store.Entry, limit int64) ([]byte, error) {
	switch strings.ToLower(e.ContentEncoding) {
	case "", "identity":
		return e.Body, nil
	case "gzip":
		return gunzipLimited(context.Background(), nil, e.Body, 0, limit)
	default:
		return nil, fmt.Errorf("push body has content encoding %q: want gzip or none", e.ContentEncoding)
	}
}

// ValidateStoredPush checks a Push entry as the Push endpoint checks a
// request: a body that decodes (within limit bytes) to a valid PushRequest.
func ValidateStoredPush(e *store.Entry, limit int64) error {
	if len(e.Body) == 0 {
		return errors.New("empty body")
	}
	b, err := StoredPushMessage(e, limit)
	if err != nil {
		return err
	}
	var req pushv1.PushRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		return fmt.Errorf("body is not a PushRequest: %w", err)
	}
	return ValidatePush(&req)
}
