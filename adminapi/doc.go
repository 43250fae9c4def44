// Package adminapi is both ends of the admin API the reading operator
// commands use against a running relay, whose data dir is locked while it
// runs: [ExportHandler], the relay's GET /api/v1/export (the entries of a
// queue, dead-letter list or the archive as the ndjson of package
// exportfile, ended by [ExportCompleteTrailer]), and [Client], which
// `queue status --url`, `export --url` and `dead-letter list --url` ask
// it with ([Client.Status], [Client.Export], [Client.DeadLetters]),
// turning each refusal into a message saying what to do and checking
// that an export arrived whole ([ErrIncomplete]).
package adminapi
