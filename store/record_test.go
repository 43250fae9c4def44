package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// sampleEntry is a small record with every field set, so that flips land
// in every part of the layout.
func sampleEntry() *Entry {
	return &Entry{
		Kind:            KindIngest,
		ReceivedAt:      time.Unix(1_700_000_000, 123_456_789),
		Query:           "name=app.cpu{env=prod}&from=1&until=2",
		ContentType:     "multipart/form-data; boundary=xyz",
		ContentEncoding: "gzip",
		Tenant:          "tenant-1",
		Body:            []byte("\x1f\x8b body bytes \x00\xff"),
	}
}

// sameEntry compares the fields a record carries. Times are compared as
// instants: decoding yields local time without a monotonic reading.
func sameEntry(t *testing.T, got, want *Entry) {
	t.Helper()
	if got.Kind != want.Kind || !got.ReceivedAt.Equal(want.ReceivedAt) ||
		got.Query != want.Query || got.ContentType != want.ContentType ||
		got.ContentEncoding != want.ContentEncoding || got.Tenant != want.Tenant {
		t.Fatalf("entry header mismatch:\n got  %v %v %q %q %q %q\n want %v %v %q %q %q %q",
			got.Kind, got.ReceivedAt, got.Query, got.ContentType, got.ContentEncoding, got.Tenant,
			want.Kind, want.ReceivedAt, want.Query, want.ContentType, want.ContentEncoding, want.Tenant)
	}
	if !bytes.Equal(got.Body, want.Body) {
		t.Fatalf("body mismatch: got %d bytes, want %d", len(got.Body), len(want.Body))
	}
}

// reseal recomputes the checksum of a hand-edited record, so that a test
// reaches the framing checks behind it.
func reseal(b []byte) []byte {
	binary.BigEndian.PutUint32(b[1:5], crc32.Checksum(b[5:], castagnoli))
	return b
}

func TestRecordRoundTrip(t *testing.T) {
	big := make([]byte, 4<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	tests := []struct {
		name string
		e    Entry
	}{
		{"empty fields", Entry{Kind: KindIngest, ReceivedAt: time.Unix(0, 0)}},
		{"empty non-nil body", Entry{Kind: KindPush, ReceivedAt: time.Unix(1, 0), Body: []byte{}}},
		{"all fields", *sampleEntry()},
		{"big body", Entry{Kind: KindPush, ReceivedAt: time.Unix(1_700_000_000, 1), Body: big}},
		{"unicode", Entry{
			Kind:        KindIngest,
			ReceivedAt:  time.Unix(1_700_000_000, 0),
			Query:       "name=サービス.cpu{région=eu,emoji=🔥}",
			ContentType: "text/plain; charset=utf-8",
			Tenant:      "テナント-Ω",
			Body:        []byte("函数;main 1\nfunc;😀 2\n"),
		}},
		{"long strings need multi-byte lengths", Entry{
			Kind:       KindIngest,
			ReceivedAt: time.Unix(1_700_000_000, 0),
			Query:      strings.Repeat("q", 300),
			Tenant:     strings.Repeat("t", 20000),
			Body:       bytes.Repeat([]byte{0}, 128),
		}},
		{"time before 1970", Entry{Kind: KindIngest, ReceivedAt: time.Unix(-1_000_000, 5)}},
		{"unknown kind is carried", Entry{Kind: Kind(200), ReceivedAt: time.Unix(3, 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := encodeRecord(nil, &tt.e)
			if len(rec) != tt.e.Size() {
				t.Fatalf("Size() = %d, record is %d bytes", tt.e.Size(), len(rec))
			}
			got, err := decodeRecord(append([]byte(nil), rec...))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			sameEntry(t, got, &tt.e)
			if again := encodeRecord(nil, got); !bytes.Equal(again, rec) {
				t.Fatal("re-encoding the decoded entry changed the record")
			}
		})
	}
}

// encodeRecord appends: the checksum must cover the new record only, not
// what dst already held.
func TestEncodeRecordAppends(t *testing.T) {
	e := sampleEntry()
	prefix := []byte("some earlier bytes")
	out := encodeRecord(append([]byte(nil), prefix...), e)
	if !bytes.HasPrefix(out, prefix) {
		t.Fatal("prefix overwritten")
	}
	if !bytes.Equal(out[len(prefix):], encodeRecord(nil, e)) {
		t.Fatal("record appended to a non-empty slice differs from a fresh one")
	}
}

func TestDecodeRecordDetectsEveryByteFlip(t *testing.T) {
	rec := encodeRecord(nil, sampleEntry())
	for i := range rec {
		for x := 1; x < 256; x++ {
			b := append([]byte(nil), rec...)
			b[i] ^= byte(x)
			if _, err := decodeRecord(b); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("byte %d xor %#02x: err = %v, want ErrCorrupt", i, x, err)
			}
		}
	}
}

func TestDecodeRecordTruncatedAndExtended(t *testing.T) {
	rec := encodeRecord(nil, sampleEntry())
	for n := 0; n < len(rec); n++ {
		if _, err := decodeRecord(append([]byte(nil), rec[:n]...)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d of %d bytes: err = %v, want ErrCorrupt", n, len(rec), err)
		}
	}
	if _, err := decodeRecord(append(append([]byte(nil), rec...), 0)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("one extra byte: err = %v, want ErrCorrupt", err)
	}
}

// Framing errors behind a valid checksum: a record written by a buggy or
// hostile writer must be refused, not mis-read or panicked on.
func TestDecodeRecordFramingErrors(t *testing.T) {
	valid := encodeRecord(nil, &Entry{Kind: KindIngest, ReceivedAt: time.Unix(1, 0), Query: "q", Body: []byte("body")})
	header := valid[:recordHeaderLen]
	withFields := func(fields ...[]byte) []byte {
		b := append([]byte(nil), header...)
		for _, f := range fields {
			b = append(b, f...)
		}
		return reseal(b)
	}
	tests := []struct {
		name string
		rec  []byte
		msg  string
	}{
		{"version 0", reseal(append([]byte{0}, valid[1:]...)), "unknown record version 0"},
		{"version 2", reseal(append([]byte{2}, valid[1:]...)), "unknown record version 2"},
		{"version 255", reseal(append([]byte{255}, valid[1:]...)), "unknown record version 255"},
		{"header only", withFields(), "bad field length"},
		{"missing body", withFields([]byte{0}, []byte{0}, []byte{0}, []byte{0}), "bad field length"},
		{"length past end", withFields([]byte{0}, []byte{0}, []byte{0}, []byte{0}, []byte{5, 'a'}), "bad field length"},
		{"huge length", withFields([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}), "bad field length"},
		{"varint overflow", withFields(bytes.Repeat([]byte{0xff}, 11)), "bad field length"},
		{"non-minimal length", withFields([]byte{0x80, 0x00}, []byte{0}, []byte{0}, []byte{0}, []byte{0}), "bad field length"},
		{"trailing bytes", withFields([]byte{0}, []byte{0}, []byte{0}, []byte{0}, []byte{0}, []byte{9}), "1 trailing bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeRecord(tt.rec)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %q, want it to mention %q", err, tt.msg)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindIngest: "ingest", KindPush: "push", 9: "kind(9)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", uint8(k), got, want)
		}
	}
}

// FuzzDecodeRecord: decodeRecord never panics, refuses with ErrCorrupt, and
// whatever it accepts re-encodes to the very same bytes (the layout has a
// single encoding per entry).
func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{recordVersion1})
	f.Add(encodeRecord(nil, &Entry{}))
	f.Add(encodeRecord(nil, sampleEntry()))
	f.Add(encodeRecord(nil, &Entry{Kind: KindPush, ReceivedAt: time.Unix(5, 0), Tenant: "t", Body: bytes.Repeat([]byte{0xaa}, 200)}))
	f.Fuzz(func(t *testing.T, b []byte) {
		in := append([]byte(nil), b...)
		e, err := decodeRecord(in)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			if e != nil {
				t.Fatal("entry returned with an error")
			}
			return
		}
		out := encodeRecord(nil, e)
		if !bytes.Equal(out, b) {
			t.Fatalf("decoded record re-encodes differently:\n in  %x\n out %x", b, out)
		}
		if e.Size() != len(b) {
			t.Fatalf("Size() = %d, record is %d bytes", e.Size(), len(b))
		}
	})
}

// TestNewBodyRecordInPlace: a body read into NewBody's buffer becomes the
// record without a copy, byte for byte what encodeRecord writes; an entry
// changed after NewBody still gets a correct record, copied.
func TestNewBodyRecordInPlace(t *testing.T) {
	want := sampleEntry()
	tests := []struct {
		name    string
		change  func(e *Entry)
		inPlace bool
	}{
		{"filled as NewBody left it", func(*Entry) {}, true},
		{"a field changed afterwards", func(e *Entry) { e.Query += "&x=1" }, false},
		{"body replaced", func(e *Entry) { e.Body = append([]byte(nil), e.Body...) }, false},
		{"body shortened", func(e *Entry) { e.Body = e.Body[:3] }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := *want
			e.Body = nil
			copy(e.NewBody(len(want.Body)), want.Body)
			tt.change(&e)
			rec := e.record()
			if inPlace := &rec[len(rec)-1] == &e.rec[len(e.rec)-1]; inPlace != tt.inPlace {
				t.Fatalf("record in NewBody's buffer: %v, want %v", inPlace, tt.inPlace)
			}
			if exp := encodeRecord(nil, &e); !bytes.Equal(rec, exp) {
				t.Fatalf("record differs from encodeRecord's:\n got %x\nwant %x", rec, exp)
			}
			got, err := decodeRecord(rec)
			if err != nil {
				t.Fatal(err)
			}
			sameEntry(t, got, &e)
		})
	}
	e := *want
	e.Body = nil
	copy(e.NewBody(len(want.Body)), want.Body)
	if n := testing.AllocsPerRun(100, func() { e.record() }); n != 0 {
		t.Errorf("record() of a NewBody entry allocates %v times, want 0", n)
	}
}
