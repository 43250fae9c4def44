package relay

import (
	"context"
	"log/slog"
)

// maxAckBatch caps the positions one Ack commits; it is also how many
// delivered positions may wait for a commit before workers wait too.
const maxAckBatch = 256

// acker commits one destination's acks in batches. A worker that delivered
// an entry hands the position over and goes on to its next entry. Waiting
// for a commit of its own per entry, as workers did, capped a destination
// at workers / commit latency deliveries per second (about 400/s with 4
// workers behind busy 10 ms commits), however fast it answered.
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
	for seq := range a.seqs {
		batch = append(batch[:0], seq)
	fill:
		for len(batch) < maxAckBatch {
			select {
			case s, ok := <-a.seqs:
				if !ok {
					break fill
				}
				batch = append(batch, s)
			default:
				break fill
			}
		}
		// A context of its own: a delivered entry must be acked even
		// while shutting down, or it is sent again.
		if err := a.queue.Ack(context.Background(), a.name, batch...); err != nil {
			a.log.Error("ack delivered entries", "count", len(batch), "first_seq", batch[0], "err", err)
		}
	}
}
