package store

import (
	"sync"

	bolt "go.etcd.io/bbolt"
)

// A segment removed from the directory keeps its blocks on the disk until
// its file is closed, so it is closed as soon as no reader can need it: no
// read of it in progress, and every open read transaction began after the
// commit that let its last entry go (an older one may still hold a
// locator into it). readTxs tells the second. A reader older than
// retireGrace does not hold the file longer: it then finds the segment
// missing, and its queue waits for the next read.

// readTxs counts the store's open read transactions by the ID bbolt gives
// them: the ID of the last commit they see.
type readTxs struct {
	mu       sync.Mutex
	starting int         // transactions begun whose ID is not known yet
	open     map[int]int // ID -> open transactions with it
}

// view runs fn in a read transaction of db, counted while it is open.
func (r *readTxs) view(db *bolt.DB, fn func(tx *bolt.Tx) error) error {
	r.mu.Lock()
	r.starting++
	r.mu.Unlock()
	id, begun := 0, false
	defer func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if !begun {
			r.starting--
			return
		}
		if r.open[id]--; r.open[id] <= 0 {
			delete(r.open, id)
		}
	}()
	return db.View(func(tx *bolt.Tx) error {
		r.mu.Lock()
		id, begun = tx.ID(), true
		r.starting--
		if r.open == nil {
			r.open = map[int]int{}
		}
		r.open[id]++
		r.mu.Unlock()
		return fn(tx)
	})
}

// allSee reports whether every open read transaction sees commit txid,
// and none is beginning.
func (r *readTxs) allSee(txid int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.starting > 0 {
		return false
	}
	for id := range r.open {
		if id < txid {
			return false
		}
	}
	return true
}
