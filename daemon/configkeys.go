package daemon

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// misplacedKeys say where a key that is not valid where it stands belongs,
// by path of the key: the mistakes a reader of --help makes.
var misplacedKeys = map[string]string{
	"forward_to": `forward_to is a receiver's list of destination names; the YAML form of --forward-to NAME=URL is "destinations:" with "- name: NAME" and "url: URL"`,
	"forward-to": `the YAML form of --forward-to NAME=URL is "destinations:" with "- name: NAME" and "url: URL"`,
}

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	durationType    = reflect.TypeFor[time.Duration]()
)

// checkKeys refuses a key the configuration has no field for, naming its
// line and path, the closest valid key and, for the usual mistakes, where
// it belongs. yaml.v3's own check names Go types ("not found in type
// daemon.Config"), which says nothing to an operator. On the way it rewrites
// every duration in Go's form, so that durations take days and weeks
// ("7d") as the flags do.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			if err := checkKeys(c, t, path); err != nil {
				return err
			}
		}
		return nil
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil // it checks its own keys
	}
	if t == durationType {
		if d, err := ParseDuration(n.Value); n.Kind == yaml.ScalarNode && err == nil {
			n.Value, n.Tag = d.String(), "!!str"
		}
		return nil // a value that does not parse is yaml.v3's to report
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" {
				continue // a merge key: its mapping is checked where it is defined
			}
			p := joinKey(path, k.Value)
			f, ok := fields[k.Value]
			if !ok {
				return unknownKeyError(k, p, path, fields)
			}
			if err := checkKeys(v, f, p); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, c := range n.Content {
			if err := checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkKeys(n.Content[i+1], t.Elem(), joinKey(path, n.Content[i].Value)); err != nil {
				return err
			}
		}
	}
	return nil
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlFields maps the YAML keys of struct t to their field types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" && opts == "inline" && f.Type.Kind() == reflect.Struct {
			// An inlined struct's keys are its parent's.
			maps.Copy(out, yamlFields(f.Type))
			continue
		}
		switch name {
		case "-":
			continue
		case "":
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func unknownKeyError(k *yaml.Node, path, parent string, fields map[string]reflect.Type) error {
	where := "at the top level"
	if parent != "" {
		where = "in " + parent
	}
	msg := fmt.Sprintf("line %d: %s: unknown key %q %s", k.Line, path, k.Value, where)
	if hint, ok := misplacedKeys[k.Value]; ok {
		return fmt.Errorf("%s: %s", msg, hint)
	}
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	slices.Sort(names)
	if s := closest(k.Value, names); s != "" {
		return fmt.Errorf("%s: did you mean %q?", msg, s)
	}
	return fmt.Errorf("%s: the keys here are %s", msg, strings.Join(names, ", "))
}

// closest is the candidate nearest to s in edit distance, if it is near
// enough to be a typo.
func closest(s string, candidates []string) string {
	best, bestD := "", len(s)/3+2
	for _, c := range candidates {
		if d := editDistance(strings.ReplaceAll(s, "-", "_"), c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
