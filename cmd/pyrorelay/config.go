package main

import (
	"fmt"
	"os"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/pyrorelay/pyrorelay/daemon"
	"github.com/pyrorelay/pyrorelay/relay"
)

// loadConfigFile reads a YAML config over the defaults. Unknown keys are
// errors, so a typo never silently falls back to a default; ${NAME} in a
// value is the environment variable NAME (configenv.go).
func loadConfigFile(path string, cfg *daemon.Config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return fmt.Errorf("config %s: %w", path, withSyntaxLine(err, b))
	}
	if root.Kind == 0 {
		return nil // an empty file means "all defaults"
	}
	if err := expandEnv(&root, osLookup); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if err := checkKeys(&root, reflect.TypeFor[daemon.Config](), ""); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if err := root.Decode(cfg); err != nil {
		return fmt.Errorf("config %s: %w", path, withKeyPaths(err, b))
	}
	return nil
}

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
