package main

import (
	"fmt"
	"strings"

	"github.com/pyrorelay/pyrorelay/daemon"
	"github.com/pyrorelay/pyrorelay/relay"
)

// parseForwardTo reads a --forward-to value, NAME=URL.
func parseForwardTo(v string) (relay.Destination, error) {
	name, url, ok := strings.Cut(v, "=")
	if !ok || name == "" || url == "" {
		return relay.Destination{}, fmt.Errorf("--forward-to %q: want NAME=URL, for example prod=https://profiles.example.com", relay.RedactURL(v))
	}
	return relay.Destination{Name: name, URL: url}, nil
}

// overrideDestination adds d, a --forward-to destination, to ds, or puts
// it in place of the file's destination of the same name: the flag says
// everything about it, so nothing of the file's (credentials included,
// which must not go to a new URL) is kept.
func overrideDestination(ds []relay.Destination, d relay.Destination) []relay.Destination {
	for i := range ds {
		if ds[i].Name == d.Name {
			ds[i] = d
			return ds
		}
	}
	return append(ds, d)
}

// parseByteSize reads a size flag; daemon.ParseByteSize says how.
func parseByteSize(s string) (daemon.ByteSize, error) { return daemon.ParseByteSize(s) }

// loadConfigFile reads the YAML config at path over cfg
// (daemon.LoadConfigFile).
func loadConfigFile(path string, cfg *daemon.Config) error { return daemon.LoadConfigFile(path, cfg) }
