// Package daemon is the running relay: it opens the store, starts a
// forwarder per destination and a receiver (an HTTP listener) per
// configured receiver, wires their metrics, and changes them in place when
// the configuration is reloaded. It is what `pyrorelay serve` runs; the
// binary keeps only flag and YAML parsing, subcommand wiring and printing.
//
// The name says what it is, a long-running process made of parts that
// other packages provide: relay (the forwarders), httpserver (the
// receivers' handlers), store (the durable queues) and route (which
// destinations a profile goes to). "relay" is taken by the forwarders.
//
// The API is small: New checks a Config and returns a Daemon; Run serves
// until its context ends and shuts down in order (receivers finish the
// requests in progress, forwarders finish their attempts in flight, the
// store closes); Reload applies a new Config to the running relay; Addrs
// and Ready say what serves.
//
// Files, one concept each:
//
//   - config.go: Config, its defaults and checks, ByteSize.
//   - logger.go: the logger log_level and log_format ask for.
//   - configmask.go: MaskedYAML, the Config as YAML with its secrets
//     masked (`pyrorelay config check`).
//   - receivers.go: Receiver, the listeners of the configuration.
//   - requestlimits.go: RequestLimits, the per-request resource bounds.
//   - access.go: inbound auth and listener TLS.
//   - daemon.go: Daemon, New, Run, Reload; the start and shutdown order.
//   - running.go: the receivers and forwarders that run, by name.
//   - reload.go: the reload diff (what starts, stops, restarts, re-routes).
//   - reloader.go: reloads on SIGHUP and POST /-/reload, one at a time.
//   - held.go: what a store-only relay kept, queued for its destinations.
//   - archive.go: the archive settings' check, the archive sweeper and
//     the orphan-queue metric.
//   - drain.go: Drain, the forwarders without receivers (`pyrorelay
//     drain`).
//   - metrics.go, droplog.go: store metrics; drop lines, rate-limited.
//   - selfprofile.go: the relay profiling itself into its own queues.
package daemon
