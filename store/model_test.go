package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	modelSeed = flag.Uint64("store.seed", 0, "seed of TestModel (0: pick one from the clock)")
	modelOps  = flag.Int("store.ops", 0, "number of operations TestModel runs (0: 2000; 800 under -race, 300 with -short)")
)

// modelItem is a queue position as the model knows it. seq is learnt from
// the store's first read after the put; 0 until then.
type modelItem struct {
	seq uint64
	id  uint64
}

type modelDead struct {
	id       uint64
	reason   string
	status   int
	attempts int
}

// model is what the store must hold: per queue, its positions in order and
// its dead letters; and every live entry by id.
type model struct {
	queues  map[string][]modelItem
	dead    map[string][]modelDead
	entries map[uint64]*Entry
	acked   map[string][]uint64 // positions acked before, to ack again
}

// refs counts the queue positions and dead letters that hold each entry.
func (m *model) refs() map[uint64]int {
	n := make(map[uint64]int)
	for _, items := range m.queues {
		for _, it := range items {
			n[it.id]++
		}
	}
	for _, ds := range m.dead {
		for _, d := range ds {
			n[d.id]++
		}
	}
	return n
}

var modelQueues = []string{"a", "b", "c", HoldQueue}

// TestModel runs a random sequence of puts, reads, acks, dead letters and
// reopens, and after every step compares everything the store holds with
// an in-memory model. Rerun a failure with -store.seed=N.
func TestModel(t *testing.T) {
	seed := *modelSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	ops := *modelOps
	switch {
	case ops > 0:
	case testing.Short():
		ops = 300
	case raceEnabled:
		ops = 800
	default:
		ops = 2000
	}
	t.Logf("seed %d, %d ops (rerun: go test ./store -run TestModel -store.seed=%d)", seed, ops, seed)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	dir := t.TempDir()
	// Small segments: the run seals, removes and copies forward many.
	opts := Options{segmentSize: 32 << 10, compactIdle: -1}
	s := openStore(t, dir, opts)
	ctx := context.Background()
	m := &model{
		queues:  make(map[string][]modelItem),
		dead:    make(map[string][]modelDead),
		entries: make(map[uint64]*Entry),
		acked:   make(map[string][]uint64),
	}

	var history []string // the last steps, printed on failure
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d, step %d: %s\nlast steps:\n  %s", seed, len(history), fmt.Sprintf(format, args...),
			strings.Join(history[max(0, len(history)-15):], "\n  "))
	}
	// pick returns a random known position of a non-empty queue.
	pick := func() (string, int, bool) {
		var names []string
		for _, q := range modelQueues {
			if len(m.queues[q]) > 0 {
				names = append(names, q)
			}
		}
		if len(names) == 0 {
			return "", 0, false
		}
		q := names[r.IntN(len(names))]
		return q, r.IntN(len(m.queues[q])), true
	}

	// newPut makes a random entry for random queues, and the copy of it
	// the model keeps; recordPut adds a committed put to the model.
	newPut := func() (*Entry, Entry, []string) {
		var queues []string
		for _, q := range modelQueues[:3] {
			if r.IntN(2) == 0 {
				queues = append(queues, q)
			}
		}
		e := randomEntry(r)
		want := *e
		want.Body = bytes.Clone(e.Body)
		return e, want, queues
	}
	recordPut := func(e *Entry, want Entry, queues []string) {
		history = append(history, fmt.Sprintf("put id %d (%d bytes) to %v", e.ID, len(e.Body), queues))
		if _, dup := m.entries[e.ID]; dup || e.ID == 0 {
			fail("put got id %d, already used or zero", e.ID)
		}
		want.ID = e.ID
		m.entries[e.ID] = &want
		if len(queues) == 0 {
			queues = []string{HoldQueue}
		}
		for _, q := range queues {
			m.queues[q] = append(m.queues[q], modelItem{id: e.ID})
		}
	}

	longest := 0 // the longest a queue got, to see the test reaches depth
	for step := range ops {
		deadChanged := false
		switch p := r.IntN(100); {
		case p < 45: // put
			e, want, queues := newPut()
			if err := s.Put(ctx, e, queues); err != nil {
				fail("put: %v", err)
			}
			recordPut(e, want, queues)

		case p < 62: // one read batch, compared with what the model predicts
			q := modelQueues[r.IntN(len(modelQueues))]
			items := m.queues[q]
			var after uint64
			switch {
			case len(items) > 0 && r.IntN(3) > 0:
				after = items[r.IntN(len(items))].seq
			case r.IntN(2) == 0 && len(items) > 0:
				after = items[len(items)-1].seq + uint64(r.IntN(3))
			}
			maxN, maxBytes := r.IntN(10), r.IntN(4096)
			if r.IntN(3) == 0 {
				// Exactly the size of the first few: the boundary case.
				maxBytes = 0
				k := r.IntN(4)
				for _, it := range items {
					if it.seq > after && k > 0 {
						maxBytes += m.entries[it.id].Size()
						k--
					}
				}
			}
			history = append(history, fmt.Sprintf("read %s after %d max %d maxBytes %d", q, after, maxN, maxBytes))
			var want []modelItem
			size := 0
			for _, it := range items {
				if it.seq <= after {
					continue
				}
				if len(want) >= maxN {
					break
				}
				if size >= maxBytes && len(want) > 0 {
					break
				}
				want = append(want, it)
				size += m.entries[it.id].Size()
			}
			got, quarantined, err := s.ReadBatch(ctx, q, after, maxN, maxBytes)
			if err != nil || quarantined != 0 {
				fail("read: %v, quarantined %d", err, quarantined)
			}
			if len(got) != len(want) {
				fail("read returned %d items, model says %d", len(got), len(want))
			}
			for i := range got {
				if got[i].Seq != want[i].seq {
					fail("read item %d at position %d, model says %d", i, got[i].Seq, want[i].seq)
				}
				compareEntry(fail, got[i].Entry, m.entries[want[i].id])
			}

		case p < 85: // ack a few positions, some perhaps acked before
			q, _, ok := pick()
			if !ok {
				continue
			}
			n := 1 + r.IntN(2)
			var acks []uint64
			items := m.queues[q]
			for _, j := range r.Perm(len(items))[:min(n, len(items))] {
				acks = append(acks, items[j].seq)
			}
			if old := m.acked[q]; len(old) > 0 && r.IntN(4) == 0 {
				acks = append(acks, old[r.IntN(len(old))])
			}
			if r.IntN(3) > 0 {
				history = append(history, fmt.Sprintf("ack %s %v", q, acks))
				if err := s.Ack(ctx, q, acks...); err != nil {
					fail("ack: %v", err)
				}
			} else {
				// The ack and a put share one commit, in that order, as
				// a forwarder's ack and a client's put do.
				history = append(history, fmt.Sprintf("ack %s %v, then in the same commit:", q, acks))
				// A record for the log: the ack may have emptied the
				// segment it goes to.
				e, want, queues := newPut()
				for len(e.Body) < 4<<10 {
					e, want, queues = newPut()
				}
				resume := pauseLoop(t, s)
				acked, put := make(chan error, 1), make(chan error, 1)
				go func() { acked <- s.Ack(ctx, q, acks...) }()
				waitQueued(t, s, 1)
				go func() { put <- s.Put(ctx, e, queues) }()
				waitQueued(t, s, 2)
				resume()
				if err := <-acked; err != nil {
					fail("ack: %v", err)
				}
				if err := <-put; err != nil {
					fail("put: %v", err)
				}
				recordPut(e, want, queues)
			}
			m.queues[q] = slices.DeleteFunc(m.queues[q], func(it modelItem) bool { return slices.Contains(acks, it.seq) })
			m.acked[q] = append(m.acked[q], acks...)

		case p < 90: // dead-letter one position
			q, i, ok := pick()
			if !ok {
				continue
			}
			it := m.queues[q][i]
			d := modelDead{id: it.id, reason: fmt.Sprintf("reason %d: ü", step), status: 400 + r.IntN(100), attempts: 1 + r.IntN(9)}
			history = append(history, fmt.Sprintf("dead-letter %s position %d (id %d)", q, it.seq, it.id))
			err := s.MoveToDeadLetter(ctx, q, it.seq, DeadLetter{Reason: d.reason, Status: d.status, Attempts: d.attempts})
			if err != nil {
				fail("dead-letter: %v", err)
			}
			m.queues[q] = slices.Delete(m.queues[q], i, i+1)
			m.acked[q] = append(m.acked[q], it.seq) // acking it now must do nothing
			m.dead[q] = append(m.dead[q], d)
			deadChanged = true

		case p < 92: // reopen
			history = append(history, "close and reopen")
			if err := s.Close(); err != nil {
				fail("close: %v", err)
			}
			s = openStore(t, dir, opts)
			deadChanged = true

		default: // read and ack a whole batch, as a forwarder does
			q := modelQueues[r.IntN(len(modelQueues))]
			got, _, err := s.ReadBatch(ctx, q, 0, 1+r.IntN(8), 1<<20)
			if err != nil {
				fail("read: %v", err)
			}
			history = append(history, fmt.Sprintf("drain batch of %d from %s", len(got), q))
			if err := s.Ack(ctx, q, seqs(got)...); err != nil {
				fail("ack: %v", err)
			}
			n := len(got)
			if n > len(m.queues[q]) {
				fail("drained %d items, model has %d", n, len(m.queues[q]))
			}
			m.queues[q] = m.queues[q][n:]
			m.acked[q] = append(m.acked[q], seqs(got)...)
		}
		// Entries nobody holds any more are gone from the model too.
		refs := m.refs()
		for id := range m.entries {
			if refs[id] == 0 {
				delete(m.entries, id)
			}
		}
		// Dead letters change only on a dead-letter step; other damage to
		// them shows in the entry and reference checks, so the costly
		// full walk runs then, after a reopen, and now and then.
		checkModel(t, s, m, fail, deadChanged || step%20 == 0 || step == ops-1)
		for _, q := range modelQueues {
			longest = max(longest, len(m.queues[q]))
		}
	}
	st := mustStats(t, s)
	t.Logf("longest queue %d; end: %d live entries; a=%d b=%d c=%d hold=%d; dead a=%d b=%d c=%d",
		longest, len(m.entries), st["a"].Entries, st["b"].Entries, st["c"].Entries, st[HoldQueue].Entries,
		st["a"].DeadEntries, st["b"].DeadEntries, st["c"].DeadEntries)
}

func randomEntry(r *rand.Rand) *Entry {
	str := func(alphabet string, n int) string {
		runes := []rune(alphabet)
		var b strings.Builder
		for range n {
			b.WriteRune(runes[r.IntN(len(runes))])
		}
		return b.String()
	}
	n := r.IntN(300)
	if r.IntN(5) == 0 { // over half a page mostly: a record in the log
		n = r.IntN(16 << 10)
	}
	body := make([]byte, n)
	for i := range body {
		body[i] = byte(r.Uint32())
	}
	return &Entry{
		Kind:        Kind(1 + r.IntN(2)),
		ReceivedAt:  time.Unix(1_700_000_000+r.Int64N(1_000_000), r.Int64N(1e9)),
		Query:       str("abc=&{},.xyzé", r.IntN(40)),
		ContentType: str("multipart/form-data; boundary=", r.IntN(30)),
		Tenant:      str("tenant-日本🔥", r.IntN(8)),
		Body:        body,
	}
}

func compareEntry(fail func(string, ...any), got, want *Entry) {
	if want == nil {
		fail("store returned entry %d, which the model no longer holds", got.ID)
		return
	}
	if got.ID != want.ID || got.Kind != want.Kind || !got.ReceivedAt.Equal(want.ReceivedAt) ||
		got.Query != want.Query || got.ContentType != want.ContentType ||
		got.ContentEncoding != want.ContentEncoding || got.Tenant != want.Tenant ||
		!bytes.Equal(got.Body, want.Body) {
		fail("entry %d differs from the model's (body %d vs %d bytes)", want.ID, len(got.Body), len(want.Body))
	}
}

// checkModel compares every queue (read whole through ReadBatch), the
// counters, the dead letters and the stored entries and references.
func checkModel(t *testing.T, s *Store, m *model, fail func(string, ...any), withDead bool) {
	t.Helper()
	st := mustStats(t, s)
	for _, q := range modelQueues {
		items, quarantined := readAll(t, s, q, 7)
		want := m.queues[q]
		if quarantined != 0 {
			fail("queue %s: %d records quarantined", q, quarantined)
		}
		if len(items) != len(want) {
			fail("queue %s holds %d entries, model %d", q, len(items), len(want))
		}
		var bytes int64
		for i, it := range items {
			if it.Entry.ID != want[i].id {
				fail("queue %s item %d is entry %d, model says %d", q, i, it.Entry.ID, want[i].id)
			}
			if want[i].seq != 0 && want[i].seq != it.Seq {
				fail("queue %s item %d moved from position %d to %d", q, i, want[i].seq, it.Seq)
			}
			if i > 0 && it.Seq <= items[i-1].Seq {
				fail("queue %s positions out of order at %d", q, i)
			}
			want[i].seq = it.Seq
			compareEntry(fail, it.Entry, m.entries[want[i].id])
			bytes += int64(it.Entry.Size())
		}
		if got := st[q]; got.Entries != int64(len(want)) || got.Bytes != bytes {
			fail("queue %s stats %d entries %d bytes, model %d entries %d bytes", q, got.Entries, got.Bytes, len(want), bytes)
		}

		if !withDead {
			continue
		}
		var dead []modelDead
		var deadBytes int64
		err := s.DeadLetters(q, func(d *DeadLetter, e *Entry) error {
			if e == nil {
				fail("queue %s: dead letter %d lost entry %d", q, d.Seq, d.EntryID)
			}
			compareEntry(fail, e, m.entries[d.EntryID])
			dead = append(dead, modelDead{id: d.EntryID, reason: d.Reason, status: d.Status, attempts: d.Attempts})
			deadBytes += int64(e.Size())
			return nil
		})
		if err != nil {
			fail("dead letters of %s: %v", q, err)
		}
		if !slices.Equal(dead, m.dead[q]) {
			fail("dead letters of %s: %+v, model %+v", q, dead, m.dead[q])
		}
		if got := st[q]; got.DeadEntries != int64(len(dead)) || got.DeadBytes != deadBytes {
			fail("queue %s dead stats %d/%d, model %d/%d", q, got.DeadEntries, got.DeadBytes, len(dead), deadBytes)
		}
	}

	// Exactly the live entries are stored, each with as many references
	// as positions and dead letters hold it.
	refs := m.refs()
	stored := bucketContents(t, s, bucketEntries)
	storedRefs := bucketContents(t, s, bucketRefs)
	if len(stored) != len(m.entries) || len(storedRefs) != len(m.entries) {
		fail("%d entries and %d references stored, model holds %d entries", len(stored), len(storedRefs), len(m.entries))
	}
	for id, n := range refs {
		if stored[id] == nil {
			fail("entry %d missing", id)
		}
		if v := storedRefs[id]; len(v) != 4 || int(binary.BigEndian.Uint32(v)) != n {
			fail("entry %d has references %x, model %d", id, v, n)
		}
	}
	// The record log: each segment's counts (kept in memory) say what the
	// committed locators say, every segment with live entries is on disk,
	// and no segment file is left that nothing points into but the newest
	// (the one appended to, which may be empty). The commit loop is held
	// meanwhile: it copies records forward between writes, and the counts
	// read are those of its last commit.
	defer pauseLoop(t, s)()
	var live map[uint64]segmentCount
	_ = s.db.View(func(tx *bolt.Tx) error {
		live, _ = liveSegments(tx)
		return nil
	})
	if !maps.Equal(s.log.counts, live) {
		fail("segment counts %v, locators say %v", s.log.counts, live)
	}
	files := segmentFiles(t, filepath.Dir(s.Path()))
	for seg := range live {
		if !slices.Contains(files, seg) {
			fail("segment %d holds live entries and is not on disk (segments %v)", seg, files)
		}
	}
	if len(files) > 0 {
		for _, seg := range files[:len(files)-1] {
			if _, ok := live[seg]; !ok {
				fail("segment %d is on disk with nothing live in it (segments %v, live %v)", seg, files, live)
			}
		}
	}
	if sum, err := s.Summary(); err != nil || sum.Quarantined != 0 {
		fail("quarantined %d, %v", sum.Quarantined, err)
	}
}
