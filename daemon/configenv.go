package daemon

import (
	"fmt"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// envRefRE is one ${NAME} or ${NAME:-default} reference.
var envRefRE = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expandEnv replaces, in every scalar value of the document (never in a
// key), ${NAME} by the environment variable NAME and ${NAME:-default} by
// NAME or, when it is unset or empty, default; $$ is a literal $, and a $
// before anything else stays as it is. An unset variable without a default
// is an error naming it and its line: a secret that is missing must stop
// the start, not send an empty password. Expanding the parsed values, not
// the text, means a value can hold any character (#, :, quotes) without
// changing the YAML around it.
func expandEnv(n *yaml.Node, lookup func(string) (string, bool)) error {
	switch n.Kind {
	case yaml.ScalarNode:
		v, err := expandValue(n.Value, lookup)
		if err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		if v != n.Value {
			n.Value = v
			// A plain scalar is typed after expansion ("${PORT}" may be
			// a number); a quoted one stays a string.
			if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
				n.Tag = ""
			}
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			if err := expandEnv(n.Content[i], lookup); err != nil {
				return err
			}
		}
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			if err := expandEnv(c, lookup); err != nil {
				return err
			}
		}
	}
	return nil
}

func expandValue(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '$' {
			b.WriteByte(s[i])
			i++
			continue
		}
		rest := s[i:]
		switch {
		case strings.HasPrefix(rest, "$$"):
			b.WriteByte('$')
			i += 2
		case strings.HasPrefix(rest, "${"):
			m := envRefRE.FindStringSubmatch(rest)
			if m == nil {
				end := min(len(rest), 24)
				return "", fmt.Errorf("%q is not ${NAME} or ${NAME:-default} (write $${ for a literal ${)", rest[:end])
			}
			v, ok := lookup(m[1])
			switch {
			case m[2] != "" && v == "":
				v = m[3]
			case !ok:
				return "", fmt.Errorf("environment variable %s is not set (write ${%s:-default} to give a default)", m[1], m[1])
			}
			b.WriteString(v)
			i += len(m[0])
		default:
			b.WriteByte('$')
			i++
		}
	}
	return b.String(), nil
}

// osLookup is the process environment.
var osLookup = os.LookupEnv
