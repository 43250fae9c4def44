// Package exportfile reads and writes pyrorelay's export file format: the
// stored requests that `pyrorelay export` writes, `pyrorelay import` and
// `pyrorelay replay --from` read back, and the admin API's GET
// /api/v1/export streams. It owns the format only; which entries go into
// an export (a queue, a dead-letter list, the archive, filters) is the
// caller's business. (Named for the file, not "export", which would read
// as the operation.)
//
// # Format
//
// An export comes in one of two forms holding the same records.
//
// A directory holds two files per entry, named by its id zero-padded to 20
// digits, so that names sort oldest first:
//
//	00000000000000000042.body   the request body, byte for byte as stored
//	00000000000000000042.json   the sidecar: one Record as indented JSON
//
// The body is written first and the sidecar last: a body without its
// sidecar is an unfinished write, and readers ignore it. Readers take every
// *.json file of the directory, in name order, and read the body from the
// sidecar's body_file (a bare file name in the same directory) or, when it
// is absent, from the file of the same name ending in .body. A directory
// is written only when it is new or empty, so two exports never mix.
//
// ndjson is one Record a line, the body inline under "body" (base64, as
// encoding/json writes []byte) and no body_file. Blank lines are skipped.
// A line is at most the base64 length of the largest body the reader
// accepts plus 64 KiB; a longer one is refused as it is read.
//
// A Record's fields:
//
//	id                entry id in the relay it came from (0: unknown)
//	kind              "ingest" or "push"
//	received_at       RFC 3339 time the relay received it (required)
//	query             an /ingest request's query string
//	content_type      its Content-Type
//	content_encoding  its Content-Encoding ("gzip" for a Push stored gzipped)
//	tenant            X-Scope-OrgID, "" for none
//	from              "queue:NAME", "dead-letter:NAME" or "archive"
//	body_file         directory form: the body's file name
//	body_size         body length in bytes
//	body_sha256       hex SHA-256 of the body; required unless checks are off
//	reason, status, attempts, dead_lettered_at
//	                  for an entry of a dead-letter list: why it is there
//	app               the entry's application, in a listing without bodies
//	request           method, path and headers to re-send the body by hand
//	body              ndjson form: the body
//
// The stored fields come back unchanged on import, so an export/import
// round trip is byte for byte; request, from and app are for people and
// other tools, and readers ignore them.
package exportfile

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/pyrorelay/pyrorelay/store"
)

// Record is one stored request as an export holds it: the JSON sidecar of
// a directory export, or one line of an ndjson export.
type Record struct {
	ID              uint64    `json:"id"`
	Kind            string    `json:"kind"` // "ingest" or "push"
	ReceivedAt      time.Time `json:"received_at"`
	Query           string    `json:"query"`
	ContentType     string    `json:"content_type"`
	ContentEncoding string    `json:"content_encoding"`
	Tenant          string    `json:"tenant"`
	// From is where the entry was stored: "queue:NAME",
	// "dead-letter:NAME" or "archive".
	From       string `json:"from,omitempty"`
	BodyFile   string `json:"body_file,omitempty"`
	BodySize   int    `json:"body_size"`
	BodySHA256 string `json:"body_sha256"`
	// Dead-letter fields, for entries exported from a dead-letter list.
	Reason         string     `json:"reason,omitempty"`
	Status         int        `json:"status,omitempty"`
	Attempts       int        `json:"attempts,omitempty"`
	DeadLetteredAt *time.Time `json:"dead_lettered_at,omitempty"`
	// App names the entry's application where the body is left out
	// (the admin API's listing of dead letters).
	App string `json:"app,omitempty"`
	// Request says how to send the body to a Pyroscope server by hand.
	Request *ResendHint `json:"request,omitempty"`
	// Body is the request body, in an ndjson export only.
	Body []byte `json:"body,omitempty"`
}

// ResendHint is how to send an exported body to a Pyroscope server with
// another tool.
type ResendHint struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers,omitempty"`
}

// BaseName is the file name, without extension, of entry id in a
// directory export.
func BaseName(id uint64) string { return fmt.Sprintf("%020d", id) }

// SourceLabel is the From of an entry read from src.
func SourceLabel(src store.Source) string {
	switch src.Kind {
	case store.SourceQueue:
		return "queue:" + src.Queue
	case store.SourceDeadLetters:
		return "dead-letter:" + src.Queue
	default:
		return "archive"
	}
}

// FromStore is the record of r, read from src, without its body.
func FromStore(r store.Record, src store.Source) *Record {
	e := r.Entry
	sum := sha256.Sum256(e.Body)
	x := &Record{
		ID: e.ID, Kind: e.Kind.String(), ReceivedAt: e.ReceivedAt.UTC(),
		Query: e.Query, ContentType: e.ContentType, ContentEncoding: e.ContentEncoding, Tenant: e.Tenant,
		From: SourceLabel(src), BodySize: len(e.Body), BodySHA256: hex.EncodeToString(sum[:]),
	}
	if d := r.Dead; d != nil {
		at := d.At.UTC()
		x.Reason, x.Status, x.Attempts, x.DeadLetteredAt = d.Reason, d.Status, d.Attempts, &at
	}
	h := &ResendHint{Method: "POST", Headers: map[string]string{}}
	if e.Kind == store.KindPush {
		h.Path = "/push.v1.PusherService/Push"
		h.Headers["Content-Type"] = "application/proto"
		if e.ContentEncoding != "" {
			// Stored as it arrived: gzipped.
			h.Headers["Content-Encoding"] = e.ContentEncoding
		}
	} else {
		h.Path = "/ingest"
		if e.Query != "" {
			h.Path += "?" + e.Query
		}
		if e.ContentType != "" {
			h.Headers["Content-Type"] = e.ContentType
		}
		if e.ContentEncoding != "" {
			h.Headers["Content-Encoding"] = e.ContentEncoding
		}
	}
	if e.Tenant != "" {
		h.Headers["X-Scope-OrgID"] = e.Tenant
	}
	x.Request = h
	return x
}
