package store

import "sync"

// defaultRecentBytes is the default budget of the recent-entries cache.
// Forwarders that keep up read within a few hundred entries of the tail;
// one that is down or slow leaves its entries here until the budget pushes
// them out, so the budget is memory held for nothing then, and the
// garbage collector's target grows with it (GOGC 200: three times the
// live heap). A few MiB covers the healthy forwarders' distance from the
// tail; see BENCHMARKS.md for the peak RSS per budget.
const defaultRecentBytes = 4 << 20

// maxRecentIDs bounds how many entries the cache tracks, whatever their size.
const maxRecentIDs = 1 << 16

// recent keeps the entries put last, so that a forwarder reading near the
// tail of its queue gets them from memory.
//
// A healthy forwarder reads each entry a few milliseconds after its commit.
// Reading it back through bbolt's memory map costs a copy of the record per
// destination, page faults on pages just written (see noteMapped), and the
// garbage of those copies: a profile of the relay forwarding to two
// destinations put a quarter of its allocations and a tenth of its CPU
// there. The request's body is already in memory, and the record is
// immutable once committed, so the cache holds the entry as Put was given
// it, keyed by its ID. IDs are never reused, so an entry found here is the
// one on disk; the cache is only ever a shortcut for ReadBatch.
//
// An entry leaves when every queue it was put on has read it, or, oldest
// first, when the cache is over its byte budget: a destination that is down
// or far behind reads through bbolt as before, without holding memory.
type recent struct {
	mu     sync.Mutex
	max    int64
	bytes  int64
	byID   map[uint64]*recentEntry
	order  []uint64 // IDs in commit order; may hold IDs already gone from byID
	head   int      // order[head:] are the live part of order
	hits   uint64
	misses uint64
}

type recentEntry struct {
	e       Entry // shares Body with Put's caller: read-only
	size    int64
	readers int // queues that have not read it yet
}

func newRecent(max int64) *recent {
	if max <= 0 {
		return nil
	}
	return &recent{max: max, byID: make(map[uint64]*recentEntry)}
}

// add remembers e, put on n queues, under e.ID. A nil cache does nothing.
func (c *recent) add(e *Entry, size int64, n int) {
	if c == nil || size > c.max/4 {
		// One big entry would push out all the small ones for one read.
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byID[e.ID] = &recentEntry{e: *e, size: size, readers: n}
	c.order = append(c.order, e.ID)
	c.bytes += size
	// Pop the front while it is gone already (read by every queue), while
	// the cache is over budget, or while order holds too many IDs: one
	// entry nobody reads must not keep the IDs behind it forever.
	for c.head < len(c.order) {
		id := c.order[c.head]
		if _, live := c.byID[id]; live && c.bytes <= c.max && len(c.order)-c.head <= maxRecentIDs {
			break
		}
		c.dropLocked(id)
		c.head++
	}
	// Reclaim the consumed front of order once it is most of the slice.
	if c.head > 1024 && c.head*2 > len(c.order) {
		c.order = append(c.order[:0], c.order[c.head:]...)
		c.head = 0
	}
}

// take returns a copy of the entry with id for one reader, or nil. The copy
// shares Body with every other reader's.
func (c *recent) take(id uint64) *Entry {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.byID[id]
	if !ok {
		c.misses++
		return nil
	}
	c.hits++
	e := r.e
	r.readers--
	if r.readers <= 0 {
		c.dropLocked(id)
	}
	return &e
}

// remove forgets the entry with id, if the cache holds it.
func (c *recent) remove(id uint64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked(id)
}

func (c *recent) dropLocked(id uint64) {
	if r, ok := c.byID[id]; ok {
		c.bytes -= r.size
		delete(c.byID, id)
	}
}

// stats returns how many reads the cache answered and how many it did not.
func (c *recent) stats() (hits, misses uint64) {
	if c == nil {
		return 0, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.misses
}
