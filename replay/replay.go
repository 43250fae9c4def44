package replay

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/pyrorelay/pyrorelay/progress"
	"github.com/pyrorelay/pyrorelay/relay"
	"github.com/pyrorelay/pyrorelay/selection"
	"github.com/pyrorelay/pyrorelay/store"
)

// Item is one entry on its way to the destination.
type Item struct {
	Entry *store.Entry
	// Pos is the entry's position in its queue, to ack it by.
	Pos  uint64
	Size int64
	// Name says which entry it is in messages: its id, and where in an
	// export it was read.
	Name string
}

// A Source feeds the items to send to fn, oldest first, and stops at the
// first error fn returns, returning it.
type Source func(fn func(Item) error) error

// Sender sends one entry, retrying as its policy says; *relay.Sender is one.
type Sender interface {
	Send(ctx context.Context, e *store.Entry) relay.SendResult
}

// Options say how Run sends.
type Options struct {
	Sender Sender
	// Concurrency is the number of requests in flight (at least 1; 1
	// keeps the order exactly).
	Concurrency int
	// Rate is the most entries sent per second; 0 does not pace.
	Rate float64
	// Ack, if set, removes a delivered entry from its queue.
	Ack func(pos uint64) error
	// Progress counts each delivered entry and each refused one.
	Progress *progress.Progress
	// Errors gets a line for each entry that was refused, and for each
	// delivered one that Ack could not remove.
	Errors io.Writer
}

// Result is what became of a replay's entries beyond the counts of its
// Progress.
type Result struct {
	// FirstFailure is the reason the first refused entry was refused.
	FirstFailure string
	// FeedErr is the error that stopped the Source, if any (ctx's error
	// when the replay was interrupted).
	FeedErr error
}

// Run sends every item of src with opts.Sender until src ends or ctx
// does. An entry interrupted by ctx stays where it was; one refused for
// good (permanent, poison) is reported on opts.Errors and counted as
// failed. Run returns when every request it started has ended.
func Run(ctx context.Context, src Source, opts Options) Result {
	conc := max(opts.Concurrency, 1)
	pace := newPacer(opts.Rate)
	work := make(chan Item, conc)
	var wg sync.WaitGroup
	var failMu sync.Mutex
	var res Result
	sendCtx, cancelSend := context.WithCancel(ctx)
	defer cancelSend()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				sent := opts.Sender.Send(sendCtx, it.Entry)
				switch sent.Fate {
				case relay.FateDelivered:
					if opts.Ack != nil {
						if err := opts.Ack(it.Pos); err != nil {
							fmt.Fprintf(opts.Errors, "%s was delivered but stays queued: %v\n", it.Name, err)
						}
					}
					opts.Progress.Add(it.Size)
				case relay.FateAbandoned:
					// Interrupted: it stays where it was.
				default:
					opts.Progress.Fail()
					failMu.Lock()
					if res.FirstFailure == "" {
						res.FirstFailure = sent.Outcome.Reason
					}
					failMu.Unlock()
					fmt.Fprintf(opts.Errors, "%s (received %s) not sent: %s after %d attempts: %s\n",
						it.Name, it.Entry.ReceivedAt.UTC().Format(time.RFC3339), sent.Fate, sent.Attempts, sent.Outcome.Reason)
				}
			}
		}()
	}
	res.FeedErr = src(func(it Item) error {
		if err := pace.wait(sendCtx); err != nil {
			return err
		}
		select {
		case work <- it:
			return nil
		case <-sendCtx.Done():
			return sendCtx.Err()
		}
	})
	close(work)
	wg.Wait()
	return res
}

// DryRun writes to w what a replay of src would send, one line an entry,
// and a summary: from what (what), to where (to, "" when not given, its
// credentials redacted), and the selection that picked them.
func DryRun(w io.Writer, src Source, what, to string, sel selection.Selection) error {
	n, bytes := 0, int64(0)
	err := src(func(it Item) error {
		n++
		bytes += it.Size
		fmt.Fprintf(w, "would send %s: %s, received %s, %s, %s\n", it.Name, it.Entry.Kind,
			it.Entry.ReceivedAt.UTC().Format(time.RFC3339), selection.AppOf(it.Entry), progress.Bytes(it.Size))
		return nil
	})
	if err != nil {
		return err
	}
	if to == "" {
		to = "--to"
	}
	fmt.Fprintf(w, "dry run: would send %d entries (%s) from %s to %s%s\n", n, progress.Bytes(bytes), what, to, sel.Describe())
	return nil
}

// Err is what a replay that ended with res fails with, if anything:
// interrupted (ctx ended), its Source failed, or entries were refused by
// the destination to (its credentials redacted). sent and failed are its
// Progress counts; retrying says why the destination was being retried
// last (RetryWatch.Last), "" if it was not.
func (res Result) Err(ctx context.Context, sent, failed int, to, retrying string) error {
	switch {
	case ctx.Err() != nil:
		if retrying != "" {
			retrying = " (" + retrying + ")"
		}
		return fmt.Errorf("replay interrupted after %d entries%s: nothing was lost; run it again (with --since, or from the queue, which only holds what was not delivered)", sent, retrying)
	case res.FeedErr != nil:
		return fmt.Errorf("replay stopped after %d entries: %w", sent, res.FeedErr)
	case failed > 0:
		return fmt.Errorf("%d entries were refused by %s (first: %s): see the lines above; fix the cause and replay them again", failed, to, res.FirstFailure)
	}
	return nil
}
