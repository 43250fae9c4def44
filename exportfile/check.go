package exportfile

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"

	"github.com/pyrorelay/pyrorelay/httpserver"
	"github.com/pyrorelay/pyrorelay/store"
)

// Checks are what a reader checks of every record before handing it on:
// what the relay checks of a request before it answers 200, and the
// export's own checksum. Error messages name the import and replay flags
// that set them.
type Checks struct {
	// NoVerify accepts records without (or with a wrong) body_sha256
	// (--no-verify).
	NoVerify bool
	// MaxBodySize refuses larger bodies, as serve's --max-body-size does.
	MaxBodySize int64
	// CopyOnly reads a running relay's own export to copy it elsewhere:
	// bodies are checked against their sums, not validated as input.
	CopyOnly bool
}

// Entry rebuilds the stored entry of x with body, checking it as chk says.
func (x *Record) Entry(body []byte, chk Checks) (*store.Entry, error) {
	e := &store.Entry{
		ID: x.ID, ReceivedAt: x.ReceivedAt, Query: x.Query, ContentType: x.ContentType,
		ContentEncoding: x.ContentEncoding, Tenant: x.Tenant, Body: body,
	}
	switch x.Kind {
	case "ingest":
		e.Kind = store.KindIngest
	case "push":
		e.Kind = store.KindPush
	default:
		return nil, fmt.Errorf("kind %q is not ingest or push", x.Kind)
	}
	if x.ReceivedAt.IsZero() {
		return nil, errors.New("no received_at")
	}
	if chk.CopyOnly {
		if x.BodySHA256 != "" {
			if sum := sha256.Sum256(body); hex.EncodeToString(sum[:]) != x.BodySHA256 {
				return nil, fmt.Errorf("body of %d bytes does not match body_sha256: the answer was damaged on the way", len(body))
			}
		}
		return e, nil
	}
	if len(body) == 0 {
		return nil, errors.New("empty body: the relay never stores one")
	}
	if int64(len(body)) > chk.MaxBodySize {
		return nil, fmt.Errorf("body of %d bytes is over --max-body-size %d", len(body), chk.MaxBodySize)
	}
	if !chk.NoVerify {
		if x.BodySHA256 == "" {
			return nil, errors.New("no body_sha256, so the body cannot be checked: add it, or pass --no-verify")
		}
		sum := sha256.Sum256(body)
		if hex.EncodeToString(sum[:]) != x.BodySHA256 {
			return nil, fmt.Errorf("body of %d bytes does not match body_sha256: the export is damaged or was edited (--no-verify takes it anyway)", len(body))
		}
	}
	switch e.Kind {
	case store.KindPush:
		if err := httpserver.ValidateStoredPush(e, 4*chk.MaxBodySize); err != nil {
			return nil, fmt.Errorf("push body refused as the Push endpoint would refuse it: %w", err)
		}
	case store.KindIngest:
		q, err := url.ParseQuery(e.Query)
		if err != nil {
			return nil, fmt.Errorf("query %q: %w", e.Query, err)
		}
		if err := httpserver.ValidateIngest(q, e.ContentType); err != nil {
			return nil, fmt.Errorf("refused as /ingest would refuse it: %w", err)
		}
	}
	return e, nil
}
