// Package selection picks stored entries by when they were received and
// which application sent them: the --since, --until and --app of the
// export, import, replay and dead-letter commands, and the since, until
// and app of the admin API's export endpoint.
//
// A [Selection] becomes a [store.Filter] for reading a store, and applies
// itself ([Selection.Matches]) to entries read from an export, where no
// store is there to filter. --app is read with the Pyroscope server's own
// ingest name parser, so `myapp{env=prod}` means what it means to /ingest;
// a Push entry's labels are read off its protobuf with package pushwire.
package selection
