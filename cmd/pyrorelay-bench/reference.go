package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// referenceCommand is the first argument that makes this binary the
// in-memory reference relay instead of the load tool. The tool starts
// itself that way for --compare-reference, so that the reference is a
// process of its own, measured like pyrorelay is.
const referenceCommand = "reference-relay"

// defaultReferenceWriteBuffer is the reference's write buffer per
// connection unless told otherwise: pyrorelay's, so that the baseline is
// the design at its best.
const defaultReferenceWriteBuffer = 64 << 10

// referenceRelay is the design pyrorelay is measured against, stripped to
// its core: what Grafana Alloy's pyroscope.receive_http with
// pyroscope.write does with a request. It sends the request to every
// destination at once, answers once all have answered (as the first one
// did, or 502 if one failed), and keeps nothing. Alloy itself cannot be
// fetched on the benchmark machine; this gives its figures a baseline on
// the same machine, under the same load and sinks. It carries none of
// Alloy's own work per request, so it is, if anything, faster than Alloy.
type referenceRelay struct {
	client  *http.Client
	dests   []string // base URLs
	maxBody int64
}

// newReferenceRelay returns a reference relay forwarding to dests through
// connections with writeBuffer bytes of write buffer. Go's default is 4 KiB,
// which sends a 16 KiB profile in two writes, the second through a fresh
// copy buffer; pyrorelay's forwarders use 64 KiB for one write. On the
// benchmark machine the choice halves or doubles the reference's CPU per
// request, so --reference-write-buffer lets both be measured.
func newReferenceRelay(dests []string, writeBuffer int) *referenceRelay {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil               // loopback only
	tr.MaxIdleConnsPerHost = 256 // a connection per request in flight, kept
	tr.DisableCompression = true // pass bodies through as they are
	tr.WriteBufferSize = writeBuffer
	return &referenceRelay{client: &http.Client{Transport: tr, Timeout: time.Minute}, dests: dests, maxBody: 64 << 20}
}

// Handler serves the forwarded endpoints, /-/ready, and /metrics with the
// process's CPU and memory (what the tool reads of pyrorelay too).
func (rr *referenceRelay) Handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, r *http.Request) {})
	mux.Handle("/", rr)
	return mux
}

// answer is one destination's answer to a forwarded request.
type answer struct {
	status int
	header http.Header
	body   []byte
	err    error
}

func (rr *referenceRelay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, r.Method+" is not allowed: POST a profile", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, rr.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "body over "+fmt.Sprint(rr.maxBody)+" bytes", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	answers := make([]answer, len(rr.dests))
	var wg sync.WaitGroup
	for i, d := range rr.dests {
		wg.Go(func() { answers[i] = rr.forward(r, d, body) })
	}
	wg.Wait()
	for i, a := range answers {
		switch {
		case a.err != nil:
			http.Error(w, fmt.Sprintf("destination %s: %v", rr.dests[i], a.err), http.StatusBadGateway)
			return
		case a.status/100 != 2:
			http.Error(w, fmt.Sprintf("destination %s answered %d", rr.dests[i], a.status), http.StatusBadGateway)
			return
		}
	}
	// Every destination took it: answer as the first did (a Connect
	// client reads the response body).
	first := answers[0]
	for _, h := range []string{"Content-Type", "Content-Encoding"} {
		if v := first.header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(first.status)
	_, _ = w.Write(first.body)
}

// forward sends body to dest as r came, headers included but for those
// of r's own connection.
func (rr *referenceRelay) forward(r *http.Request, dest string, body []byte) answer {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, dest+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	for k, v := range r.Header {
		switch http.CanonicalHeaderKey(k) {
		case "Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length":
		default:
			req.Header[k] = v
		}
	}
	resp, err := rr.client.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return answer{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

// referenceMain runs the reference relay until SIGTERM or SIGINT:
//
//	pyrorelay-bench reference-relay --listen 127.0.0.1:0 --forward URL [--forward URL]...
//
// Like `pyrorelay serve --log-format json`, it logs a JSON "serving" line
// with its address on stderr once it listens.
func referenceMain(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("pyrorelay-bench "+referenceCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "loopback address to serve on")
	writeBuffer := fs.Int("write-buffer", defaultReferenceWriteBuffer, "write buffer of each connection to a destination, bytes")
	var dests []string
	fs.Var((*stringsFlag)(&dests), "forward", "destination base `URL`, repeatable")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if len(dests) == 0 || fs.NArg() > 0 || *writeBuffer <= 0 {
		fmt.Fprintln(stderr, "usage: pyrorelay-bench "+referenceCommand+" --listen ADDR --forward URL [--forward URL]...")
		return 2
	}
	if err := loopbackOnly(*listen); err != nil {
		fmt.Fprintln(stderr, "--listen:", err)
		return 2
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	srv := &http.Server{Handler: newReferenceRelay(dests, *writeBuffer).Handler(), ReadHeaderTimeout: 30 * time.Second}
	line, _ := json.Marshal(map[string]string{"msg": "serving", "addr": ln.Addr().String()})
	fmt.Fprintf(stderr, "%s\n", line)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		fmt.Fprintln(stderr, err)
		return 1
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		fmt.Fprintln(stderr, "shutdown:", err)
		return 1
	}
	return 0
}
