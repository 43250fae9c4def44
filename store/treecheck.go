package store

import (
	"encoding/binary"
	"fmt"
	"os"
)

// checkTrees walks the tree of every bucket of the file, from the root
// bucket of meta m, reading the pages with plain reads, before bbolt maps
// it. bbolt trusts the page numbers it finds: one that points back up its
// own tree (a flipped byte can make one) sends a cursor down forever, and
// the process runs out of memory, which no recover catches. So a page
// number out of the file, a page that is neither a branch nor a leaf, or
// one met twice, refuses the file.
//
// The pages of each record's own bucket (entries.go) are not read: their
// roots are only checked to lie inside the file. A record's bucket is a
// leaf, and a cursor in it cannot loop unless its own page was damaged.
func checkTrees(f *os.File, m fileMeta) error {
	c := treeChecker{f: f, m: m, seen: make(map[uint64]bool)}
	if m.root == 0 {
		return nil // bbolt never writes an inline root bucket
	}
	return c.tree(m.root, "", 0)
}

// loopingTrees is checkTrees for a damaged file that is to be read anyway
// (Salvage): it goes past what it cannot read, and returns the buckets
// whose own pages loop or are reached twice, which no cursor may enter,
// by path: "" for the root bucket, "queues", "queues/NAME".
func loopingTrees(f *os.File, m fileMeta) map[string]bool {
	c := treeChecker{f: f, m: m, seen: make(map[uint64]bool), looping: map[string]bool{}}
	if m.root != 0 {
		_ = c.tree(m.root, "", 0)
	}
	return c.looping
}

// bbolt's page flags and leaf element flags.
const (
	branchPageFlag  = 0x01
	leafPageFlag    = 0x02
	bucketLeafFlag  = 0x01
	elementLen      = 16 // a branch or leaf element's header
	bucketHeaderLen = 16 // root page (8), sequence (8)
	maxTreeDepth    = 64
)

type treeChecker struct {
	f    *os.File
	m    fileMeta
	seen map[uint64]bool
	// looping, when set, collects the buckets whose pages loop instead
	// of failing the check (see loopingTrees).
	looping map[string]bool
}

// fail returns err, or, when the checker collects, notes the bucket at
// path if the damage loops and returns nil to go on past it.
func (c *treeChecker) fail(path string, loops bool, err error) error {
	if c.looping == nil {
		return err
	}
	if loops {
		c.looping[path] = true
	}
	return nil
}

// tree checks the tree of pages from page pgid of the bucket at path
// ("" for the root bucket, "entries", "queues/NAME").
func (c *treeChecker) tree(pgid uint64, path string, depth int) error {
	if depth > maxTreeDepth {
		return c.fail(path, true, fmt.Errorf("page %d: more than %d levels deep", pgid, maxTreeDepth))
	}
	if pgid < 2 || pgid >= c.m.pgid {
		return c.fail(path, false, fmt.Errorf("page %d: outside the %d pages in use", pgid, c.m.pgid))
	}
	if c.seen[pgid] {
		return c.fail(path, true, fmt.Errorf("page %d: reached twice", pgid))
	}
	c.seen[pgid] = true
	p, err := c.page(pgid)
	if err != nil {
		return c.fail(path, false, err)
	}
	flags, count := binary.NativeEndian.Uint16(p[8:]), int(binary.NativeEndian.Uint16(p[10:]))
	if err := checkLayout(p, count, flags&branchPageFlag != 0); err != nil {
		return c.fail(path, false, fmt.Errorf("page %d: %w", pgid, err))
	}
	switch {
	case flags&branchPageFlag != 0:
		for i := range count {
			e := p[pageHeaderLen+i*elementLen:]
			if err := c.tree(binary.NativeEndian.Uint64(e[8:]), path, depth+1); err != nil {
				return err
			}
		}
		return nil
	case flags&leafPageFlag != 0:
		return c.leaf(pgid, p, count, path, depth)
	default:
		return c.fail(path, false, fmt.Errorf("page %d: neither a branch nor a leaf (flags %#x)", pgid, flags))
	}
}

// leaf checks the buckets held in the leaf page p (or an inline bucket's
// page) of count elements, of the bucket at path (see tree).
func (c *treeChecker) leaf(pgid uint64, p []byte, count int, path string, depth int) error {
	for i := range count {
		at := pageHeaderLen + i*elementLen
		e := p[at:]
		if binary.NativeEndian.Uint32(e)&bucketLeafFlag == 0 {
			continue
		}
		pos, ksize, vsize := uint64(binary.NativeEndian.Uint32(e[4:])), uint64(binary.NativeEndian.Uint32(e[8:])), uint64(binary.NativeEndian.Uint32(e[12:]))
		start := uint64(at) + pos
		if start+ksize+vsize > uint64(len(p)) || vsize < bucketHeaderLen {
			if err := c.fail(path, false, fmt.Errorf("page %d: element %d lies outside the page", pgid, i)); err != nil {
				return err
			}
			continue
		}
		key, val := p[start:start+ksize], p[start+ksize:start+ksize+vsize]
		root := binary.NativeEndian.Uint64(val)
		child := string(key)
		if path != "" {
			child = path + "/" + child
		}
		switch {
		case root == 0: // an inline bucket: its leaf follows the header
			inline := val[bucketHeaderLen:]
			if len(inline) < pageHeaderLen {
				if err := c.fail(child, false, fmt.Errorf("page %d: element %d is a bucket too short to hold its page", pgid, i)); err != nil {
					return err
				}
				continue
			}
			n := int(binary.NativeEndian.Uint16(inline[10:]))
			if err := checkLayout(inline, n, false); err != nil {
				if err := c.fail(child, false, fmt.Errorf("page %d: the bucket in element %d: %w", pgid, i, err)); err != nil {
					return err
				}
				continue
			}
			if err := c.leaf(pgid, inline, n, child, depth+1); err != nil {
				return err
			}
		case path == string(bucketEntries):
			// A record's bucket: its page is not read (see checkTrees).
			if root < 2 || root >= c.m.pgid {
				if err := c.fail(path, false, fmt.Errorf("page %d: a record's bucket at page %d, outside the %d pages in use", pgid, root, c.m.pgid)); err != nil {
					return err
				}
			}
		default:
			if err := c.tree(root, child, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkLayout checks that the count elements of page p are laid out as
// bbolt writes them: their keys and values one after the other, from the
// end of the element headers, inside the page, no key empty. A flipped
// byte in a position or a size breaks that, and bbolt would read, and
// write back, what lies beside.
func checkLayout(p []byte, count int, branch bool) error {
	next := uint64(pageHeaderLen + count*elementLen)
	if next > uint64(len(p)) {
		return fmt.Errorf("%d elements do not fit in it", count)
	}
	for i := range count {
		at := pageHeaderLen + i*elementLen
		e := p[at:]
		var pos, size, ksize uint64
		if branch {
			pos, ksize = uint64(binary.NativeEndian.Uint32(e)), uint64(binary.NativeEndian.Uint32(e[4:]))
			size = ksize
		} else {
			pos, ksize = uint64(binary.NativeEndian.Uint32(e[4:])), uint64(binary.NativeEndian.Uint32(e[8:]))
			size = ksize + uint64(binary.NativeEndian.Uint32(e[12:]))
		}
		if uint64(at)+pos != next || ksize == 0 || next+size > uint64(len(p)) {
			return fmt.Errorf("element %d is not where the elements before it end, or runs past the page", i)
		}
		next += size
	}
	return nil
}

// page reads page pgid with its overflow pages.
func (c *treeChecker) page(pgid uint64) ([]byte, error) {
	ps := c.m.pageSize
	p := make([]byte, ps)
	if _, err := c.f.ReadAt(p, int64(pgid)*ps); err != nil {
		return nil, fmt.Errorf("read page %d: %w", pgid, err)
	}
	overflow := uint64(binary.NativeEndian.Uint32(p[12:]))
	if overflow == 0 {
		return p, nil
	}
	if pgid+overflow >= c.m.pgid {
		return nil, fmt.Errorf("page %d: its %d overflow pages run past the %d pages in use", pgid, overflow, c.m.pgid)
	}
	p = append(p, make([]byte, int64(overflow)*ps)...)
	if _, err := c.f.ReadAt(p[ps:], int64(pgid+1)*ps); err != nil {
		return nil, fmt.Errorf("read page %d: %w", pgid, err)
	}
	return p, nil
}
