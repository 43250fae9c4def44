package daemon

// The config file: YAML whose keys are the flag names with underscores,
// decoded over the defaults. The checks of its keys are in configkeys.go,
// the ${NAME} expansion in configenv.go, the error messages in yamlerr.go.

import (
	"fmt"
	"os"
	"reflect"

	"gopkg.in/yaml.v3"
)

// LoadConfigFile reads the YAML config file at path over cfg (the
// defaults, usually). Unknown keys are
// errors, so a typo never silently falls back to a default; ${NAME} in a
// value is the environment variable NAME (configenv.go).
func LoadConfigFile(path string, cfg *Config) error {
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
	if err := checkKeys(&root, reflect.TypeFor[Config](), ""); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if err := root.Decode(cfg); err != nil {
		return fmt.Errorf("config %s: %w", path, withKeyPaths(err, b))
	}
	return nil
}
