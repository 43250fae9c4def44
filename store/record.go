package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// Kind says which API an entry arrived on, and so how a forwarder sends it.
type Kind uint8

const (
	// KindIngest is a Pyroscope /ingest request, kept as query, headers and raw body.
	KindIngest Kind = 1
	// KindPush is a push.v1.PusherService/Push request, kept as its protobuf encoding.
	KindPush Kind = 2
)

func (k Kind) String() string {
	switch k {
	case KindIngest:
		return "ingest"
	case KindPush:
		return "push"
	default:
		return fmt.Sprintf("kind(%d)", uint8(k))
	}
}

// Entry is one accepted request, as stored and as forwarded.
type Entry struct {
	// ID is assigned by the store on Put; it orders entries oldest first.
	ID              uint64
	Kind            Kind
	ReceivedAt      time.Time
	Query           string // raw query string of an /ingest request
	ContentType     string // byte for byte: it carries the multipart boundary
	ContentEncoding string
	Tenant          string // X-Scope-OrgID, when the relay passes it through
	Body            []byte

	rec []byte // the record buffer Body may sit at the end of (see NewBody)
}

// Size is the number of bytes the entry's record takes, the unit of every
// byte count the store reports.
func (e *Entry) Size() int { return e.sizeWithBody(len(e.Body)) }

// sizeWithBody is Size for a body of n bytes.
func (e *Entry) sizeWithBody(n int) int {
	size := recordHeaderLen + uvarintLen(uint64(n)) + n
	for _, l := range []int{len(e.Query), len(e.ContentType), len(e.ContentEncoding), len(e.Tenant)} {
		size += uvarintLen(uint64(l)) + l
	}
	return size
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// ErrCorrupt is returned for a record whose checksum or framing is wrong.
var ErrCorrupt = errors.New("corrupt record")

// Record layout, version 1:
//
//	[0]     version
//	[1:5]   CRC-32C of everything after it
//	[5]     kind
//	[6:14]  received-at, unix nanoseconds, big endian
//	then five uvarint-length-prefixed fields: query, content type,
//	content encoding, tenant, body.
//
// The version byte comes first so that a later layout can be read beside
// this one; the checksum covers every byte that follows it.
const (
	recordVersion1  = 1
	recordHeaderLen = 14
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeRecord appends the record of e to dst.
func encodeRecord(dst []byte, e *Entry) []byte {
	start := len(dst)
	dst = appendHeader(dst, e)
	dst = append(dst, e.Body...)
	binary.BigEndian.PutUint32(dst[start+1:], crc32.Checksum(dst[start+5:], castagnoli))
	return dst
}

// appendHeader appends e's record up to its body, checksum left zero.
func appendHeader(dst []byte, e *Entry) []byte {
	dst = append(dst, recordVersion1, 0, 0, 0, 0, byte(e.Kind))
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.ReceivedAt.UnixNano()))
	for _, s := range []string{e.Query, e.ContentType, e.ContentEncoding, e.Tenant} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return binary.AppendUvarint(dst, uint64(len(e.Body)))
}

// NewBody sets e.Body to a new buffer of n bytes and returns it, for the
// caller to fill. The buffer is the tail of one with room for the rest of
// e's record, so that Put writes the record around the body instead of
// copying it (a profile is read once, stored as it is). Set e's other
// fields first: if they change afterwards, or Body is replaced, Put copies
// as usual.
func (e *Entry) NewBody(n int) []byte {
	h := e.sizeWithBody(n) - n
	e.rec = make([]byte, h+n)
	e.Body = e.rec[h:]
	return e.Body
}

// record returns e's record, in the buffer NewBody made when it still fits.
func (e *Entry) record() []byte {
	if h := len(e.rec) - len(e.Body); len(e.Body) > 0 && h > 0 && &e.rec[h] == &e.Body[0] && h == e.Size()-len(e.Body) {
		appendHeader(e.rec[:0], e)
		binary.BigEndian.PutUint32(e.rec[1:], crc32.Checksum(e.rec[5:], castagnoli))
		return e.rec
	}
	return encodeRecord(make([]byte, 0, e.Size()), e)
}

// decodeRecord parses a record. The entry's Body aliases b: callers pass a
// copy they own, never a slice of bbolt's memory map.
func decodeRecord(b []byte) (*Entry, error) {
	if len(b) < recordHeaderLen {
		return nil, fmt.Errorf("%w: %d bytes, shorter than a header", ErrCorrupt, len(b))
	}
	if b[0] != recordVersion1 {
		return nil, fmt.Errorf("%w: unknown record version %d", ErrCorrupt, b[0])
	}
	if want, got := binary.BigEndian.Uint32(b[1:5]), crc32.Checksum(b[5:], castagnoli); want != got {
		return nil, fmt.Errorf("%w: checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	e := &Entry{
		Kind:       Kind(b[5]),
		ReceivedAt: time.Unix(0, int64(binary.BigEndian.Uint64(b[6:14]))),
	}
	rest := b[recordHeaderLen:]
	field := func() ([]byte, error) {
		n, k := binary.Uvarint(rest)
		// A length must be in its shortest form, as encodeRecord writes it:
		// then each entry has exactly one record, and a decoded record
		// re-encodes to the same bytes.
		if k <= 0 || k != uvarintLen(n) || n > uint64(len(rest)-k) {
			return nil, fmt.Errorf("%w: bad field length", ErrCorrupt)
		}
		f := rest[k : k+int(n)]
		rest = rest[k+int(n):]
		return f, nil
	}
	for _, dst := range []*string{&e.Query, &e.ContentType, &e.ContentEncoding, &e.Tenant} {
		f, err := field()
		if err != nil {
			return nil, err
		}
		*dst = string(f)
	}
	body, err := field()
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(rest))
	}
	e.Body = body
	return e, nil
}
