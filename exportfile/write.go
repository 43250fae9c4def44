package exportfile

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
)

// Writer writes records to an export, each with its body.
type Writer interface {
	// Write adds x with body to the export, filling in x's body_file
	// or body as the form needs.
	Write(x *Record, body []byte) error
	// Close flushes what is buffered.
	Close() error
}

// ErrDirNotEmpty is returned by NewDirWriter for a directory that holds
// files already.
var ErrDirNotEmpty = errors.New("directory is not empty")

// DirWriter writes the directory form.
type DirWriter struct{ dir string }

// NewDirWriter makes (or checks) an empty export directory: files of two
// exports never mix, so an import of the directory means one thing.
func NewDirWriter(dir string) (*DirWriter, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if names, _ := f.Readdirnames(1); len(names) > 0 {
		return nil, ErrDirNotEmpty
	}
	return &DirWriter{dir: dir}, nil
}

// Write writes the body file, then the sidecar.
func (d *DirWriter) Write(x *Record, body []byte) error {
	name := BaseName(x.ID)
	x.BodyFile = name + ".body"
	if err := os.WriteFile(filepath.Join(d.dir, x.BodyFile), body, 0o640); err != nil {
		return err
	}
	js, err := json.MarshalIndent(x, "", "  ")
	if err != nil {
		return err
	}
	// The sidecar is written last: a body without one is an unfinished
	// export that readers ignore.
	return os.WriteFile(filepath.Join(d.dir, name+".json"), append(js, '\n'), 0o640)
}

// Close does nothing: every Write wrote its files.
func (d *DirWriter) Close() error { return nil }

// NDJSONWriter writes the ndjson form.
type NDJSONWriter struct {
	w   *bufio.Writer
	enc *json.Encoder
}

// NewNDJSONWriter writes ndjson to w, buffered until Close.
func NewNDJSONWriter(w io.Writer) *NDJSONWriter {
	bw := bufio.NewWriterSize(w, 1<<20)
	return &NDJSONWriter{w: bw, enc: json.NewEncoder(bw)}
}

// Write writes x as one line with body inline; an empty body (a listing
// without bodies) leaves the field out.
func (n *NDJSONWriter) Write(x *Record, body []byte) error {
	x.Body = body
	if x.Body == nil {
		x.Body = []byte{}
	}
	return n.enc.Encode(x)
}

// Close flushes the buffer.
func (n *NDJSONWriter) Close() error { return n.w.Flush() }
