// Command pprof writes the pprof test payloads used by pyrorelay's tests.
//
// Usage (from the repository root):
//
//	go run ./testdata/gen/pprof testdata
//
// It writes three files into the given directory:
//
//	cpu.pb.gz               gzipped CPU profile (runtime/pprof.StartCPUProfile)
//	heap.pb.gz              gzipped heap profile (runtime/pprof.WriteHeapProfile)
//	sample_type_config.json the sample_type_config part that pyroscope-go
//	                        would attach to a CPU upload (same JSON tags as
//	                        github.com/grafana/pyroscope-go/upstream.SampleType)
//
// Only the standard library is used, so the program builds without touching
// go.mod / go.sum.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"time"
)

var cpuDuration = flag.Duration("cpu", 1500*time.Millisecond, "how long to run the CPU profile")

// sink keeps results alive so the compiler cannot drop the work.
var sink []byte

// retained keeps heap allocations alive until the heap profile is written.
var retained [][]byte

func main() {
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s [-cpu 1.5s] OUTDIR\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	dir := flag.Arg(0)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fatal(err)
	}
	if err := writeCPU(filepath.Join(dir, "cpu.pb.gz"), *cpuDuration); err != nil {
		fatal(err)
	}
	if err := writeHeap(filepath.Join(dir, "heap.pb.gz")); err != nil {
		fatal(err)
	}
	if err := writeSampleTypeConfig(filepath.Join(dir, "sample_type_config.json")); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "gen/pprof:", err)
	os.Exit(1)
}

// ---- CPU ----------------------------------------------------------------

func writeCPU(path string, d time.Duration) error {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		return err
	}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		handleRequest()
	}
	pprof.StopCPUProfile()
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// handleRequest simulates a small request pipeline with distinct, realistic
// call stacks: parse -> hash -> checksum -> encode.
func handleRequest() {
	payload := buildPayload(4096)
	sum := hashPayload(payload)
	crc := checksumPayload(payload)
	sink = encodeResult(sum[:], crc)
}

func buildPayload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i>>3)
	}
	return b
}

func hashPayload(p []byte) [32]byte {
	var sum [32]byte
	for range 16 {
		sum = sha256.Sum256(p)
		p[0] ^= sum[0]
	}
	return sum
}

func checksumPayload(p []byte) uint32 {
	var c uint32
	for range 8 {
		c = crc32.Update(c, crc32.IEEETable, p)
	}
	return c
}

func encodeResult(sum []byte, crc uint32) []byte {
	var sb strings.Builder
	for _, b := range sum {
		fmt.Fprintf(&sb, "%02x", b)
	}
	fmt.Fprintf(&sb, "-%08x", crc)
	words := strings.Split(strings.Repeat(sb.String()+" ", 8), " ")
	sort.Strings(words)
	return []byte(strings.Join(words, ","))
}

// ---- heap ---------------------------------------------------------------

func writeHeap(path string) error {
	// Sample every 64 KiB instead of 512 KiB so a short run still yields a
	// handful of distinct stacks. Must be set before the allocations.
	runtime.MemProfileRate = 64 * 1024
	allocateCache(2 << 20)
	allocateBuffers(64, 32<<10)
	allocateStrings(20000)
	runtime.GC() // the heap profile reflects the state as of the last GC

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	runtime.KeepAlive(retained)
	return f.Close()
}

func allocateCache(total int) {
	for i := 0; i < total; i += 8 << 10 {
		retained = append(retained, make([]byte, 8<<10))
	}
}

func allocateBuffers(n, size int) {
	for range n {
		retained = append(retained, bytes.Repeat([]byte{'x'}, size))
	}
}

func allocateStrings(n int) {
	for i := range n {
		retained = append(retained, []byte(fmt.Sprintf("key-%08d-%s", i, strings.Repeat("v", i%64))))
	}
}

// ---- sample_type_config ------------------------------------------------

// sampleType mirrors github.com/grafana/pyroscope-go/upstream.SampleType
// (v1.5.0) field for field, including JSON tags and field order, so
// json.Marshal produces byte-identical output to what pyroscope-go sends in
// the "sample_type_config" multipart part.
type sampleType struct {
	Units       string `json:"units,omitempty"`
	Aggregation string `json:"aggregation,omitempty"`
	DisplayName string `json:"display-name,omitempty"`
	Sampled     bool   `json:"sampled,omitempty"`
	Cumulative  bool   `json:"cumulative,omitempty"`
}

func writeSampleTypeConfig(path string) error {
	// Keys are pprof sample type names (ValueType.Type). A Go CPU profile has
	// "samples/count" and "cpu/nanoseconds"; we describe the "cpu" one.
	cfg := map[string]*sampleType{
		"cpu": {Units: "nanoseconds", DisplayName: "cpu"},
	}
	b, err := json.Marshal(cfg) // compact, no trailing newline: as pyroscope-go sends it
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
