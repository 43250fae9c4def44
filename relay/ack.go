package relay

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/pyrorelay/pyrorelay/store"
)

// maxAckBatch caps the positions one Ack commits; it is also how many
// delivered positions may wait for a commit before workers wait too.
const maxAckBatch = 256

// ackRetryInterval is the wait before an ack that failed to commit is
// tried again. A variable so that tests can shorten it.
var ackRetryInterval = time.Second

// acker commits one destination's acks in batches. A worker that delivered
// an entry hands the position over and goes on to its next entry: waiting
// for a commit of its own per entry would cap a destination at workers /
// commit latency deliveries per second, however fast it answered.
//
// What is on disk means what it did: an entry leaves its queue when its
// ack commits, and one delivered but not yet acked at a crash is sent
// again (at-least-once). The forwarder's cursor is already past a handed
// over position, so the queue is not re-read for it meanwhile.
type acker struct {
	queue Queue
	name  string
	log   *slog.Logger
	seqs  chan uint64
	done  chan struct{}
}

func newAcker(q Queue, name string, log *slog.Logger) *acker {
	a := &acker{queue: q, name: name, log: log, seqs: make(chan uint64, maxAckBatch), done: make(chan struct{})}
	go a.run()
	return a
}

// ack queues the position of a delivered entry for the next commit.
func (a *acker) ack(seq uint64) { a.seqs <- seq }

// close commits what is pending and returns once it is durable; call it
// after the last ack.
func (a *acker) close() {
	close(a.seqs)
	<-a.done
}

func (a *acker) run() {
	defer close(a.done)
	batch := make([]uint64, 0, maxAckBatch)
	open := true // a.seqs is not closed yet
	for {
		if len(batch) == 0 {
			seq, ok := <-a.seqs
			if !ok {
				return
			}
			batch = append(batch, seq)
		}
	fill:
		for open && len(batch) < maxAckBatch {
			select {
			case s, ok := <-a.seqs:
				if !ok {
					open = false
					break fill
				}
				batch = append(batch, s)
			default:
				break fill
			}
		}
		err := a.commit(batch)
		if err == nil {
			batch = batch[:0]
			continue
		}
		a.log.Error("ack delivered entries", "count", len(batch), "first_seq", batch[0], "err", err)
		if !open || errors.Is(err, store.ErrClosed) {
			// Shutting down: the entries stay queued and are sent again
			// after a restart (at-least-once).
			batch = batch[:0]
			continue
		}
		// Keep the batch and try again: the forwarder's cursor is past
		// these positions, so an ack given up on would leave delivered
		// entries in the queue, counted against its limits, until a
		// restart. A full disk (ENOSPC) fails commits until space
		// returns. Meanwhile workers wait once a.seqs is full, which is
		// right: a delivery that cannot be acked is only a future
		// duplicate.
		time.Sleep(ackRetryInterval)
	}
}

// commit makes batch's acks durable. They may wait to share the next
// commit (AckDeferred): a delivered entry needs no commit of its own, as
// until its ack commits a crash only sends it again.
func (a *acker) commit(batch []uint64) error {
	// A context of its own: a delivered entry must be acked even while
	// shutting down, or it is sent again.
	return a.queue.AckDeferred(context.Background(), a.name, batch...)
}
