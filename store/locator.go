package store

import (
	"encoding/binary"

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

// The record log counts, per segment, the entries whose locators point
// into it and their frame bytes; a segment with no count holds nothing
// live. The counts live in memory only: Open counts them from the locators
// (logrecover.go), and the transactions that add and delete locators, all
// run by the commit loop, change them. A running transaction's changes are
// kept apart in txCounts, applied when it commits and dropped when it
// rolls back, so the counts always say what the committed locators say.
// In the file they were a bucket that every commit adding or deleting a
// record changed, and that Open had to recount anyway.

// segmentCount is what is live in one segment.
type segmentCount struct{ count, bytes int64 }

// bucketSegments held the counts in files of earlier builds; Open drops it.
var bucketSegments = []byte("segments")

// segmentStats is what is live in segment seg, the running transaction's
// changes included.
func (l *segmentLog) segmentStats(seg uint64) (count, bytes int64) {
	c, d := l.counts[seg], l.txCounts[seg]
	return c.count + d.count, c.bytes + d.bytes
}

// addSegmentStats changes segment seg's counts in the running transaction
// and returns its count.
func (l *segmentLog) addSegmentStats(seg uint64, dCount, dBytes int64) int64 {
	d := l.txCounts[seg]
	d.count, d.bytes = d.count+dCount, d.bytes+dBytes
	l.txCounts[seg] = d
	n, _ := l.segmentStats(seg)
	return n
}

// commitCounts applies the committed transaction's changes to the counts.
func (l *segmentLog) commitCounts() {
	for seg, d := range l.txCounts {
		c := l.counts[seg]
		c.count, c.bytes = c.count+d.count, max(c.bytes+d.bytes, 0)
		if c.count <= 0 {
			delete(l.counts, seg)
			continue
		}
		l.counts[seg] = c
	}
	clear(l.txCounts)
}

// liveSegments counts the locators of the entries bucket per segment, and
// the end of each segment's last live frame.
func liveSegments(tx *bolt.Tx) (live map[uint64]segmentCount, ends map[uint64]int64) {
	live, ends = map[uint64]segmentCount{}, map[uint64]int64{}
	entries := tx.Bucket(bucketEntries)
	if entries == nil {
		return live, ends
	}
	c := entries.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if loc, ok := decodeLocator(v); ok {
			n := live[loc.seg]
			live[loc.seg] = segmentCount{n.count + 1, n.bytes + loc.frameBytes()}
			ends[loc.seg] = max(ends[loc.seg], int64(loc.off)+loc.frameBytes())
		}
	}
	return live, ends
}
