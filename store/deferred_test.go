package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// putAndRead puts one entry on queue "a" and returns its position.
func putAndRead(t *testing.T, s *Store, body string) uint64 {
	t.Helper()
	e := mustPut(t, s, body, "a")
	items, _, err := s.ReadBatch(context.Background(), "a", 0, 1000, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.Entry.ID == e.ID {
			return it.Seq
		}
	}
	t.Fatalf("entry %d not in queue a", e.ID)
	return 0
}

// ackDeferred runs AckDeferred in the background and returns its answer.
func ackDeferred(s *Store, seq uint64) <-chan error {
	done := make(chan error, 1)
	go func() { done <- s.AckDeferred(context.Background(), "a", seq) }()
	return done
}

func answered(t *testing.T, what string, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: no answer", what)
	}
}

func isQueued(t *testing.T, s *Store, seq uint64) bool {
	t.Helper()
	ok, err := s.Queued("a", seq)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestAckDeferredSharesTheNextCommit: a deferred ack made while puts come
// in waits for the next put and commits with it, in one transaction.
func TestAckDeferredSharesTheNextCommit(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{deferredWait: time.Hour})
	seq := putAndRead(t, s, "first")
	done := ackDeferred(s, seq)
	waitFor(t, "the commit loop to hold the deferred ack", func() bool { return s.deferredHeld.Load() == 1 })
	c0, w0 := s.CommitCounts()
	mustPut(t, s, "second", "a")
	answered(t, "deferred ack", done)
	c1, w1 := s.CommitCounts()
	if c1-c0 != 1 || w1-w0 != 2 {
		t.Errorf("the put and the deferred ack took %d commits for %d writes, want 1 for 2", c1-c0, w1-w0)
	}
	if isQueued(t, s, seq) {
		t.Error("acked position still queued")
	}
}

// TestAckDeferredAtOnceWhenNoWrites: with no write committed lately (a
// relay that only drains), a deferred ack commits at once.
func TestAckDeferredAtOnceWhenNoWrites(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	seq := putAndRead(t, s, "first")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, Options{deferredWait: time.Hour})
	answered(t, "deferred ack on an idle store", ackDeferred(s, seq))
	if isQueued(t, s, seq) {
		t.Error("acked position still queued")
	}
}

// TestAckDeferredCommittedAtClose: Close commits a deferred ack that
// waits for company, and the ack is durable.
func TestAckDeferredCommittedAtClose(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{deferredWait: time.Hour})
	seq := putAndRead(t, s, "first")
	done := ackDeferred(s, seq)
	waitFor(t, "the commit loop to hold the deferred ack", func() bool { return s.deferredHeld.Load() == 1 })
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	answered(t, "deferred ack at close", done)
	answered(t, "close", closed)
	s = openStore(t, filepath.Dir(s.Path()), Options{})
	if isQueued(t, s, seq) {
		t.Error("position acked before close still queued after a restart")
	}
}

// TestAckDeferredWaitEnds: a deferred ack that no write joins commits
// once the wait is over.
func TestAckDeferredWaitEnds(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{deferredWait: 20 * time.Millisecond})
	seq := putAndRead(t, s, "first")
	answered(t, "deferred ack alone", ackDeferred(s, seq))
	if isQueued(t, s, seq) {
		t.Error("acked position still queued")
	}
}
