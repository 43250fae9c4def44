package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// commitGate holds the commit loop inside the OnCommit of its first
// transaction, so that a test can queue writes behind it and know they
// are all waiting when it lets the loop go on. It counts what every
// transaction after the first carried.
type commitGate struct {
	held    chan struct{} // closed once the loop is held
	release chan struct{}
	once    sync.Once

	mu      sync.Mutex
	batches []int // writes per transaction, the held one included
}

func newCommitGate() *commitGate {
	return &commitGate{held: make(chan struct{}), release: make(chan struct{})}
}

func (g *commitGate) onCommit(_ time.Duration, writes int) {
	g.mu.Lock()
	g.batches = append(g.batches, writes)
	g.mu.Unlock()
	first := false
	g.once.Do(func() { first = true })
	if first {
		close(g.held)
		<-g.release
	}
}

func (g *commitGate) transactions() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.batches...)
}

// holdLoop opens a store whose commit loop is held after its first write,
// which holdLoop makes. Writes made after it return queue in s.ops until
// the gate's release is closed.
func holdLoop(t *testing.T, opts Options) (*Store, *commitGate) {
	t.Helper()
	g := newCommitGate()
	opts.OnCommit = g.onCommit
	s := openStore(t, t.TempDir(), opts)
	first := make(chan error, 1)
	go func() { first <- s.Put(context.Background(), testEntry("first"), []string{"q"}) }()
	<-g.held
	t.Cleanup(func() {
		select {
		case <-g.release:
		default:
			close(g.release)
		}
		if err := <-first; err != nil {
			t.Errorf("first put: %v", err)
		}
	})
	return s, g
}

// waitQueued waits until n writes wait in the commit loop's channel.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d writes queued", n), func() bool { return len(s.ops) >= n })
}

// Group commit: writes that wait while a transaction commits share the
// next one. Counted per transaction, never timed: with every write in a
// transaction of its own the counts are all 1.
func TestGroupCommitFoldsWaitingWrites(t *testing.T) {
	s, g := holdLoop(t, Options{})
	const waiting = 63
	errs := make(chan error, waiting)
	for i := range waiting {
		go func() { errs <- s.Put(context.Background(), testEntry(fmt.Sprint(i)), []string{"q"}) }()
	}
	waitQueued(t, s, waiting)
	close(g.release)
	for range waiting {
		if err := <-errs; err != nil {
			t.Fatalf("put: %v", err)
		}
	}
	got := g.transactions()
	// The held first write, then one transaction for all that waited.
	if len(got) != 2 || got[1] != waiting {
		t.Fatalf("writes per transaction = %v, want [1 %d]: writes that waited did not share a commit", got, waiting)
	}
	if c, w := s.CommitCounts(); c != 2 || w != waiting+1 {
		t.Fatalf("CommitCounts = %d commits, %d writes; want 2, %d", c, w, waiting+1)
	}
}

// A write whose caller gives up after it was queued is committed or
// failed whatever the caller's context says, and the answer says which: a
// committed entry reported as refused would make the client send it again
// (a duplicate), and the reverse would lose it.
func TestQueuedWriteAnswersWithItsCommit(t *testing.T) {
	s, g := holdLoop(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	e := testEntry("given up")
	done := make(chan error, 1)
	go func() { done <- s.Put(ctx, e, []string{"q"}) }()
	waitQueued(t, s, 1)
	cancel()
	close(g.release)
	if err := <-done; err != nil {
		t.Fatalf("put whose caller gave up after it was queued = %v; it was committed", err)
	}
	items, _ := readAll(t, s, "q", 10)
	wantBodies(t, "queue q", items, "first", "given up")
}

// One write that the store refuses inside a shared transaction fails that
// transaction; the others in it are committed all the same, and only the
// refused one says so.
func TestRefusedWriteSparesItsBatch(t *testing.T) {
	// Every queue holds one entry; the two Puts to "small" both pass the
	// early look (it is empty while they queue), so the second is refused
	// inside the transaction, next to the good writes, each to a queue of
	// its own. Bodies are all as long as "first", the held write.
	rec := int64(len(testEntry("first").record()))
	s, g := holdLoop(t, Options{Limits: Limits{MaxQueueBytes: rec}})
	const good = 200
	type result struct {
		body string
		err  error
	}
	results := make(chan result, good+2)
	put := func(body, queue string) {
		results <- result{body, s.Put(context.Background(), testEntry(body), []string{queue})}
	}
	go put("small", "small")
	waitQueued(t, s, 1)
	go put("smal2", "small")
	waitQueued(t, s, 2)
	for i := range good {
		go put(fmt.Sprintf("g%04d", i), fmt.Sprintf("q%03d", i))
	}
	waitQueued(t, s, good+2)
	close(g.release)
	var refused []result
	for range good + 2 {
		if r := <-results; r.err != nil {
			refused = append(refused, r)
		}
	}
	if len(refused) == 0 {
		t.Fatal("nothing refused: the second put to the one-entry queue small was stored")
	}
	if len(refused) != 1 || refused[0].body != "smal2" || !errors.Is(refused[0].err, ErrFull) {
		t.Fatalf("refused %d writes (first: %q: %v), want only smal2, as full", len(refused), refused[0].body, refused[0].err)
	}
	if got := g.transactions(); len(got) < 2 || got[1] != good+2 {
		t.Fatalf("writes per transaction = %v: the writes did not share a transaction, so this test proves nothing", got)
	}
	for i := range good {
		q := fmt.Sprintf("q%03d", i)
		items, _ := readAll(t, s, q, 10)
		wantBodies(t, "queue "+q, items, fmt.Sprintf("g%04d", i))
	}
	small, _ := readAll(t, s, "small", 10)
	wantBodies(t, "queue small", small, "small")
}
