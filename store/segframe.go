package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Big records live in the record log: segment files in the data directory,
// each appended to by one store at a time and never rewritten. A segment is
// a sequence of frames, each one record:
//
//	[0:4]   magic 0x70726c67 ("prlg"), big endian
//	[4:8]   length of the record, big endian
//	[8:12]  CRC-32C of the entry ID and the record bytes, big endian
//	[12:20] entry ID, big endian
//	[20:]   the record (record.go), length bytes
//
// Frames follow one another with no padding, so a segment can be read
// frame by frame from its start; the magic, the ID and the checksum let a
// reader tell a frame from the garbage a torn write leaves at the end.
// Which frames are live is bbolt's to say: an entry's value in the entries
// bucket is then a locator (locator.go), and a frame no locator points at
// is dead, like a frame of a transaction that failed before its commit.

const (
	frameMagic     = 0x70726c67
	frameHeaderLen = 20
	// defaultSegmentSize is the size at which the active segment is
	// sealed and a new one started: big enough that removing segments is
	// rare, small enough that a segment pinned by a few entries does not
	// pin much.
	defaultSegmentSize = 64 << 20
	// segmentPrefix and segmentSuffix name segment files:
	// pyrorelay-LOGID-00000001.seg, numbered from 1, where LOGID (16 hex
	// digits) is the log's ID, kept in the bbolt file's meta bucket. A
	// store only ever reads, counts and removes segments of its own ID:
	// those of another bbolt file in the same directory (one moved aside
	// after damage, to be salvaged) are left as they are.
	segmentPrefix = "pyrorelay-"
	segmentSuffix = ".seg"
	// retireGrace is how long a removed segment's file stays open at
	// most for readers whose read transaction began before the commit
	// that let its last entry go.
	retireGrace = 30 * time.Second
	// maxPendingKept bounds the buffer of a transaction's frames kept
	// for the next one.
	maxPendingKept = 4 << 20
)

// errSegmentMissing is wrapped by reads of a segment file that is gone.
var errSegmentMissing = errors.New("segment file is missing")

func segmentName(id, n uint64) string {
	return fmt.Sprintf("%s%016x-%08d%s", segmentPrefix, id, n, segmentSuffix)
}

// parseSegmentName returns the log ID and number of a segment file name.
func parseSegmentName(name string) (id, n uint64, ok bool) {
	if !strings.HasPrefix(name, segmentPrefix) || !strings.HasSuffix(name, segmentSuffix) {
		return 0, 0, false
	}
	hexID, digits, found := strings.Cut(strings.TrimSuffix(strings.TrimPrefix(name, segmentPrefix), segmentSuffix), "-")
	if !found || len(hexID) != 16 {
		return 0, 0, false
	}
	id, err := strconv.ParseUint(hexID, 16, 64)
	if err != nil {
		return 0, 0, false
	}
	n, err = strconv.ParseUint(digits, 10, 64)
	if err != nil || n == 0 {
		return 0, 0, false
	}
	return id, n, true
}

// listSegments returns the numbers of the segment files of log id in dir,
// sorted, and their sizes; id 0 lists those of every log.
func listSegments(dir string, id uint64) ([]uint64, map[uint64]int64, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("list segments in %s: %w", dir, err)
	}
	var nums []uint64
	sizes := map[uint64]int64{}
	for _, de := range des {
		sid, n, ok := parseSegmentName(de.Name())
		if !ok || !de.Type().IsRegular() || (id != 0 && sid != id) {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue
		}
		nums = append(nums, n)
		sizes[n] = fi.Size()
	}
	sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
	return nums, sizes, nil
}

// frameLen is the bytes a frame of a record of n bytes takes.
func frameLen(n int) int64 { return frameHeaderLen + int64(n) }

// appendFrame appends the frame of record rec of entry id to dst.
func appendFrame(dst []byte, id uint64, rec []byte) []byte {
	var h [frameHeaderLen]byte
	binary.BigEndian.PutUint32(h[0:], frameMagic)
	binary.BigEndian.PutUint32(h[4:], uint32(len(rec)))
	binary.BigEndian.PutUint64(h[12:], id)
	crc := crc32.Update(crc32.Checksum(h[12:20], castagnoli), castagnoli, rec)
	binary.BigEndian.PutUint32(h[8:], crc)
	return append(append(dst, h[:]...), rec...)
}

// checkFrame checks that b holds the whole frame of entry id with a record
// of n bytes.
func checkFrame(b []byte, id uint64, n int) error {
	if len(b) != int(frameLen(n)) {
		return fmt.Errorf("%w: frame cut short: %d of %d bytes", ErrCorrupt, len(b), frameLen(n))
	}
	if m := binary.BigEndian.Uint32(b); m != frameMagic {
		return fmt.Errorf("%w: no frame here (magic %08x)", ErrCorrupt, m)
	}
	if l := binary.BigEndian.Uint32(b[4:]); l != uint32(n) {
		return fmt.Errorf("%w: frame of %d bytes, want %d", ErrCorrupt, l, n)
	}
	if got := binary.BigEndian.Uint64(b[12:]); got != id {
		return fmt.Errorf("%w: frame of entry %d, want %d", ErrCorrupt, got, id)
	}
	want := binary.BigEndian.Uint32(b[8:])
	if got := crc32.Update(crc32.Checksum(b[12:20], castagnoli), castagnoli, b[frameHeaderLen:]); got != want {
		return fmt.Errorf("%w: frame checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	return nil
}
