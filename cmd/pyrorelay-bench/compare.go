package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// otherRelay is another relay program pyrorelay is compared with
// (--compare-command): any program that takes the Pyroscope ingest or Push
// API on a loopback address the tool gives it and forwards to the sinks
// the tool starts. The tool knows it only through its command line and,
// optionally, a config file, in which it substitutes placeholders:
//
//	{listen}   the loopback host:port it must serve the load on
//	{listen2}  another free loopback host:port, for its own HTTP server
//	{listen_host}, {listen_port}, {listen2_host}, {listen2_port}
//	           their two halves, for configs that take them apart
//	{sink1}... the sinks' base URLs, http://127.0.0.1:PORT
//	{config}   the path of the substituted config file (--compare-config)
//	{workdir}  a directory of its own for this run
type otherRelay struct {
	name string
	// argv is the command line, placeholders not yet substituted.
	argv []string
	// template is the config file's text, "" without --compare-config;
	// templateName the name of the file written from it.
	template     string
	templateName string
	// listen is where the program serves: 127.0.0.1:0 lets the tool
	// choose a free port.
	listen       string
	startTimeout time.Duration
}

// placeholder matches a {name} in a command line or config template.
var placeholder = regexp.MustCompile(`\{([a-z][a-z0-9_]*)\}`)

// newOtherRelay reads the --compare-* flags: command (split at spaces,
// no shell quoting) then args, each one argument as it is, and the
// template file. It checks the placeholders against sinks, the number of
// sinks the tool starts.
func newOtherRelay(command string, args []string, templatePath, name, listen string, startTimeout time.Duration, sinks int) (*otherRelay, error) {
	o := &otherRelay{name: name, argv: append(strings.Fields(command), args...), listen: listen, startTimeout: startTimeout}
	if len(o.argv) == 0 {
		return nil, errors.New("--compare-command is empty: give the program to compare with and its arguments")
	}
	if o.name == "" {
		o.name = filepath.Base(o.argv[0])
	}
	if err := loopbackOnly(listen); err != nil {
		return nil, fmt.Errorf("--compare-listen: %w", err)
	}
	if startTimeout <= 0 {
		return nil, errors.New("--compare-start-timeout must be positive")
	}
	texts := slices.Clone(o.argv)
	if templatePath != "" {
		b, err := os.ReadFile(templatePath)
		if err != nil {
			return nil, fmt.Errorf("--compare-config: %w", err)
		}
		// The file keeps the template's name, less a .tmpl suffix:
		// some programs read a config by its extension.
		o.template, o.templateName = string(b), strings.TrimSuffix(filepath.Base(templatePath), ".tmpl")
		texts = append(texts, o.template)
	}
	used := map[string]bool{}
	for _, t := range texts {
		for _, m := range placeholder.FindAllStringSubmatch(t, -1) {
			used[m[1]] = true
		}
	}
	for p := range used {
		switch n, isSink := strings.CutPrefix(p, "sink"); {
		case p == "listen", p == "listen2", p == "workdir",
			p == "listen_host", p == "listen_port", p == "listen2_host", p == "listen2_port":
		case p == "config" && templatePath != "":
		case p == "config":
			return nil, errors.New("--compare-command uses {config}: give the template with --compare-config")
		case isSink:
			if i, err := strconv.Atoi(n); err != nil || i < 1 || i > sinks {
				return nil, fmt.Errorf("placeholder {%s}: the tool starts %d sinks, {sink1} to {sink%d}", p, sinks, sinks)
			}
		default:
			return nil, fmt.Errorf("unknown placeholder {%s}: want {listen}, {listen2} (or their _host and _port), {sink1}..{sink%d}, {config} or {workdir}", p, sinks)
		}
	}
	if !used["listen"] && !used["listen_port"] {
		return nil, errors.New("neither --compare-command nor --compare-config has {listen} or {listen_port}: the program must serve the load where the tool sends it")
	}
	return o, nil
}

// substitute replaces the placeholders in text with their values; vals
// has every placeholder newOtherRelay allowed.
func substitute(text string, vals map[string]string) string {
	return placeholder.ReplaceAllStringFunc(text, func(m string) string {
		if v, ok := vals[m[1:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// freeLoopback returns a loopback host:port nothing listens on now. The
// program is told it and listens on it itself, a moment later.
func freeLoopback() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// start writes the config into work, starts the program with its output
// in work/NAME.log, and returns once its listen address accepts
// connections.
func (o *otherRelay) start(ctx context.Context, sinks []*sink, work string) (*relayProc, error) {
	listen := o.listen
	if _, port, _ := net.SplitHostPort(listen); port == "0" {
		var err error
		if listen, err = freeLoopback(); err != nil {
			return nil, err
		}
	}
	listen2, err := freeLoopback()
	if err != nil {
		return nil, err
	}
	progDir := filepath.Join(work, o.name)
	if err := os.MkdirAll(progDir, 0o700); err != nil {
		return nil, fmt.Errorf("work dir of %s: %w", o.name, err)
	}
	vals := map[string]string{"listen": listen, "listen2": listen2, "workdir": progDir}
	for _, name := range []string{"listen", "listen2"} {
		vals[name+"_host"], vals[name+"_port"], _ = net.SplitHostPort(vals[name])
	}
	for i, s := range sinks {
		vals["sink"+strconv.Itoa(i+1)] = s.URL()
	}
	if o.template != "" {
		vals["config"] = filepath.Join(progDir, o.templateName)
		if err := os.WriteFile(vals["config"], []byte(substitute(o.template, vals)), 0o600); err != nil {
			return nil, fmt.Errorf("config of %s: %w", o.name, err)
		}
	}
	argv := make([]string, len(o.argv))
	for i, a := range o.argv {
		argv[i] = substitute(a, vals)
	}
	logPath := filepath.Join(work, o.name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log of %s: %w", o.name, err)
	}
	fmt.Fprintf(logFile, "pyrorelay-bench: starting %q\n", argv)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = progDir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	start := time.Now()
	p, err := spawn(cmd, logFile)
	if err != nil {
		return nil, err
	}
	if err := p.waitListening(ctx, listen, o.startTimeout); err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, err)
	}
	p.url = "http://" + listen
	p.Ready = time.Since(start)
	return p, nil
}

// waitListening waits until addr accepts a TCP connection: the program
// serves there. It kills the process if that does not happen in time.
func (p *relayProc) waitListening(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	retry := time.NewTicker(10 * time.Millisecond)
	defer retry.Stop()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("exited before listening on %s (%v); its log: %s\n%s", addr, p.waitErr, p.logPath, tail(p.logPath))
		case <-deadline.C:
			p.kill()
			return fmt.Errorf("not listening on %s within %s (--compare-start-timeout); its log: %s\n%s", addr, timeout, p.logPath, tail(p.logPath))
		case <-ctx.Done():
			p.kill()
			return ctx.Err()
		case <-retry.C:
		}
	}
}

// processMetrics stands in for the /metrics of a program that exposes
// none where the tool looks: its CPU time, read from /proc, under the name
// the tool reads pyrorelay's by. It has no queues, so it is always drained.
func processMetrics(p *relayProc) (relayMetrics, error) {
	cpu, err := processCPU(p.cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	return relayMetrics{"process_cpu_seconds_total": cpu}, nil
}
