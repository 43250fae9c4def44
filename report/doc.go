// Package report writes what the operator commands found and did, for
// people, to an io.Writer: the queue status table (the admin API's status
// document; [QueueStatusJSON] prints the document itself), the
// dead-letter table (or its JSON lines), what a salvage copied and lost,
// what a drain delivered and left, and the last lines of compact, export,
// import and replay. It decides the layout only: the commands gather the
// figures.
package report
