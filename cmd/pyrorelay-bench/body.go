package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	typesv1 "github.com/grafana/pyroscope/api/gen/proto/go/types/v1"
)

// reqIDParam is the query parameter that carries each request's id through
// the relay to the sinks. The relay passes unknown parameters through, as
// the Pyroscope server ignores them.
const reqIDParam = "reqid"

// reqIDLabel carries the id of a Push request, which has no query.
const reqIDLabel = "reqid"

// payload is what every client sends: a fixed body, and the parts of the
// request that vary per request built from an id.
type payload struct {
	kind        string // pprof, jfr, folded
	body        []byte // the /ingest body, same for every request
	contentType string
	query       url.Values // fixed parameters: no times, no request id
	timeUnit    string     // "ns" or "s": how the client sends from and until
	// profile is the raw pprof of a Push sample.
	profile []byte
}

// ingestPrefix is the URL of every /ingest request up to its varying
// parameters, computed once so that clients spend little CPU per request.
func (p *payload) ingestPrefix(base string) string {
	return base + "/ingest?" + p.query.Encode()
}

// ingestURL is the URL of request id: prefix, then from and until as the
// client would send them (the relay keeps them as they are, and a real
// server checks they are recent), then the id.
func (p *payload) ingestURL(prefix string, id uint64) string {
	now := time.Now()
	b := make([]byte, 0, len(prefix)+80)
	b = append(b, prefix...)
	b = append(b, "&from="...)
	b = appendTime(b, now.Add(-10*time.Second), p.timeUnit)
	b = append(b, "&until="...)
	b = appendTime(b, now, p.timeUnit)
	b = append(b, "&"+reqIDParam+"="...)
	b = strconv.AppendUint(b, id, 10)
	return string(b)
}

func appendTime(b []byte, t time.Time, unit string) []byte {
	if unit == "s" {
		return strconv.AppendInt(b, t.Unix(), 10)
	}
	return strconv.AppendInt(b, t.UnixNano(), 10)
}

// pushRequest is the Push of request id: one series whose labels carry the
// id, one sample with the pprof.
func (p *payload) pushRequest(id uint64) *pushv1.PushRequest {
	return &pushv1.PushRequest{Series: []*pushv1.RawProfileSeries{{
		Labels: []*typesv1.LabelPair{
			{Name: "__name__", Value: "process_cpu"},
			{Name: "service_name", Value: "bench"},
			{Name: reqIDLabel, Value: strconv.FormatUint(id, 10)},
		},
		Samples: []*pushv1.RawSample{{RawProfile: p.profile}},
	}}}
}

// findTestdata returns dir if set, else the first testdata directory with
// cpu.pb.gz in the working directory or one of its parents, so that the
// tool runs from the repository root or from its own directory.
func findTestdata(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find testdata: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "testdata", "cpu.pb.gz")); err == nil {
			return filepath.Join(d, "testdata"), nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("no testdata/cpu.pb.gz here or in a parent directory: pass --testdata")
		}
	}
}

// buildPayload reads the chosen body from testdata. pprof bodies (and the
// Push profile) are padded to about size bytes so that the figures are for
// a known request size; JFR and folded bodies are sent as they are.
func buildPayload(kind, testdata string, size int) (*payload, error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(testdata, name))
		if err != nil {
			return nil, fmt.Errorf("read body: %w", err)
		}
		return b, nil
	}
	cpu, err := read("cpu.pb.gz")
	if err != nil {
		return nil, err
	}
	switch kind {
	case "pprof":
		stc, err := read("sample_type_config.json")
		if err != nil {
			return nil, err
		}
		// The profile part is padded so that the whole multipart body,
		// headers and boundaries included, comes to size.
		overhead := len(pyroscopeGoMultipart(nil, stc).body)
		prof, err := padPprof(cpu, size-overhead)
		if err != nil {
			return nil, err
		}
		p := pyroscopeGoMultipart(prof, stc)
		p.profile = prof
		return p, nil
	case "jfr":
		jfr, err := read("profile.jfr.gz")
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		mustBoundary(mw)
		fw, err := mw.CreateFormFile("jfr", "jfr")
		if err != nil {
			return nil, err
		}
		_, _ = fw.Write(jfr)
		if err := mw.Close(); err != nil {
			return nil, err
		}
		// Parameters as pyroscope-java sends them: times in seconds.
		q := url.Values{"name": {"bench.java{env=bench}"}, "format": {"jfr"}, "spyName": {"javaspy"}, "sampleRate": {"100"}}
		return &payload{kind: kind, body: buf.Bytes(), contentType: mw.FormDataContentType(), query: q, timeUnit: "s", profile: cpu}, nil
	case "folded":
		folded, err := read("folded.txt")
		if err != nil {
			return nil, err
		}
		q := url.Values{"name": {"bench.cpu{env=bench}"}, "spyName": {"gospy"}, "sampleRate": {"100"}}
		return &payload{kind: kind, body: folded, contentType: "text/plain", query: q, timeUnit: "s", profile: cpu}, nil
	default:
		return nil, fmt.Errorf("--body %q: want pprof, jfr or folded", kind)
	}
}

// pyroscopeGoMultipart builds the body pyroscope-go uploads: part
// "profile" (filename profile.pprof) with the gzipped pprof, then
// "sample_type_config", with the query parameters it sends (no format,
// times in nanoseconds).
func pyroscopeGoMultipart(profile, sampleTypeConfig []byte) *payload {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mustBoundary(mw)
	fw, _ := mw.CreateFormFile("profile", "profile.pprof")
	_, _ = fw.Write(profile)
	if len(sampleTypeConfig) > 0 {
		fw, _ = mw.CreateFormFile("sample_type_config", "sample_type_config.json")
		_, _ = fw.Write(sampleTypeConfig)
	}
	_ = mw.Close()
	q := url.Values{"name": {"bench.cpu{env=bench}"}, "spyName": {"gospy"}, "sampleRate": {"100"},
		"units": {"samples"}, "aggregationType": {"sum"}}
	return &payload{kind: "pprof", body: buf.Bytes(), contentType: mw.FormDataContentType(), query: q, timeUnit: "ns"}
}

// mustBoundary fixes the boundary so that the body size does not depend on
// a random boundary's length (it never does today, but padding relies on it).
func mustBoundary(mw *multipart.Writer) {
	if err := mw.SetBoundary("pyrorelaybenchboundary0123456789"); err != nil {
		panic(err)
	}
}

// padPprof returns gzipped pprof of about target bytes: the profile of
// gz with extra string-table entries of random letters appended. The result
// is still a valid pprof (repeated fields may appear anywhere in a message),
// and it compresses like a real profile's names do, not like zeros.
func padPprof(gz []byte, target int) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("read pprof: %w", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("read pprof: %w", err)
	}
	if target <= len(gz) {
		return gz, nil
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./"
	filler := make([]byte, 2*target)
	for i := range filler {
		filler[i] = letters[rng.IntN(len(letters))]
	}
	build := func(n int) []byte {
		b := append([]byte(nil), raw...)
		// Field 6 (string_table), wire type 2, in 64-byte strings.
		for off := 0; off < n; off += 64 {
			s := filler[off:min(off+64, n)]
			b = append(b, 6<<3|2, byte(len(s)))
			b = append(b, s...)
		}
		var out bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&out, gzip.DefaultCompression)
		_, _ = zw.Write(b)
		_ = zw.Close()
		return out.Bytes()
	}
	// Compressed size grows with the padding; search for the largest
	// padding that stays within target.
	lo, hi := 0, len(filler)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if len(build(mid)) <= target {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return build(lo), nil
}
