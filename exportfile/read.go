package exportfile

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pyrorelay/pyrorelay/store"
)

// Read calls fn with every record of an export and its entry, in file
// order: the directory path, or ndjson from r when path is "-". Every
// record passes chk first. Only one body is in memory at a time, and no
// more than chk allows of it.
func Read(ctx context.Context, path string, r io.Reader, chk Checks, fn func(x *Record, e *store.Entry) error) error {
	if path == "-" {
		return ReadNDJSON(ctx, r, chk, fn)
	}
	return ReadDir(ctx, path, chk, fn)
}

// ReadDir reads the directory form, oldest first.
func ReadDir(ctx context.Context, dir string, chk Checks, fn func(x *Record, e *store.Entry) error) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("read export: %w", err)
	}
	all, err := f.Readdirnames(-1)
	_ = f.Close()
	if err != nil {
		return fmt.Errorf("read export %s: %w", dir, err)
	}
	// Names only (a few MiB for 100k entries), sorted: zero-padded ids
	// sort oldest first.
	names := all[:0]
	for _, n := range all {
		if strings.HasSuffix(n, ".json") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return fmt.Errorf("%s holds no exported entries (<id>.json + <id>.body): is it the --out of `pyrorelay export`?", dir)
	}
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		js, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return err
		}
		var x Record
		if err := json.Unmarshal(js, &x); err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		bodyFile := x.BodyFile
		if bodyFile == "" {
			bodyFile = strings.TrimSuffix(n, ".json") + ".body"
		}
		if filepath.Base(bodyFile) != bodyFile {
			return fmt.Errorf("%s: body_file %q must be a file name in the export directory", n, bodyFile)
		}
		body, err := readBodyFile(filepath.Join(dir, bodyFile), chk.MaxBodySize)
		if err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		e, err := x.Entry(body, chk)
		if err != nil {
			return fmt.Errorf("%s (entry %d): %w", n, x.ID, err)
		}
		if err := fn(&x, e); err != nil {
			return err
		}
	}
	return nil
}

// readBodyFile reads a body file of at most limit bytes.
func readBodyFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > limit {
		return nil, fmt.Errorf("body of %d bytes is over --max-body-size %d", fi.Size(), limit)
	}
	return io.ReadAll(io.LimitReader(f, limit+1))
}

// ndjsonOverhead is room on an ndjson line for everything but the body.
const ndjsonOverhead = 64 << 10

// ReadNDJSON reads the ndjson form from r, in line order.
func ReadNDJSON(ctx context.Context, r io.Reader, chk Checks, fn func(x *Record, e *store.Entry) error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	// A line holds the body in base64 and the fields around it; a longer
	// one is refused as it is read, not after it is all in memory.
	maxLine := int64(base64.StdEncoding.EncodedLen(int(chk.MaxBodySize))) + ndjsonOverhead
	for rec := 1; ; rec++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		line, err := readLine(br, maxLine)
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return nil
		}
		if errors.Is(err, errLongLine) {
			return fmt.Errorf("ndjson record %d: longer than %d bytes: its body is over --max-body-size %d", rec, maxLine, chk.MaxBodySize)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("ndjson record %d: %w", rec, err)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			rec--
			continue
		}
		var x Record
		if err := json.Unmarshal(line, &x); err != nil {
			return fmt.Errorf("ndjson record %d: %w", rec, err)
		}
		body := x.Body
		x.Body = nil
		e, err := x.Entry(body, chk)
		if err != nil {
			return fmt.Errorf("ndjson record %d (entry %d): %w", rec, x.ID, err)
		}
		if err := fn(&x, e); err != nil {
			return err
		}
	}
}

var errLongLine = errors.New("line too long")

// readLine reads one line of at most limit bytes (without its newline);
// a longer line is skipped to its end and errLongLine returned.
func readLine(br *bufio.Reader, limit int64) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if int64(len(line)+len(chunk)) > limit+1 {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			return nil, errLongLine
		}
		line = append(line, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimSuffix(line, []byte("\n")), err
	}
}
