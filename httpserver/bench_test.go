package httpserver_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyrorelay/pyrorelay/httpserver"
	"github.com/pyrorelay/pyrorelay/route"
	"github.com/pyrorelay/pyrorelay/store"
)

// benchBodySize is the size of the multipart body the benchmarks post,
// headers and boundaries included: the 16 KiB pyroscope-go upload.
const benchBodySize = 16 << 10

// BenchmarkIngest measures the /ingest handler in process, with the real
// store in a temp dir and two destination queues, and no forwarder (the
// queues only grow). One op is one request answered 200, so one durable
// commit waited for.
//
// Reported: commits/op and fdatasyncs/op (bbolt flushes twice per commit:
// data pages, then the meta page), writes/commit (the group-commit factor),
// body-B/op and file-B/op (growth of the bbolt file per request: the body
// is stored once whatever the number of queues).
func BenchmarkIngest(b *testing.B) {
	body, contentType := benchPprofUpload(b)
	for _, bc := range []struct {
		clients int
		noGroup bool
	}{
		{1, false},
		{32, false},
		{32, true},
	} {
		name := fmt.Sprintf("clients=%d/groupcommit=%s", bc.clients, map[bool]string{false: "on", true: "off"}[bc.noGroup])
		b.Run(name, func(b *testing.B) {
			st, err := store.Open(b.TempDir(), store.Options{NoGroupCommit: bc.noGroup})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			h := httpserver.New(httpserver.Config{Queues: []string{"a", "b"}}, httpserver.Options{Store: st}).Handler()
			fi0 := benchStat(b, st.Path())
			c0, w0 := st.CommitCounts()
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			benchDrive(b, h, bc.clients, body, contentType)
			b.StopTimer()
			c1, w1 := st.CommitCounts()
			n := float64(b.N)
			commits := float64(c1 - c0)
			b.ReportMetric(commits/n, "commits/op")
			b.ReportMetric(2*commits/n, "fdatasyncs/op")
			if commits > 0 {
				b.ReportMetric(float64(w1-w0)/commits, "writes/commit")
			}
			b.ReportMetric(float64(len(body)), "body-B/op")
			b.ReportMetric(float64(benchStat(b, st.Path())-fi0)/n, "file-B/op")
		})
	}
}

// BenchmarkIngestHandler measures the HTTP side alone: validation, body
// read, entry building, with a store that returns at once. It is the one to
// profile for per-request waste (-cpuprofile, -memprofile).
//
// The routers: none (two fixed queues), the table `serve` gives a receiver
// without routes, and one rule on a label of the name.
func BenchmarkIngestHandler(b *testing.B) {
	body, contentType := benchPprofUpload(b)
	for _, bc := range []struct {
		name  string
		rules []route.Rule
	}{
		{"router=none", nil},
		{"router=no-routes", []route.Rule{}},
		{"router=label-rule", []route.Rule{{Match: map[string]string{"env": "prod"}, ForwardTo: []string{"a"}}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := httpserver.Config{Queues: []string{"a", "b"}}
			if bc.rules != nil {
				tab, err := route.Compile(bc.rules, cfg.Queues)
				if err != nil {
					b.Fatal(err)
				}
				cfg.Router = tab
			}
			h := httpserver.New(cfg, httpserver.Options{Store: benchNopStore{}}).Handler()
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			benchDrive(b, h, 1, body, contentType)
		})
	}
}

type benchNopStore struct{}

func (benchNopStore) Put(context.Context, *store.Entry, []string) error { return nil }

// benchDrive posts b.N requests from clients goroutines and fails the
// benchmark on any answer but 200.
func benchDrive(b *testing.B, h http.Handler, clients int, body []byte, contentType string) {
	q := url.Values{
		"name": {"bench.cpu{env=bench}"}, "spyName": {"gospy"}, "sampleRate": {"100"},
		"units": {"samples"}, "aggregationType": {"sum"},
	}
	prefix := "/ingest?" + q.Encode()
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				now := time.Now().UnixNano()
				target := prefix + "&from=" + strconv.FormatInt(now-10e9, 10) + "&until=" + strconv.FormatInt(now, 10)
				req := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body))
				req.Header.Set("Content-Type", contentType)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					failed.Store(fmt.Sprintf("status %d: %s", w.Code, w.Body.String()))
					return
				}
			}
		}()
	}
	wg.Wait()
	if msg, _ := failed.Load().(string); msg != "" {
		b.Fatal(msg)
	}
}

// benchPprofUpload builds the body pyroscope-go uploads, about
// benchBodySize bytes: a multipart part "profile" (filename profile.pprof)
// holding a gzipped pprof, then "sample_type_config". The testdata CPU
// profile is padded with extra string-table entries of random letters, so
// it stays a valid pprof that compresses like real symbol names.
func benchPprofUpload(b *testing.B) (body []byte, contentType string) {
	b.Helper()
	gz, err := os.ReadFile("../testdata/cpu.pb.gz")
	if err != nil {
		b.Fatal(err)
	}
	stc, err := os.ReadFile("../testdata/sample_type_config.json")
	if err != nil {
		b.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		b.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./"
	filler := make([]byte, 2*benchBodySize)
	for i := range filler {
		filler[i] = letters[rng.IntN(len(letters))]
	}
	build := func(pad int) ([]byte, string) {
		p := append([]byte(nil), raw...)
		for off := 0; off < pad; off += 64 {
			s := filler[off:min(off+64, pad)]
			p = append(p, 6<<3|2, byte(len(s))) // string_table, length-delimited
			p = append(p, s...)
		}
		var prof bytes.Buffer
		zw := gzip.NewWriter(&prof)
		_, _ = zw.Write(p)
		_ = zw.Close()
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		fw, _ := mw.CreateFormFile("profile", "profile.pprof")
		_, _ = fw.Write(prof.Bytes())
		fw, _ = mw.CreateFormFile("sample_type_config", "sample_type_config.json")
		_, _ = fw.Write(stc)
		_ = mw.Close()
		return buf.Bytes(), mw.FormDataContentType()
	}
	lo, hi := 0, len(filler)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if body, _ := build(mid); len(body) <= benchBodySize {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return build(lo)
}

func benchStat(b *testing.B, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}
