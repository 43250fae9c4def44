package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/httpserver"
	"github.com/pyrorelay/pyrorelay/store"
)

// inputChecks are what import and replay check of every entry read from an
// export before storing or sending it: what the relay checks of a request
// before it answers 200, and the export's own checksum.
type inputChecks struct {
	// noVerify accepts entries without (or with a wrong) body_sha256.
	noVerify bool
	// maxBodySize refuses larger bodies, as serve's --max-body-size does.
	maxBodySize int64
	// copyOnly reads a running relay's own export to copy it elsewhere:
	// bodies are checked against their sums, not validated as input.
	copyOnly bool
}

// inputCheckFlags are import's and replay's flags for inputChecks.
func inputCheckFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "no-verify", Usage: "accept export entries without a body_sha256 (or whose body does not match it)"},
		&cli.StringFlag{Name: "max-body-size", Value: "4MiB", Usage: "refuse export entries with a larger body, as serve --max-body-size does"},
	}
}

func inputChecksFromFlags(c *cli.Context) (inputChecks, error) {
	n, err := parseByteSize(c.String("max-body-size"))
	if err != nil || n <= 0 {
		return inputChecks{}, fmt.Errorf("--max-body-size %q: want a positive size such as 4MiB", c.String("max-body-size"))
	}
	return inputChecks{noVerify: c.Bool("no-verify"), maxBodySize: int64(n)}, nil
}

// entry rebuilds the stored entry, checking it as the relay checks a request
// before storing it, and its body against the export's checksum.
func (x *exported) entry(body []byte, chk inputChecks) (*store.Entry, error) {
	e := &store.Entry{
		ID: x.ID, ReceivedAt: x.ReceivedAt, Query: x.Query, ContentType: x.ContentType,
		ContentEncoding: x.ContentEncoding, Tenant: x.Tenant, Body: body,
	}
	switch x.Kind {
	case "ingest":
		e.Kind = store.KindIngest
	case "push":
		e.Kind = store.KindPush
	default:
		return nil, fmt.Errorf("kind %q is not ingest or push", x.Kind)
	}
	if x.ReceivedAt.IsZero() {
		return nil, errors.New("no received_at")
	}
	if chk.copyOnly {
		if x.BodySHA256 != "" {
			if sum := sha256.Sum256(body); hex.EncodeToString(sum[:]) != x.BodySHA256 {
				return nil, fmt.Errorf("body of %d bytes does not match body_sha256: the answer was damaged on the way", len(body))
			}
		}
		return e, nil
	}
	if len(body) == 0 {
		return nil, errors.New("empty body: the relay never stores one")
	}
	if int64(len(body)) > chk.maxBodySize {
		return nil, fmt.Errorf("body of %d bytes is over --max-body-size %d", len(body), chk.maxBodySize)
	}
	if !chk.noVerify {
		if x.BodySHA256 == "" {
			return nil, errors.New("no body_sha256, so the body cannot be checked: add it, or pass --no-verify")
		}
		sum := sha256.Sum256(body)
		if hex.EncodeToString(sum[:]) != x.BodySHA256 {
			return nil, fmt.Errorf("body of %d bytes does not match body_sha256: the export is damaged or was edited (--no-verify takes it anyway)", len(body))
		}
	}
	switch e.Kind {
	case store.KindPush:
		if err := httpserver.ValidateStoredPush(e, 4*chk.maxBodySize); err != nil {
			return nil, fmt.Errorf("push body refused as the Push endpoint would refuse it: %w", err)
		}
	case store.KindIngest:
		q, err := url.ParseQuery(e.Query)
		if err != nil {
			return nil, fmt.Errorf("query %q: %w", e.Query, err)
		}
		if err := httpserver.ValidateIngest(q, e.ContentType); err != nil {
			return nil, fmt.Errorf("refused as /ingest would refuse it: %w", err)
		}
	}
	return e, nil
}

// readExport calls fn with every entry of an export, in id order: a
// directory of <id>.json sidecars and bodies, or ndjson from r when path is
// "-". Every entry passes chk first. Only one body is in memory at a time,
// and no more than chk allows of it.
func readExport(ctx context.Context, path string, r io.Reader, chk inputChecks, fn func(x *exported, e *store.Entry) error) error {
	if path == "-" {
		return readNDJSON(ctx, r, chk, fn)
	}
	return readExportDir(ctx, path, chk, fn)
}

func readExportDir(ctx context.Context, dir string, chk inputChecks, fn func(x *exported, e *store.Entry) error) error {
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
		var x exported
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
		body, err := readBodyFile(filepath.Join(dir, bodyFile), chk.maxBodySize)
		if err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		e, err := x.entry(body, chk)
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

func readNDJSON(ctx context.Context, r io.Reader, chk inputChecks, fn func(x *exported, e *store.Entry) error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	// A line holds the body in base64 and the fields around it; a longer
	// one is refused as it is read, not after it is all in memory.
	maxLine := int64(base64.StdEncoding.EncodedLen(int(chk.maxBodySize))) + ndjsonOverhead
	for rec := 1; ; rec++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		line, err := readLine(br, maxLine)
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return nil
		}
		if errors.Is(err, errLongLine) {
			return fmt.Errorf("ndjson record %d: longer than %d bytes: its body is over --max-body-size %d", rec, maxLine, chk.maxBodySize)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("ndjson record %d: %w", rec, err)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			rec--
			continue
		}
		var x exported
		if err := json.Unmarshal(line, &x); err != nil {
			return fmt.Errorf("ndjson record %d: %w", rec, err)
		}
		body := x.Body
		x.Body = nil
		e, err := x.entry(body, chk)
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

// pushBodyLimit bounds what pushBody decompresses: more than any Push the
// relay accepts with the largest body limit anyone sets.
const pushBodyLimit = 1 << 30

// pushBody is the protobuf encoding of a stored Push entry, which the
// relay keeps gzipped when it arrived so; nil if it does not decompress.
func pushBody(e *store.Entry) []byte {
	b, err := httpserver.StoredPushMessage(e, pushBodyLimit)
	if err != nil {
		return nil
	}
	return b
}
