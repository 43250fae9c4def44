// Command pyrorelay-bench is pyrorelay's end-to-end load tool. It starts
// sink destinations on loopback, drives a relay (the real binary it starts,
// or one at a URL) with concurrent clients, and reports acknowledged
// requests per second, answer latency, errors, the time for the queues to
// drain, the relay's peak memory, and whether every acknowledged request
// reached every sink.
//
// Examples:
//
//	go build -o /tmp/pyrorelay ./cmd/pyrorelay
//	go run ./cmd/pyrorelay-bench --relay-bin /tmp/pyrorelay --clients 32 --duration 20s
//	go run ./cmd/pyrorelay-bench --relay-bin /tmp/pyrorelay --compare-no-group-commit
//	go run ./cmd/pyrorelay-bench --relay-bin /tmp/pyrorelay --compare-reference
//	go run ./cmd/pyrorelay-bench --relay-bin /tmp/pyrorelay --compare-command '/tmp/alloy run {config} --server.http.listen-addr={listen2} --storage.path={workdir}' --compare-config relay.alloy.tmpl
//	go run ./cmd/pyrorelay-bench --relay-bin /tmp/pyrorelay --mode down-then-up --count 20000 --restart
//	go run ./cmd/pyrorelay-bench --url http://127.0.0.1:4040 --sink-listen 127.0.0.1:9001
//
// It is bounded: it stops after the duration or count, and gives up waiting
// for the queues after --drain-timeout.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

// config is the tool's flags.
type config struct {
	relayBin      string
	url           string
	sinks         int
	sinkListen    []string
	clients       int
	duration      time.Duration
	count         int
	rate          float64
	body          string
	bodySize      int
	endpoint      string
	mode          string
	downFor       time.Duration
	downSinks     int
	slowDelay     time.Duration
	failPercent   float64
	flapDown      time.Duration
	flapPeriod    time.Duration
	faultSinks    int
	restart       bool
	crash         bool
	dropCaches    bool
	noGroupCommit bool
	compare       bool
	// compareReference runs pyrorelay, then the in-memory reference relay
	// (see referenceRelay), and prints the ratios; reference is set for
	// the reference's run.
	compareReference bool
	reference        bool
	refWriteBuffer   int
	// compareCommand and the other compare* flags name another relay
	// program to run after pyrorelay on the same sinks and load (see
	// otherRelay); other is set from them by check, and external is set
	// for that program's run.
	compareCommand      string
	compareArgs         []string
	compareConfig       string
	compareName         string
	compareListen       string
	compareStartTimeout time.Duration
	other               *otherRelay
	external            bool
	relayFlags          []string
	fwdConc             int
	minBackoff          time.Duration
	maxBackoff          time.Duration
	drainTimeout        time.Duration
	timeout             time.Duration
	testdata            string
	workDir             string
	keep                bool
	jsonOut             bool
	cpuProfile          string
}

type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, " ") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("pyrorelay-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `pyrorelay-bench drives a pyrorelay with concurrent clients and checks that
every acknowledged request reaches every sink destination.

  pyrorelay-bench --relay-bin ./pyrorelay [flags]   start the relay binary (loopback, temp data dir)
  pyrorelay-bench --url http://127.0.0.1:4040       drive a running relay

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.relayBin, "relay-bin", "", "pyrorelay binary to start on 127.0.0.1:0 with a temp data dir and the sinks as destinations")
	fs.StringVar(&c.url, "url", "", "drive the relay at this loopback URL instead; start sinks only with --sink-listen, and point the relay at them")
	fs.IntVar(&c.sinks, "sinks", 2, "sink destinations to start (with --relay-bin)")
	fs.Var((*stringsFlag)(&c.sinkListen), "sink-listen", "with --url: start a sink on this loopback `ADDR` (repeatable)")
	fs.IntVar(&c.clients, "clients", 32, "concurrent clients, each with its own connection")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long to send (ignored with --count)")
	fs.IntVar(&c.count, "count", 0, "send this many requests instead of running for --duration")
	fs.Float64Var(&c.rate, "rate", 0, "send at most this many requests per second over all clients (0: as fast as they can), for long runs such as a five-minute outage")
	fs.StringVar(&c.body, "body", "pprof", "body: pprof (pyroscope-go multipart, padded to --body-size), jfr or folded (from testdata/, as they are)")
	fs.IntVar(&c.bodySize, "body-size", 16<<10, "size of a pprof body (and of a Push profile), bytes")
	fs.StringVar(&c.endpoint, "endpoint", "ingest", "ingest or push (push sends the pprof as a Push raw_profile)")
	fs.StringVar(&c.mode, "mode", "healthy", "healthy, down-then-up (sinks answer 503, then 200) or one-slow (the first sink sleeps --slow-delay per request)")
	fs.DurationVar(&c.downFor, "down-for", 0, "down-then-up: how long after the load starts the sinks come back; 0 = once the load has stopped (and the relay restarted, with --restart)")
	fs.IntVar(&c.downSinks, "down-sinks", 0, "down-then-up: how many sinks are down (the first ones); 0 = all")
	fs.DurationVar(&c.slowDelay, "slow-delay", 100*time.Millisecond, "one-slow: delay of the slow sink per request")
	fs.Float64Var(&c.failPercent, "fail-percent", 0, "sinks answer 503 to this `PERCENT` of requests at random, as a flaky proxy does (any mode)")
	fs.DurationVar(&c.flapDown, "flap-down", 0, "with --flap-period: sinks answer 503 for this long at the start of every period (any mode)")
	fs.DurationVar(&c.flapPeriod, "flap-period", 0, "sinks flap: down --flap-down of every `PERIOD`")
	fs.IntVar(&c.faultSinks, "fault-sinks", 0, "how many sinks (the first ones) --fail-percent and --flap-* apply to; 0 = all")
	fs.BoolVar(&c.restart, "restart", false, "down-then-up with --relay-bin: restart the relay on its data dir before the sinks come back, and time it to ready")
	fs.BoolVar(&c.crash, "crash", false, "with --restart: kill the relay (SIGKILL) instead of stopping it, as a crash or a power cut would")
	fs.BoolVar(&c.dropCaches, "drop-caches", false, "with --restart: drop the kernel's page cache before the relay starts again, so that it reads its file from the disk (Linux, as root)")
	fs.BoolVar(&c.noGroupCommit, "no-group-commit", false, "start the relay with --no-group-commit (one fsync per write)")
	fs.BoolVar(&c.compare, "compare-no-group-commit", false, "run twice, with group commit and with --no-group-commit, each on a fresh relay, and print the ratios")
	fs.BoolVar(&c.compareReference, "compare-reference", false, "run twice, pyrorelay and then an in-memory reference relay on the same sinks (it forwards each request to every sink and answers once all have answered, keeping nothing, as Grafana Alloy's pyroscope.receive_http and pyroscope.write do), and print the ratios")
	fs.IntVar(&c.refWriteBuffer, "reference-write-buffer", defaultReferenceWriteBuffer, "with --compare-reference: the reference's write buffer per connection to a sink, bytes (4096 is Go's default, as an untuned HTTP client sends)")
	fs.StringVar(&c.compareCommand, "compare-command", "", "run twice, pyrorelay and then this other relay `PROGRAM` (and its arguments, split at spaces) on the same sinks and load, and print the ratios; placeholders in it and in --compare-config: {listen} (where it must serve the load, or {listen_host} and {listen_port}; required), {listen2} (another free loopback host:port, also in halves), {sink1}.. (sink base URLs), {config}, {workdir}")
	fs.Var((*stringsFlag)(&c.compareArgs), "compare-arg", "with --compare-command: one more `ARG` for the program, as it is (spaces kept), repeatable")
	fs.StringVar(&c.compareConfig, "compare-config", "", "with --compare-command: config `TEMPLATE` file; written, placeholders substituted, into the program's work dir, as {config}")
	fs.StringVar(&c.compareName, "compare-name", "", "with --compare-command: the program's name in the report (default: the program's file name)")
	fs.StringVar(&c.compareListen, "compare-listen", "127.0.0.1:0", "with --compare-command: the loopback `ADDR` given as {listen}; port 0 lets the tool choose a free one")
	fs.DurationVar(&c.compareStartTimeout, "compare-start-timeout", 2*time.Minute, "with --compare-command: longest wait for the program to accept connections on {listen}")
	fs.Var((*stringsFlag)(&c.relayFlags), "relay-flag", "extra `FLAG` for pyrorelay serve, repeatable, e.g. --relay-flag=--max-connections=200")
	fs.IntVar(&c.fwdConc, "forward-concurrency", 0, "requests in flight per destination (0: the relay's default)")
	fs.DurationVar(&c.minBackoff, "min-backoff", 10*time.Millisecond, "destinations' min_backoff (short, so a returning sink is seen soon)")
	fs.DurationVar(&c.maxBackoff, "max-backoff", 500*time.Millisecond, "destinations' max_backoff")
	fs.DurationVar(&c.drainTimeout, "drain-timeout", 5*time.Minute, "longest wait for the queues to empty after the load")
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "per-request client timeout")
	fs.StringVar(&c.testdata, "testdata", "", "testdata directory (default: ./testdata or a parent's)")
	fs.StringVar(&c.workDir, "work-dir", "", "directory for the relay's data and logs (default: a new temp dir, removed at the end)")
	fs.BoolVar(&c.keep, "keep", false, "keep the work dir")
	fs.BoolVar(&c.jsonOut, "json", false, "print the results as JSON")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write this tool's CPU profile (load clients and sinks) to `FILE`, to see what the measurement itself costs")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return c, c.check()
}

func (c *config) check() error {
	switch {
	case (c.relayBin == "") == (c.url == ""):
		return errors.New("give one of --relay-bin or --url")
	case c.clients <= 0:
		return errors.New("--clients must be positive")
	case c.rate < 0:
		return errors.New("--rate must not be negative")
	case c.count < 0:
		return errors.New("--count must not be negative")
	case c.count == 0 && c.duration <= 0:
		return errors.New("give a positive --duration or --count")
	case c.endpoint != "ingest" && c.endpoint != "push":
		return fmt.Errorf("--endpoint %q: want ingest or push", c.endpoint)
	case c.endpoint == "push" && c.body != "pprof":
		return errors.New("--endpoint push sends pprof: leave --body at pprof")
	case c.mode != "healthy" && c.mode != "down-then-up" && c.mode != "one-slow":
		return fmt.Errorf("--mode %q: want healthy, down-then-up or one-slow", c.mode)
	case c.restart && (c.relayBin == "" || c.mode != "down-then-up" || c.downFor != 0):
		return errors.New("--restart needs --relay-bin, --mode down-then-up and --down-for 0")
	case (c.crash || c.dropCaches) && !c.restart:
		return errors.New("--crash and --drop-caches go with --restart")
	case c.failPercent < 0 || c.failPercent > 100:
		return errors.New("--fail-percent must be from 0 to 100")
	case (c.flapDown > 0) != (c.flapPeriod > 0) || c.flapDown >= c.flapPeriod && c.flapPeriod > 0:
		return errors.New("--flap-down and --flap-period go together, with the down time shorter than the period")
	case c.faultSinks < 0:
		return errors.New("--fault-sinks must not be negative")
	case c.downSinks < 0:
		return errors.New("--down-sinks must not be negative")
	case c.compare && c.relayBin == "":
		return errors.New("--compare-no-group-commit needs --relay-bin")
	case c.compareReference && c.relayBin == "":
		return errors.New("--compare-reference needs --relay-bin")
	case c.compareReference && (c.compare || c.noGroupCommit):
		return errors.New("--compare-reference compares pyrorelay as it runs by default: leave out --compare-no-group-commit and --no-group-commit")
	case c.compareCommand == "" && (len(c.compareArgs) > 0 || c.compareConfig != "" || c.compareName != ""):
		return errors.New("--compare-arg, --compare-config and --compare-name go with --compare-command")
	case c.compareCommand != "" && c.relayBin == "":
		return errors.New("--compare-command needs --relay-bin")
	case c.compareCommand != "" && (c.compare || c.noGroupCommit || c.compareReference):
		return errors.New("--compare-command compares pyrorelay as it runs by default: leave out --compare-reference, --compare-no-group-commit and --no-group-commit")
	case c.compareCommand != "" && c.mode == "down-then-up":
		return errors.New("--compare-command: down-then-up measures pyrorelay's backlog, which another program does not report; use healthy or one-slow, with --fail-percent or --flap-* for faults")
	case c.refWriteBuffer <= 0:
		return errors.New("--reference-write-buffer must be positive")
	case c.compareReference && c.mode == "down-then-up":
		return errors.New("--compare-reference: the reference keeps nothing, so down-then-up has no backlog to measure; use healthy or one-slow")
	case c.relayBin != "" && c.sinks <= 0:
		return errors.New("--sinks must be positive with --relay-bin")
	case c.relayBin != "" && len(c.sinkListen) > 0:
		return errors.New("--sink-listen is for --url; with --relay-bin use --sinks")
	}
	if c.compareCommand != "" {
		o, err := newOtherRelay(c.compareCommand, c.compareArgs, c.compareConfig, c.compareName, c.compareListen, c.compareStartTimeout, c.sinks)
		if err != nil {
			return err
		}
		c.other = o
	}
	if c.url != "" {
		c.url = strings.TrimRight(c.url, "/")
		if err := loopbackOnly(strings.TrimPrefix(c.url, "http://")); err != nil {
			return fmt.Errorf("--url: %w", err)
		}
		for _, a := range c.sinkListen {
			if err := loopbackOnly(a); err != nil {
				return fmt.Errorf("--sink-listen: %w", err)
			}
		}
	}
	return nil
}

// loopbackOnly refuses addresses off this machine: the tool generates load,
// and load belongs on loopback.
func loopbackOnly(hostport string) error {
	host, _, err := net.SplitHostPort(strings.TrimSuffix(hostport, "/"))
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", hostport, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address", host)
	}
	return nil
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == referenceCommand {
		os.Exit(referenceMain(os.Args[2:], os.Stderr))
	}
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pyrorelay-bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pyrorelay-bench:", err)
		os.Exit(1)
	}
}

// run is runAll, with the tool's own CPU profile around it if asked for.
func run(ctx context.Context, cfg config, stdout, progress io.Writer) error {
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	return runAll(ctx, cfg, stdout, progress)
}

// runAll runs the benchmark once, or twice with the comparison, prints
// the report, and fails if an acknowledged request went missing.
func runAll(ctx context.Context, cfg config, stdout, progress io.Writer) error {
	var results []*result
	sides := []config{cfg}
	title := ""
	switch {
	case cfg.compare:
		gc, nogc := cfg, cfg
		gc.noGroupCommit, nogc.noGroupCommit = false, true
		sides, title = []config{gc, nogc}, "group commit vs one commit per write"
	case cfg.compareReference:
		ref := cfg
		ref.reference = true
		sides, title = []config{cfg, ref}, "pyrorelay vs the in-memory reference relay"
	case cfg.other != nil:
		other := cfg
		other.external = true
		sides, title = []config{cfg, other}, "pyrorelay vs "+cfg.other.name
	}
	for _, c := range sides {
		r, err := runOnce(ctx, c, progress)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	if cfg.jsonOut {
		out := struct {
			Runs       []*result   `json:"runs"`
			Comparison *comparison `json:"comparison,omitempty"`
		}{Runs: results}
		if len(results) == 2 {
			out.Comparison = compare(title, results[0], results[1])
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		for _, r := range results {
			r.print(stdout)
		}
		if len(results) == 2 {
			compare(title, results[0], results[1]).print(stdout)
		}
	}
	for _, r := range results {
		if r.Delivery != nil && r.Delivery.Missing > 0 {
			return fmt.Errorf("%s: %d acknowledged deliveries missing", r.Label, r.Delivery.Missing)
		}
		if !r.Drained {
			return fmt.Errorf("%s: queues did not drain within %s", r.Label, cfg.drainTimeout)
		}
	}
	return nil
}
