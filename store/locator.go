package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// A record in the record log (segment.go) is found through its locator,
// the entry's value in the entries bucket (schema 3):
//
//	[0]      locatorTag
//	[1:9]    segment number, big endian
//	[9:17]   offset of the record's frame in the segment
//	[17:21]  record length
//	[21:29]  the record's receive time, unix nanoseconds
//
// A record kept as a plain value starts with its version byte (1), and a
// record in a bucket of its own has no value at all, so the three forms
// are told apart by the value alone. The receive time is there so that
// archiving and purging an entry need not read its record.
const (
	locatorTag = 0xfe
	locatorLen = 29
)

type locator struct {
	seg, off uint64
	size     uint32
	at       int64
}

func (l locator) encode() []byte {
	b := make([]byte, locatorLen)
	b[0] = locatorTag
	binary.BigEndian.PutUint64(b[1:], l.seg)
	binary.BigEndian.PutUint64(b[9:], l.off)
	binary.BigEndian.PutUint32(b[17:], l.size)
	binary.BigEndian.PutUint64(b[21:], uint64(l.at))
	return b
}

func decodeLocator(v []byte) (locator, bool) {
	if len(v) != locatorLen || v[0] != locatorTag {
		return locator{}, false
	}
	return locator{
		seg:  binary.BigEndian.Uint64(v[1:]),
		off:  binary.BigEndian.Uint64(v[9:]),
		size: binary.BigEndian.Uint32(v[17:]),
		at:   int64(binary.BigEndian.Uint64(v[21:])),
	}, true
}

// frameBytes is what the locator's frame takes in its segment.
func (l locator) frameBytes() int64 { return frameLen(int(l.size)) }

// The segments bucket counts, per segment, the entries whose locators
// point into it and their frame bytes, under the segment's number (8
// bytes) → count (8), bytes (8). It changes in the transactions that add
// and delete locators; a segment with no key holds nothing live.
var bucketSegments = []byte("segments")

func segmentStats(tx *bolt.Tx, seg uint64) (count, bytes int64) {
	b := tx.Bucket(bucketSegments)
	if b == nil {
		return 0, 0
	}
	v := b.Get(u64(seg))
	if len(v) != 16 {
		return 0, 0
	}
	return int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:]))
}

// addSegmentStats changes segment seg's counters and returns its count;
// a segment's key goes when its count reaches zero.
func addSegmentStats(tx *bolt.Tx, seg uint64, dCount, dBytes int64) (int64, error) {
	b, err := tx.CreateBucketIfNotExists(bucketSegments)
	if err != nil {
		return 0, fmt.Errorf("segments bucket: %w", err)
	}
	count, bytes := segmentStats(tx, seg)
	count, bytes = count+dCount, bytes+dBytes
	if count <= 0 {
		return 0, b.Delete(u64(seg))
	}
	v := make([]byte, 16)
	binary.BigEndian.PutUint64(v, uint64(count))
	binary.BigEndian.PutUint64(v[8:], uint64(max(bytes, 0)))
	return count, b.Put(u64(seg), v)
}

// liveSegments counts the locators of the entries bucket per segment
// (what the segments bucket should say), and the end of each segment's
// last live frame.
func liveSegments(tx *bolt.Tx) (live map[uint64][2]int64, ends map[uint64]int64) {
	live, ends = map[uint64][2]int64{}, map[uint64]int64{}
	entries := tx.Bucket(bucketEntries)
	if entries == nil {
		return live, ends
	}
	c := entries.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if loc, ok := decodeLocator(v); ok {
			n := live[loc.seg]
			live[loc.seg] = [2]int64{n[0] + 1, n[1] + loc.frameBytes()}
			ends[loc.seg] = max(ends[loc.seg], int64(loc.off)+loc.frameBytes())
		}
	}
	return live, ends
}
