package main

// The end-to-end tests in this package run the real pyrorelay binary, built
// once by TestMain, against in-process destinations that record every
// request. This file holds the shared harness: building and running the
// binary, recording destinations, clients, polling and metric scraping.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/grafana/pyroscope/api/gen/proto/go/push/v1/pushv1connect"

	"github.com/pyrorelay/pyrorelay/internal/poll"
	"github.com/pyrorelay/pyrorelay/internal/syncbuf"
)

// relayBin is the pyrorelay binary TestMain built.
var relayBin string

// Deadlines are generous: the tests run on loaded 2-core machines, and
// with -race the relay itself runs under the race detector.
const (
	startDeadline   = 60 * time.Second // build cache cold + race binary start
	stopDeadline    = 30 * time.Second
	deliverDeadline = 60 * time.Second
)

func TestMain(m *testing.M) {
	if os.Getenv(orphanHelperEnv) != "" {
		os.Exit(orphanHelper())
	}
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	goTool, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e tests build the pyrorelay binary and need the go tool on PATH: %v\n", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "pyrorelay-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "temp dir for the pyrorelay binary: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	relayBin = filepath.Join(dir, "pyrorelay")
	args := []string{"build", "-o", relayBin}
	if raceEnabled {
		// Under `go test -race` the relay runs under the race detector as
		// well, so the e2e load finds races in the real process.
		args = append(args, "-race")
	}
	args = append(args, ".")
	build := exec.Command(goTool, args...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "go %s: %v\n", strings.Join(args, " "), err)
		return 1
	}
	return m.Run()
}

// relayProc is one running pyrorelay process.
type relayProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	URL    string // http://127.0.0.1:port
	Stderr *syncbuf.Buffer
	Stdout *syncbuf.Buffer

	servingCh chan string   // the address of the "serving" log line
	done      chan struct{} // closed when the process has exited
	exitCode  int           // valid after done
}

// relayOpts are the less common ways to start the relay.
type relayOpts struct {
	// env is added to the environment (after every PYRORELAY_ variable of
	// the test process is removed, so the host cannot change a test).
	env []string
	// rawArgs replaces the default "serve --listen ... --data-dir ..."
	// prefix; args follow it.
	rawArgs bool
	// credential, if set, runs the process as another user.
	credential *syscall.Credential
}

// baseArgs are the arguments every relay in these tests starts with.
func baseArgs(dataDir string) []string {
	return []string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--log-format", "json"}
}

// startRelay starts `pyrorelay serve` on a random port with dataDir and
// extra args, and waits until it logs that it is serving.
func startRelay(t *testing.T, dataDir string, args ...string) *relayProc {
	t.Helper()
	return startRelayOpts(t, relayOpts{}, append(baseArgs(dataDir), args...)...)
}

// startRelayOpts starts the binary with exactly args and waits for its
// "serving" log line.
func startRelayOpts(t *testing.T, o relayOpts, args ...string) *relayProc {
	t.Helper()
	p := launch(t, o, args...)
	addr, err := p.waitServing(startDeadline)
	if err != nil {
		p.kill()
		t.Fatalf("relay did not start: %v\nargs: %q\nstderr:\n%s", err, args, p.Stderr.String())
	}
	p.URL = "http://" + addr
	return p
}

// launch starts the binary and returns at once.
func launch(t *testing.T, o relayOpts, args ...string) *relayProc {
	t.Helper()
	cmd := exec.Command(relayBin, args...)
	cmd.Env = append(cleanEnv(), o.env...)
	if o.credential != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: o.credential}
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &relayProc{t: t, cmd: cmd, Stderr: &syncbuf.Buffer{}, Stdout: &syncbuf.Buffer{}, done: make(chan struct{})}
	cmd.Stdout = p.Stdout
	if err := startChild(cmd, p.done); err != nil {
		t.Fatalf("start %s: %v", relayBin, err)
	}
	serving := make(chan string, 1)
	p.servingCh = serving
	go func() {
		// Read stderr to its end before Wait, which closes the pipe.
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = p.Stderr.Write(append(line, '\n'))
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "serving" && rec.Addr != "" {
				select {
				case serving <- rec.Addr:
				default:
				}
			}
		}
		_, _ = io.Copy(p.Stderr, stderr)
		err := cmd.Wait()
		p.exitCode = 0
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				p.exitCode = ee.ExitCode() // -1 when killed by a signal
			} else {
				p.exitCode = -2
			}
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if strings.Contains(p.Stderr.String(), "WARNING: DATA RACE") {
			t.Errorf("the relay process reported a data race:\n%s", p.Stderr.String())
		} else if t.Failed() {
			t.Logf("relay %q stderr:\n%s", args, p.Stderr.String())
		}
	})
	return p
}

// startChild starts cmd with the parent-death signal set, so that the
// kernel kills the child when the test process dies (a `go test` run that
// times out panics and exits): a relay left running would hold its data
// dir and port and send its queue on into later runs. Linux sends the
// signal when the thread that started the child ends, not the process,
// so the child is started from a goroutine that keeps its thread locked
// until exited is closed: no other goroutine can end that thread.
func startChild(cmd *exec.Cmd, exited <-chan struct{}) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := cmd.Start()
		started <- err
		if err == nil {
			<-exited
		}
	}()
	return <-started
}

// cleanEnv is the test's environment without PYRORELAY_ variables, nor
// GOGC (the relay sets its own default when it is absent).
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PYRORELAY_") && !strings.HasPrefix(kv, "GOGC=") {
			env = append(env, kv)
		}
	}
	return env
}

func (p *relayProc) waitServing(timeout time.Duration) (string, error) {
	select {
	case addr := <-p.servingCh:
		return addr, nil
	case <-p.done:
		return "", fmt.Errorf("exited with code %d before serving", p.exitCode)
	case <-time.After(timeout):
		return "", fmt.Errorf("no \"serving\" log line within %s", timeout)
	}
}

// waitExit waits for the process to exit by itself and returns its exit
// code, or fails the test after timeout.
func (p *relayProc) waitExit(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.exitCode
	case <-time.After(timeout):
		p.kill()
		p.t.Fatalf("relay still running %s after it should have exited; killed", timeout)
		return -1
	}
}

// stop sends SIGTERM and waits for a clean exit; it fails the test if the
// relay needs SIGKILL or exits non-zero.
func (p *relayProc) stop() {
	p.t.Helper()
	if code := p.terminate(); code != 0 {
		p.t.Errorf("relay exited with code %d after SIGTERM", code)
	}
}

// terminate sends SIGTERM and returns the exit code.
func (p *relayProc) terminate() int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.exitCode
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Logf("SIGTERM: %v", err)
	}
	return p.waitExit(stopDeadline)
}

// kill sends SIGKILL (a crash: nothing runs in the relay afterwards) and
// waits for the process to be gone, so the data dir lock is free.
func (p *relayProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// exited reports whether the process has exited.
func (p *relayProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// destination modes, switched atomically while the relay runs.
const (
	modeOK   int32 = iota // answer as the handler says (200 by default)
	modeDown              // 503 to everything
	modeBad               // 400 to everything
	modeHang              // never answer until the client gives up
)

// recorded is one request a destination received.
type recorded struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
	Status                 int // what the destination answered
}

// recorder is a fake Pyroscope server: it serves /ingest and the Connect
// Push API, and records every request with the status it answered.
type recorder struct {
	t    *testing.T
	srv  *httptest.Server
	mode atomic.Int32
	// status, if set, decides the answer to an /ingest request in modeOK;
	// n counts the requests received so far, this one included.
	status func(body []byte, n int) int

	mu     sync.Mutex
	header http.Header // added to every answer other than 200; see refuseWith
	reqs   []recorded
	pushes []*pushv1.PushRequest // accepted Push requests, decoded
	n      int

	release chan struct{} // closed at cleanup to free hanging handlers
}

// newRecorder starts a recording destination. status may be nil (200).
func newRecorder(t *testing.T, status func(body []byte, n int) int) *recorder {
	t.Helper()
	r := &recorder{t: t, status: status, release: make(chan struct{})}
	mux := http.NewServeMux()
	path, push := pushv1connect.NewPusherServiceHandler(pushRecorder{r})
	mux.Handle(path, push)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		// Any other path is a relay bug: answer like an unknown route.
		http.NotFound(w, nil)
	})
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestTimeout)
			return
		}
		r.mu.Lock()
		r.n++
		n := r.n
		r.mu.Unlock()
		status := http.StatusOK
		switch r.mode.Load() {
		case modeDown:
			status = http.StatusServiceUnavailable
		case modeBad:
			status = http.StatusBadRequest
		case modeHang:
			select {
			case <-req.Context().Done():
			case <-r.release:
			}
			r.record(req, body, 0)
			return
		default:
			if req.URL.Path != "/ingest" && !strings.HasPrefix(req.URL.Path, "/push.v1.") {
				status = http.StatusNotFound
			} else if r.status != nil && req.URL.Path == "/ingest" {
				status = r.status(body, n)
			}
		}
		r.record(req, body, status)
		if status != http.StatusOK {
			r.mu.Lock()
			for k, v := range r.header {
				w.Header()[k] = v
			}
			r.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = fmt.Fprintf(w, `{"code":"test","message":"recorder answers %d"}`, status)
			return
		}
		if strings.HasPrefix(req.URL.Path, "/push.v1.") {
			req.Body = io.NopCloser(bytes.NewReader(body))
			mux.ServeHTTP(w, req)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(func() {
		close(r.release)
		r.srv.Close()
	})
	return r
}

func (r *recorder) record(req *http.Request, body []byte, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, recorded{
		Method: req.Method, Path: req.URL.Path, RawQuery: req.URL.RawQuery,
		Header: req.Header.Clone(), Body: body, Status: status,
	})
}

// refuseWith adds h to every answer other than 200 from now on.
func (r *recorder) refuseWith(h http.Header) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.header = h
}

// URL is the destination's base URL.
func (r *recorder) URL() string { return r.srv.URL }

// requests returns a copy of everything received so far.
func (r *recorder) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

// received counts the requests that arrived, including those still being
// answered (a hanging request is recorded only when it ends).
func (r *recorder) received() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// accepted returns the /ingest requests answered 200.
func (r *recorder) accepted() []recorded {
	var out []recorded
	for _, q := range r.requests() {
		if q.Status == http.StatusOK && q.Path == "/ingest" {
			out = append(out, q)
		}
	}
	return out
}

// acceptedPushes returns the Push requests accepted so far.
func (r *recorder) acceptedPushes() []*pushv1.PushRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*pushv1.PushRequest(nil), r.pushes...)
}

// ingestIDs counts the accepted /ingest requests per req_id query value.
func (r *recorder) ingestIDs() map[string]int {
	ids := map[string]int{}
	for _, q := range r.accepted() {
		v, _ := url.ParseQuery(q.RawQuery)
		ids[v.Get("req_id")]++
	}
	return ids
}

// pushIDs counts the accepted Push series per req_id label value.
func (r *recorder) pushIDs() map[string]int {
	ids := map[string]int{}
	for _, p := range r.acceptedPushes() {
		for _, s := range p.GetSeries() {
			for _, l := range s.GetLabels() {
				if l.GetName() == "req_id" {
					ids[l.GetValue()]++
				}
			}
		}
	}
	return ids
}

// pushRecorder is the recorder's Push handler.
type pushRecorder struct{ r *recorder }

func (p pushRecorder) Push(_ context.Context, req *connect.Request[pushv1.PushRequest]) (*connect.Response[pushv1.PushResponse], error) {
	p.r.mu.Lock()
	p.r.pushes = append(p.r.pushes, req.Msg)
	p.r.mu.Unlock()
	return connect.NewResponse(&pushv1.PushResponse{}), nil
}

// closedURL is the URL of a port that refuses connections, the way a
// destination that is down looks. The port stays taken until the test
// ends: a socket is bound to it and never listens, so the kernel refuses
// every connection and gives the port to no other socket. A port merely
// closed again could go to the relay's own 127.0.0.1:0 listener, and the
// "down" destination would be the relay itself.
func closedURL(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket for a refusing port: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("bind a refusing port: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("refusing port: %v", err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}

// postBigHeaders sends an /ingest request whose headers hold n bytes,
// over a connection of its own that it reads while it writes, and returns
// the status code of the answer. The server answers as soon as it has read
// its limit of headers and stops reading, so a client that reads only
// once it has written everything (as net/http's may) sees a broken pipe
// instead of the answer. No answer fails the test.
func postBigHeaders(t *testing.T, base string, n int) string {
	t.Helper()
	u, err := url.Parse(ingestURL(base, "big-headers"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.SetDeadline(time.Now().Add(deliverDeadline)); err != nil {
		t.Fatal(err)
	}
	body := foldedBody("big-headers")
	var writer sync.WaitGroup
	writer.Go(func() {
		// Errors are expected: the server closes before it has read all.
		w := bufio.NewWriter(conn)
		fmt.Fprintf(w, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nX-Big: ", u.RequestURI(), u.Host, len(body))
		_, _ = w.WriteString(strings.Repeat("x", n))
		_, _ = w.WriteString("\r\n\r\n")
		_, _ = w.Write(body)
		_ = w.Flush()
	})
	line, err := bufio.NewReader(conn).ReadString('\n')
	_ = conn.Close()
	writer.Wait()
	if err != nil {
		t.Fatalf("no answer to a request with %d bytes of headers: %v", n, err)
	}
	fields := strings.Fields(line)
	if len(fields) < 2 {
		t.Fatalf("answer to a request with %d bytes of headers: status line %q", n, line)
	}
	return fields[1]
}

// httpClient is the tests' client: bounded, so a hung relay fails a test
// instead of hanging it.
var httpClient = &http.Client{Timeout: 30 * time.Second}

// ingestURL is an /ingest URL for a folded profile carrying id in its
// query (req_id, a parameter the server ignores and the relay keeps).
func ingestURL(base, id string) string {
	q := url.Values{}
	q.Set("name", "app.cpu{env=e2e}")
	q.Set("from", strconv.FormatInt(time.Now().Add(-10*time.Second).Unix(), 10))
	q.Set("until", strconv.FormatInt(time.Now().Unix(), 10))
	q.Set("req_id", id)
	return base + "/ingest?" + q.Encode()
}

// foldedBody is a folded profile that carries id in a frame name.
func foldedBody(id string) []byte {
	return []byte(fmt.Sprintf("main;work;id_%s 10\nmain;idle 3\n", id))
}

// postFolded posts a folded profile for id and returns the status, or an
// error when there was no answer.
func postFolded(ctx context.Context, base, id string) (int, error) {
	return post(ctx, ingestURL(base, id), "", foldedBody(id))
}

// post sends body to u and returns the status, or an error when there was
// no answer.
func post(ctx context.Context, u, contentType string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// mustPostFolded posts a folded profile and fails the test unless the
// relay answers 200.
func mustPostFolded(t *testing.T, base, id string) {
	t.Helper()
	status, err := postFolded(context.Background(), base, id)
	if err != nil || status != http.StatusOK {
		t.Fatalf("POST /ingest %s: status %d, err %v", id, status, err)
	}
}

// mustPostFoldedAs posts a folded profile with the client tenant header
// X-Scope-OrgID set to tenant, and fails the test unless it is acknowledged.
func mustPostFoldedAs(t *testing.T, base, id, tenant string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ingestURL(base, id), bytes.NewReader(foldedBody(id)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Scope-OrgID", tenant)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /ingest %s: status %d", id, resp.StatusCode)
	}
}

// sendMixed sends request id as folded /ingest (even clients) or as a Push
// (odd clients), so that load tests mix both endpoints; an answer other
// than success is an error.
func sendMixed(base string, push pushv1connect.PusherServiceClient, profile []byte, client int, id string) error {
	if client%2 == 1 {
		_, err := push.Push(context.Background(), connect.NewRequest(pushRequest(id, profile)))
		return err
	}
	status, err := postFolded(context.Background(), base, id)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("status %d", status)
	}
	return err
}

// waitFor polls cond until it holds or timeout passes, then fails the
// test with what and cond's last explanation.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	poll.For(t, timeout, what, cond)
}

// scrape returns the relay's /metrics as sample -> value, where a sample
// is written `name{k="v",...}` with labels sorted the way the Prometheus
// text format writes them (by name).
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := httpClient.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read /metrics: %v", err)
	}
	return out
}

// metric returns one sample of m; a missing sample reads as 0, which is
// what a queue that never held anything looks like.
func metric(m map[string]float64, sample string) float64 { return m[sample] }

// waitMetric waits until the relay at base reports want for sample.
func waitMetric(t *testing.T, base, sample string, want float64) {
	t.Helper()
	waitFor(t, deliverDeadline, sample+" = "+strconv.FormatFloat(want, 'g', -1, 64), func() (bool, string) {
		got := metric(scrape(t, base), sample)
		return got == want, fmt.Sprintf("got %g", got)
	})
}

// hasLogLine reports whether one JSON log line in log has level and
// contains every one of parts.
func hasLogLine(log, level string, parts ...string) bool {
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, `"level":"`+level+`"`) {
			continue
		}
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

// writeConfig writes a YAML config into dir and returns its path.
func writeConfig(t *testing.T, dir, yaml string) string {
	t.Helper()
	path := filepath.Join(dir, "pyrorelay.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// fastDestinations is a YAML destinations list with short backoffs, so
// that retries in tests take milliseconds instead of the production
// defaults (500 ms doubling to 5 min). The timeout stays long: a request
// that times out on a loaded machine is sent again, and tests count
// requests.
func fastDestinations(urls map[string]string) string {
	var b strings.Builder
	b.WriteString("destinations:\n")
	for _, name := range slices.Sorted(maps.Keys(urls)) {
		fmt.Fprintf(&b, "  - name: %s\n    url: %s\n    min_backoff: 10ms\n    max_backoff: 50ms\n    timeout: 30s\n", name, urls[name])
	}
	return b.String()
}

// missing lists the ids of want that got has not, at most a few.
func missing(want map[string]bool, got map[string]int) (int, []string) {
	n := 0
	var some []string
	for id := range want {
		if got[id] == 0 {
			n++
			if len(some) < 10 {
				some = append(some, id)
			}
		}
	}
	return n, some
}

// readTestdata reads a file of the repository's testdata directory.
func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
