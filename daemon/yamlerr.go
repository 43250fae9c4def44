package daemon

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"
)

// yamlLineRE finds the "line N: " prefixes yaml.v3 (and our own
// unmarshalers) put in front of each decoding error.
var yamlLineRE = regexp.MustCompile(`line (\d+): `)

// keyPathError is a YAML decoding error whose "line N:" prefixes were
// completed with the key path on that line.
type keyPathError struct {
	msg string
	err error
}

func (e *keyPathError) Error() string { return e.msg }
func (e *keyPathError) Unwrap() error { return e.err }

// withKeyPaths names the field of each "line N:" in err. yaml.v3 reports a
// bad value as "line 4: cannot unmarshal !!str `5 parsecs` into
// time.Duration", which leaves the operator to count lines; this makes it
// "line 4: destinations[0].timeout: cannot unmarshal ...".
func withKeyPaths(err error, src []byte) error {
	paths := yamlKeyPaths(src)
	if len(paths) == 0 {
		return err
	}
	msg := yamlLineRE.ReplaceAllStringFunc(err.Error(), func(m string) string {
		n, convErr := strconv.Atoi(yamlLineRE.FindStringSubmatch(m)[1])
		if p, ok := paths[n]; ok && convErr == nil {
			return m + p + ": "
		}
		return m
	})
	return &keyPathError{msg: msg, err: err}
}

// yamlKeyPaths maps each line of a YAML document to the path of the
// innermost key on it, such as "destinations[0].timeout". A document that
// does not parse maps nothing.
func yamlKeyPaths(src []byte) map[int]string {
	var root yaml.Node
	if yaml.Unmarshal(src, &root) != nil {
		return nil
	}
	paths := map[int]string{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				paths[k.Line] = p
				if v.Kind == yaml.ScalarNode {
					paths[v.Line] = p
				}
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
	walk(&root, "")
	return paths
}

// withSyntaxLine corrects the line of a YAML syntax error. yaml.v3 reports
// the line where the enclosing block starts, not the line at fault: a
// mis-indented key on line 4 of a list begun on line 2 is "line 2: did not
// find expected '-' indicator". The line at fault is the first one at or
// after the reported line whose document, cut after it, no longer parses.
func withSyntaxLine(err error, src []byte) error {
	m := yamlLineRE.FindStringSubmatchIndex(err.Error())
	if m == nil {
		return err
	}
	msg := err.Error()
	reported, convErr := strconv.Atoi(msg[m[2]:m[3]])
	if convErr != nil {
		return err
	}
	lines := bytes.SplitAfter(src, []byte("\n"))
	for n := reported; n <= len(lines); n++ {
		var probe yaml.Node
		if yaml.Unmarshal(bytes.Join(lines[:n], nil), &probe) == nil {
			continue
		}
		if n == reported {
			return err
		}
		return &keyPathError{
			msg: fmt.Sprintf("%sline %d: %s (in the block that starts on line %d; check the indentation)", msg[:m[0]], n, msg[m[1]:], reported),
			err: err,
		}
	}
	return err
}
