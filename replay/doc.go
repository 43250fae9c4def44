// Package replay is the engine of `pyrorelay replay`: it sends entries,
// read from a stopped relay's queue, dead letters or archive or from an
// export, to a destination with the relay's own sender (its retry policy,
// Retry-After and poison cap), paced to a rate, with a number of requests
// in flight, counting each entry's fate on a [progress.Progress].
//
// [Open] opens what --from and the source flags name (a data dir, an
// export directory, ndjson on stdin) as an [Input], whose [Source] feeds
// the entries ([FromStore], [FromExport]); [Destination] is the
// destination --to names, with the flags' adjustments; [Run] sends the
// entries and says what became of them ([Result.Err] the error a replay
// ends with); [DryRun] lists what would be sent.
// Delivered entries of a queue are acked (removed) when the caller asks
// for it; entries that are refused are reported one a line and stay where
// they were. [NewSender] is the sender a replay sends with: relay's, whose
// [RetryWatch] lets the progress line show why a destination is being
// retried.
package replay
