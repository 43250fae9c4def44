package httpserver

import (
	"errors"
	"fmt"
	"mime"
	"net/url"
	"strings"

	"github.com/grafana/pyroscope/api/model/labelset"
)

// InputError is a request the relay refuses before storing anything.
type InputError struct {
	Status int
	Reason string
}

func (e *InputError) Error() string { return e.Reason }

func badRequest(format string, args ...any) *InputError {
	return &InputError{Status: 400, Reason: fmt.Sprintf(format, args...)}
}

// formats are the /ingest formats the Pyroscope server knows. The server
// parses any other value as folded text; we refuse it, so that a typo fails
// here with a reason instead of landing as garbage.
var formats = map[string]bool{
	"": true, "folded": true, "collapsed": true, "groups": true, "lines": true,
	"trie": true, "tree": true, "pprof": true, "jfr": true, "speedscope": true,
}

// textFormats take their profile type from the last dot segment of the
// application name, unless the body is parsed otherwise (see parsedAsText).
var textFormats = map[string]bool{
	"": true, "folded": true, "collapsed": true, "groups": true, "lines": true, "trie": true, "tree": true,
}

// profileTypes are the name suffixes the server maps to a profile type for
// text formats; any other suffix is refused by the server.
var profileTypes = map[string]bool{
	"cpu": true, "wall": true, "itimer": true,
	"inuse_objects": true, "inuse_space": true, "alloc_objects": true, "alloc_space": true,
	"goroutines": true, "mutex_count": true, "mutex_duration": true, "block_count": true, "block_duration": true,
	"lock_count": true, "lock_duration": true, "live": true,
	"alloc_in_new_tlab_objects": true, "alloc_in_new_tlab_bytes": true,
	"alloc_outside_tlab_objects": true, "alloc_outside_tlab_bytes": true,
	"exceptions": true, "bytes": true,
	"seconds": true, "milliseconds": true, "microseconds": true, "nanoseconds": true,
}

// ValidateIngest checks what can be checked of an /ingest request without
// reading its body: the name, the format and the Content-Type. It is cheap on
// purpose; parsing profiles is the destination's job.
func ValidateIngest(query url.Values, contentType string) error {
	if err := ValidateName(query.Get("name")); err != nil {
		return err
	}
	format := query.Get("format")
	if !formats[format] {
		return badRequest("unknown format %q: use pprof, jfr, speedscope, trie, tree, lines or folded", format)
	}
	if parsedAsText(format, contentType) {
		if err := validateProfileType(query.Get("name")); err != nil {
			return err
		}
	}
	// The server reads the Content-Type only to recognise a multipart
	// upload (and trie and tree bodies, by exact value); any other
	// Content-Type, however loosely written, it ignores.
	if isMultipart(contentType) {
		_, params, err := mime.ParseMediaType(contentType)
		if err != nil {
			return badRequest("unparseable multipart Content-Type %q: %v", contentType, err)
		}
		if params["boundary"] == "" {
			return badRequest("multipart Content-Type %q has no boundary", contentType)
		}
	}
	return nil
}

// ValidateName checks an /ingest name, `app.name{label=value,...}`, with the
// Pyroscope server's own parser.
func ValidateName(name string) error {
	if name == "" {
		return badRequest("name is required: name=app.cpu{label=value}")
	}
	ls, err := labelset.Parse(name)
	if err != nil {
		return badRequest("bad name %q: %v", name, err)
	}
	if err := labelset.ValidateLabelSet(ls); err != nil {
		return badRequest("bad name %q: %v", name, err)
	}
	if ls.ServiceName() == "" {
		return badRequest("bad name %q: the application name is empty", name)
	}
	return nil
}

// parsedAsText reports whether the server parses the body as a text format,
// which takes its profile type from the name. It follows the server's order:
// trie and tree (by format or Content-Type) and lines win over everything,
// then the formats that carry their own types, then a multipart body (a
// pprof upload), then folded text.
func parsedAsText(format, contentType string) bool {
	switch {
	case format == "trie" || format == "tree" || format == "lines",
		contentType == "binary/octet-stream+trie" || contentType == "binary/octet-stream+tree":
		return true
	case !textFormats[format]:
		return false
	default:
		return !isMultipart(contentType)
	}
}

// isMultipart is the server's test for a multipart upload: the
// Content-Type contains multipart/form-data, as written.
func isMultipart(contentType string) bool {
	return strings.Contains(contentType, "multipart/form-data")
}

func validateProfileType(name string) error {
	app, _, _ := strings.Cut(name, "{")
	// The name parser trims the application name; so must we, or
	// "app.cpu {x=y}" would have the type "cpu ".
	app = strings.TrimSpace(app)
	i := strings.LastIndexByte(app, '.')
	if i < 0 {
		return nil // no suffix means cpu
	}
	if t := app[i+1:]; !profileTypes[t] {
		return badRequest("unknown profile type %q in name %q: end the application name with .cpu, .wall, .inuse_space, ... or use a format that carries its own types", t, app)
	}
	return nil
}

// errStatus maps an error to the HTTP status to answer.
func errStatus(err error) int {
	var ie *InputError
	if errors.As(err, &ie) {
		return ie.Status
	}
	return 500
}
