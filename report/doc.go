// Package report writes what the operator commands found and did, for
// people, to an io.Writer: the queue status table (the admin API's status
// document), the dead-letter table, what a salvage copied and lost, what a
// drain delivered and left, and the one-line summaries of compact, export,
// import and replay. It decides the layout only: the commands gather the
// figures, and --json forms print the documents themselves.
package report
