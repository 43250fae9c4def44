package daemon

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaskedValue replaces a secret in the printed configuration. It is still
// a valid value, so the output loads as a config file.
const MaskedValue = "<masked>"

// MaskedYAML renders cfg as YAML, as `pyrorelay config check` prints it:
// every field, with every secret masked (see maskSecrets), still loadable
// as a config file.
func MaskedYAML(cfg Config) ([]byte, error) {
	var doc yaml.Node
	if err := doc.Encode(cfg); err != nil {
		return nil, fmt.Errorf("render configuration: %w", err)
	}
	maskSecrets(&doc)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("render configuration: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("render configuration: %w", err)
	}
	return buf.Bytes(), nil
}

// maskSecrets walks the rendered configuration and masks by key name, not
// by Go field, so a secret added to Config later is masked without anyone
// remembering to come here: any key naming a password, token, secret or
// key (but not a file or path holding one), the values of credential
// headers, and passwords inside URLs.
func maskSecrets(n *yaml.Node) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			maskSecrets(c)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			switch {
			case isSecretKey(k.Value):
				maskAll(v)
			case k.Value == "headers" && v.Kind == yaml.MappingNode:
				for j := 0; j+1 < len(v.Content); j += 2 {
					if isSecretHeader(v.Content[j].Value) {
						maskAll(v.Content[j+1])
					}
				}
			default:
				maskSecrets(v)
			}
		}
	case yaml.ScalarNode:
		n.Value = maskURLPassword(n.Value)
	}
}

// maskAll masks every non-empty scalar under n. An empty one stays empty:
// it tells the operator the secret is unset without telling anything else.
func maskAll(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode {
		if n.Value != "" && n.Tag != "!!null" {
			n.Value, n.Tag, n.Style = MaskedValue, "!!str", yaml.DoubleQuotedStyle
		}
		return
	}
	for _, c := range n.Content {
		maskAll(c)
	}
}

// isSecretKey says whether a config key holds a secret itself. Keys of
// files and paths are shown: the path is what the operator needs to check.
func isSecretKey(key string) bool {
	k := strings.ToLower(key)
	if strings.HasSuffix(k, "_file") || strings.HasSuffix(k, "_files") || strings.HasSuffix(k, "_path") || strings.HasSuffix(k, "_dir") {
		return false
	}
	for _, s := range []string{"password", "passwd", "secret", "token", "api_key", "apikey", "private_key", "credential"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// isSecretHeader says whether an HTTP header carries credentials.
func isSecretHeader(name string) bool {
	h := strings.ToLower(name)
	switch h {
	case "authorization", "proxy-authorization", "cookie":
		return true
	}
	for _, s := range []string{"token", "secret", "key", "auth", "password", "credential", "session"} {
		if strings.Contains(h, s) {
			return true
		}
	}
	return false
}

// maskURLPassword masks the password of a URL with user information
// (https://user:pass@host) the way net/url does, as "xxxxx", so the URL
// still parses; every other string is left as it is.
func maskURLPassword(s string) string {
	if !strings.Contains(s, "://") || !strings.Contains(s, "@") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, has := u.User.Password(); has {
		return u.Redacted()
	}
	return s
}
