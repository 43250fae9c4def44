package relay

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Secrets (passwords, tokens, header values) never reach a log line, a
// metric, an error message or a dead-letter reason. The types that hold
// them describe themselves with the secrets masked, so printing or logging
// one by mistake shows the mask; and what a destination answers is scrubbed
// of the destination's own secrets before it is kept, because a server or a
// proxy in front of it may echo the request's headers in an error.

// Redacted replaces a secret wherever one would be shown.
const Redacted = "<redacted>"

// minSecretLen is the shortest value scrubbed from a destination's answers:
// replacing every "a" or "12" would garble a reason without protecting
// anything a guess would not find.
const minSecretLen = 4

var (
	userinfoRE = regexp.MustCompile(`//[^/?#\s]*@`)
	// bareUserinfoRE is user:password@ at the start of a word, a URL
	// written without its scheme.
	bareUserinfoRE = regexp.MustCompile(`(^|[\s"'=(])[^\s"'=(/@]+:[^\s"'/@]*@`)
)

// RedactURL masks the user information of every URL in s
// (https://user:password@host becomes https://<redacted>@host, and so does
// a URL without its scheme, user:password@host), whether or not s parses as
// a URL, so it is safe on malformed input too.
func RedactURL(s string) string {
	s = userinfoRE.ReplaceAllString(s, "//"+Redacted+"@")
	return bareUserinfoRE.ReplaceAllString(s, "${1}"+Redacted+"@")
}

// String masks the password.
func (b BasicAuth) String() string {
	return fmt.Sprintf("{username: %s, password: %s}", b.Username, mask(b.Password))
}

// GoString masks the password in %#v too.
func (b BasicAuth) GoString() string { return "relay.BasicAuth" + b.String() }

// LogValue masks the password in log lines. It has a pointer receiver so
// that a nil *BasicAuth logs as empty instead of panicking; a BasicAuth
// value logs through String.
func (b *BasicAuth) LogValue() slog.Value {
	if b == nil {
		return slog.GroupValue()
	}
	return slog.GroupValue(slog.String("username", b.Username), slog.String("password", mask(b.Password)))
}

// MarshalJSON masks the password: a JSON log handler or an /api answer
// that encodes a BasicAuth shows the mask.
func (b BasicAuth) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"username": b.Username, "password": mask(b.Password)})
}

// UnmarshalYAML decodes a basic_auth mapping, and refuses anything else
// without quoting it: yaml.v3 would quote the start of a scalar in its
// error, and `basic_auth: user:password` is an easy mistake to make.
func (b *BasicAuth) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: basic_auth must be a mapping {username: ..., password: ...}", n.Line)
	}
	var out BasicAuth
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind != yaml.ScalarNode {
			return fmt.Errorf("line %d: basic_auth.%s must be a string", v.Line, k.Value)
		}
		switch k.Value {
		case "username":
			out.Username = v.Value
		case "password":
			out.Password = v.Value
		case "password_file":
			out.PasswordFile = v.Value
		default:
			return fmt.Errorf("line %d: basic_auth: unknown field %q: want username and password (or password_file)", k.Line, k.Value)
		}
	}
	*b = out
	return nil
}

// String describes d with its secrets masked: the password, the bearer
// token, every header value and any user information in the URL.
func (d Destination) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", d.Name, RedactURL(d.URL))
	if a := d.authKind(); a != "" {
		fmt.Fprintf(&b, " auth=%s", a)
	}
	if d.TenantID != "" {
		fmt.Fprintf(&b, " tenant_id=%s", d.TenantID)
	}
	if len(d.Headers) > 0 {
		fmt.Fprintf(&b, " headers=%v", headerNames(d.Headers))
	}
	return b.String()
}

// GoString masks the secrets in %#v too.
func (d Destination) GoString() string { return "relay.Destination{" + d.String() + "}" }

// LogValue logs d without its secrets.
func (d Destination) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("name", d.Name), slog.String("url", RedactURL(d.URL))}
	if a := d.authKind(); a != "" {
		attrs = append(attrs, slog.String("auth", a))
	}
	if d.TenantID != "" {
		attrs = append(attrs, slog.String("tenant_id", d.TenantID))
	}
	if len(d.Headers) > 0 {
		attrs = append(attrs, slog.Any("headers", headerNames(d.Headers)))
	}
	return slog.GroupValue(attrs...)
}

// MarshalJSON encodes what LogValue shows: a JSON log handler or an /api
// answer that encodes a Destination (or a slice of them) shows no secret.
func (d Destination) MarshalJSON() ([]byte, error) {
	m := map[string]any{"name": d.Name, "url": RedactURL(d.URL)}
	if a := d.authKind(); a != "" {
		m["auth"] = a
	}
	if d.TenantID != "" {
		m["tenant_id"] = d.TenantID
	}
	if len(d.Headers) > 0 {
		m["headers"] = headerNames(d.Headers)
	}
	return json.Marshal(m)
}

// authKind names the credentials d sends, without them.
func (d Destination) authKind() string {
	switch {
	case d.BasicAuth != nil:
		return "basic(" + d.BasicAuth.Username + ")"
	case d.BearerToken != "":
		return "bearer"
	case d.BearerTokenFile != "":
		return "bearer_token_file(" + d.BearerTokenFile + ")"
	}
	return ""
}

func headerNames(h map[string]string) []string {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

func mask(s string) string {
	if s == "" {
		return ""
	}
	return Redacted
}

// authHeaderRE is an echoed Authorization header's credentials, whoever
// sent them: scrubbed even when they are none of d's known secrets (a
// proxy's, or d's in a form not listed below).
var authHeaderRE = regexp.MustCompile(`(?i)(authorization\W{0,4}(?:basic|bearer)\s+)[^\s"',;]+`)

// redact removes d's secrets from s, a reason built from what the
// destination answered, in every form they take on the wire: the
// password of basic_auth or of the URL's user information (as written, as
// percent-decoded, and inside the base64 of an Authorization header), the
// bearer token, header values (and the credentials of a "Scheme value"
// header), and any echoed Authorization header.
func (d Destination) redact(s string) string {
	if s == "" {
		return s
	}
	var secrets []string
	basic := func(user, pass string) {
		cred := []byte(user + ":" + pass)
		secrets = append(secrets, pass,
			base64.StdEncoding.EncodeToString(cred), base64.RawStdEncoding.EncodeToString(cred),
			base64.URLEncoding.EncodeToString(cred), base64.RawURLEncoding.EncodeToString(cred))
	}
	if d.BasicAuth != nil {
		basic(d.BasicAuth.Username, d.BasicAuth.Password)
	}
	if u, err := url.Parse(d.URL); err == nil && u.User != nil {
		if pass, ok := u.User.Password(); ok {
			basic(u.User.Username(), pass)
			// As written in the URL, percent-encoded.
			if _, raw, ok := strings.Cut(u.User.String(), ":"); ok {
				secrets = append(secrets, raw)
			}
		}
	}
	secrets = append(secrets, d.BearerToken)
	if d.BearerTokenFile != "" {
		// Read again: the token may have been rotated since the request.
		if tok, err := os.ReadFile(d.BearerTokenFile); err == nil {
			secrets = append(secrets, strings.TrimSpace(string(tok)))
		}
	}
	for _, v := range d.Headers {
		secrets = append(secrets, v)
		if _, cred, ok := strings.Cut(strings.TrimSpace(v), " "); ok {
			secrets = append(secrets, strings.TrimSpace(cred))
		}
	}
	// Longest first, so that a secret containing another is masked whole.
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	for _, sec := range secrets {
		if len(sec) >= minSecretLen {
			s = strings.ReplaceAll(s, sec, Redacted)
		}
	}
	s = authHeaderRE.ReplaceAllString(s, "${1}"+Redacted)
	return RedactURL(s)
}
