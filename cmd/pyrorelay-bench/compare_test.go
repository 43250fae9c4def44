package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCompareCommand runs pyrorelay, then another relay program started
// through --compare-command: this binary's reference relay, given its
// address and the sinks' through placeholders, on the command line or in
// a config file. The other program must be measured like pyrorelay (CPU
// from /proc, memory, delivery to every sink) and compared with it.
func TestCompareCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the relay binary")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		endpoint string
		command  string
		args     []string
		template string // config file text; "" for none
		label    string
	}{
		{
			name: "placeholders in args", endpoint: "ingest",
			command: exe + " " + referenceCommand + " --listen {listen}",
			args:    []string{"--forward", "{sink1}", "--forward={sink2}"},
			label:   filepath.Base(exe),
		},
		{
			// A shell runs the config file: the reference relay's command
			// line is in it, so it works only if the file is substituted.
			name: "placeholders in config", endpoint: "push",
			command:  "/bin/sh {config}",
			template: "cd {workdir} || exit 1\nexec '" + exe + "' " + referenceCommand + " --listen {listen} --forward {sink1} --forward {sink2}\n",
			label:    "other-relay",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig(buildRelay(t))
			c.endpoint, c.compareCommand, c.compareArgs = tt.endpoint, tt.command, tt.args
			c.compareListen, c.compareStartTimeout = "127.0.0.1:0", time.Minute
			if tt.template != "" {
				c.compareConfig = filepath.Join(t.TempDir(), "relay.sh.tmpl")
				if err := os.WriteFile(c.compareConfig, []byte(tt.template), 0o600); err != nil {
					t.Fatal(err)
				}
				c.compareName = tt.label
			}
			if err := c.check(); err != nil {
				t.Fatal(err)
			}
			runs, cmp := runComparison(t, c)
			relay, other := runs[0], runs[1]
			if relay.External || !other.External || other.Label != tt.label {
				t.Errorf("runs %q (external %v), %q (external %v), want the second labelled %q", relay.Label, relay.External, other.Label, other.External, tt.label)
			}
			if cmp.Title != "pyrorelay vs "+tt.label {
				t.Errorf("comparison titled %q", cmp.Title)
			}
			for _, r := range runs {
				if r.Load.Acked != c.count || r.Delivery == nil || r.Delivery.Missing != 0 || r.Delivery.Acked != c.count || r.Delivery.NoID != 0 {
					t.Errorf("%s: %d of %d acked (errors %v), delivery %+v", r.Label, r.Load.Acked, c.count, r.Load.Errors, r.Delivery)
				}
				if r.RSS == nil || r.RSS.Peak == 0 {
					t.Errorf("%s: no peak RSS", r.Label)
				}
				if r.CPU.RelayMsPerReq < 0 {
					t.Errorf("%s: CPU per request %v", r.Label, r.CPU.RelayMsPerReq)
				}
			}
			if other.Commits != 0 || cmp.PeakRSS[1] == 0 {
				t.Errorf("other program: %v commits, comparison %+v", other.Commits, cmp)
			}
		})
	}
}

// TestCompareCommandReport: the text report has the other program's run
// and the ratio block, both under its name.
func TestCompareCommandReport(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the relay binary")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := testConfig(buildRelay(t))
	c.compareCommand = exe + " " + referenceCommand + " --listen {listen} --forward {sink1} --forward {sink2}"
	c.compareName, c.compareListen, c.compareStartTimeout = "refrelay", "127.0.0.1:0", time.Minute
	if err := c.check(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runAll(context.Background(), c, &out, testWriter{t}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"== refrelay: healthy", "store             not known: refrelay", "== pyrorelay vs refrelay (same run)", "throughput ", "relay CPU ", "relay peak RSS "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report without %q:\n%s", want, out.String())
		}
	}
}

// TestCompareFlags: the --compare-* flags are checked before anything
// starts, with an error that names what is wrong.
func TestCompareFlags(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "relay.tmpl")
	if err := os.WriteFile(tmpl, []byte(`listen = "{listen}"`+"\n"+`sinks = ["{sink1}", "{sink2}"]`+"\nblock { }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"--relay-bin", "x"}
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"command", []string{"--compare-command", "prog --listen {listen} --to {sink1} --to {sink2}"}, ""},
		{"args", []string{"--compare-command", "prog", "--compare-arg", "--listen={listen}", "--compare-arg", "{workdir}/x {listen2}"}, ""},
		{"config", []string{"--compare-command", "prog run {config}", "--compare-config", tmpl}, ""},
		{"listen halves", []string{"--compare-command", "prog --host={listen_host} --port={listen_port} --ui={listen2_host}:{listen2_port}"}, ""},
		{"empty command", []string{"--compare-command", "  "}, "--compare-command is empty"},
		{"args without command", []string{"--compare-arg", "{listen}"}, "go with --compare-command"},
		{"config without command", []string{"--compare-config", tmpl}, "go with --compare-command"},
		{"no listen", []string{"--compare-command", "prog {sink1}"}, "{listen}"},
		{"listen not loopback", []string{"--compare-command", "prog {listen}", "--compare-listen", "10.0.0.1:4040"}, "--compare-listen: \"10.0.0.1\" is not a loopback address"},
		{"listen not host:port", []string{"--compare-command", "prog {listen}", "--compare-listen", "4040"}, "not host:port"},
		{"sink out of range", []string{"--compare-command", "prog {listen} {sink3}"}, "{sink3}: the tool starts 2 sinks"},
		{"more sinks", []string{"--sinks", "3", "--compare-command", "prog {listen} {sink3}"}, ""},
		{"unknown placeholder", []string{"--compare-command", "prog {listen} {sinks}"}, "placeholder {sinks}"},
		{"typo", []string{"--compare-command", "prog {lisen}"}, "unknown placeholder {lisen}"},
		{"config placeholder without file", []string{"--compare-command", "prog {listen} {config}"}, "give the template with --compare-config"},
		{"missing template", []string{"--compare-command", "prog {config}", "--compare-config", filepath.Join(dir, "nope")}, "--compare-config: open"},
		{"needs relay bin", []string{"--url", "http://127.0.0.1:1", "--compare-command", "prog {listen}"}, "--compare-command needs --relay-bin"},
		{"one comparison", []string{"--compare-command", "prog {listen}", "--compare-reference"}, "leave out"},
		{"no backlog", []string{"--compare-command", "prog {listen}", "--mode", "down-then-up"}, "down-then-up"},
		{"start timeout", []string{"--compare-command", "prog {listen}", "--compare-start-timeout", "0s"}, "--compare-start-timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.name != "needs relay bin" {
				args = append(slices.Clone(base), args...)
			}
			c, err := parseFlags(args, io.Discard)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			case tt.wantErr == "" && (c.other == nil || c.other.name != "prog"):
				t.Fatalf("other relay %+v, want one named prog", c.other)
			case tt.name == "config" && c.other.templateName != "relay":
				t.Errorf("config written as %q, want the template's name less .tmpl", c.other.templateName)
			}
		})
	}
}

// TestSubstitute: every placeholder is replaced wherever it is, and the
// rest of the text, braces of a config language included, is left alone.
func TestSubstitute(t *testing.T) {
	vals := map[string]string{"listen": "127.0.0.1:5000", "listen_port": "5000", "sink1": "http://127.0.0.1:9001", "config": "/w/r.alloy", "workdir": "/w"}
	tests := []struct{ in, want string }{
		{"--listen={listen}", "--listen=127.0.0.1:5000"},
		{"{workdir}/data {config}", "/w/data /w/r.alloy"},
		{`endpoint { url = "{sink1}" }`, `endpoint { url = "http://127.0.0.1:9001" }`},
		{"{listen}{listen}", "127.0.0.1:5000127.0.0.1:5000"},
		{"listen_port = {listen_port}", "listen_port = 5000"},
		{"block {}\n{ x }", "block {}\n{ x }"},
		{"{other}", "{other}"},
	}
	for _, tt := range tests {
		if got := substitute(tt.in, vals); got != tt.want {
			t.Errorf("substitute(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestOtherRelayStart: a program that exits, or never listens, fails the
// start with its log, instead of the load running against nothing.
func TestOtherRelayStart(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		timeout time.Duration
		wantErr string
	}{
		{"exits", []string{"-c", "echo bad config >&2; exit 3", "sh", "{listen}"}, time.Minute, "exited before listening"},
		{"never listens", []string{"-c", "exec sleep 60", "sh", "{listen}"}, 200 * time.Millisecond, "not listening"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := newOtherRelay("/bin/sh", tt.args, "", "", "127.0.0.1:0", tt.timeout, 2)
			if err != nil {
				t.Fatal(err)
			}
			p, err := o.start(context.Background(), nil, t.TempDir())
			if err == nil {
				_, _ = p.stop(10 * time.Second)
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			if tt.name == "exits" && !strings.Contains(err.Error(), "bad config") {
				t.Errorf("error without the program's log: %v", err)
			}
		})
	}
}

// TestProcessCPU: the CPU time read from /proc is the one the kernel
// reports to the process itself.
func TestProcessCPU(t *testing.T) {
	self := func() float64 {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
	}
	// Burn CPU until there is some to see in clock ticks.
	x := 0
	for self() < 0.1 {
		for i := range 1 << 20 {
			x += i
		}
	}
	_ = x
	before := self()
	got, err := processCPU(os.Getpid())
	after := self()
	if err != nil {
		t.Fatal(err)
	}
	// Ticks round down, to 10 ms; the two clocks differ by a few ticks.
	if got < before-0.05 || got > after+0.05 {
		t.Errorf("processCPU = %.3f s, getrusage %.3f..%.3f s", got, before, after)
	}
	if _, err := processCPU(1 << 30); err == nil {
		t.Error("no error for a process that does not exist")
	}
}
