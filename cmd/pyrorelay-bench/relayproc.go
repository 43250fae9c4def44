package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// relayProc is a relay process the tool started and owns: pyrorelay, the
// reference relay, or another program it is compared with.
type relayProc struct {
	cmd     *exec.Cmd
	url     string
	logPath string
	// Ready is the time from starting the process to the first 200 from
	// /-/ready.
	Ready time.Duration

	exited   chan struct{}
	waitErr  error
	rssMax   atomic.Int64 // largest sampled VmRSS, bytes
	anonMax  atomic.Int64 // largest sampled RssAnon: heap, stacks
	fileMax  atomic.Int64 // largest sampled RssFile: mostly bbolt's mmap
	hwm      int64        // VmHWM read just before stopping
	stopRSS  chan struct{}
	rssDone  chan struct{}
	stopOnce sync.Once
}

// serveArgs are the arguments of pyrorelay serve on 127.0.0.1:0 with
// dataDir, logging JSON (which startRelay reads the address from), and
// extra.
func serveArgs(dataDir string, extra []string) []string {
	return append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--log-format", "json"}, extra...)
}

// startRelay runs bin with args, which make it log a JSON "serving" line
// with its address on stderr, and returns once /-/ready answers 200.
func startRelay(ctx context.Context, bin string, args []string, logPath string, timeout time.Duration) (*relayProc, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("relay log: %w", err)
	}
	addrc := make(chan string, 1)
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = &logScanner{out: logFile, addr: addrc}
	start := time.Now()
	p, err := spawn(cmd, logFile)
	if err != nil {
		return nil, err
	}

	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	select {
	case addr := <-addrc:
		p.url = "http://" + addr
	case <-p.exited:
		return nil, fmt.Errorf("relay exited before serving (%v); its log: %s\n%s", p.waitErr, logPath, tail(logPath))
	case <-deadline.C:
		p.kill()
		return nil, fmt.Errorf("relay did not log its address within %s; its log: %s", timeout, logPath)
	case <-ctx.Done():
		p.kill()
		return nil, ctx.Err()
	}
	// The address is logged as the relay becomes ready; poll /-/ready so
	// that the time measured is the one a load balancer would see.
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(p.url + "/-/ready")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				p.Ready = time.Since(start)
				return p, nil
			}
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("relay exited before ready (%v); its log: %s\n%s", p.waitErr, logPath, tail(logPath))
		case <-deadline.C:
			p.kill()
			return nil, fmt.Errorf("relay not ready within %s; its log: %s", timeout, logPath)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// spawn starts cmd, whose output goes to logFile, and owns it from then
// on: a goroutine waits for its exit (and closes logFile), another samples
// its memory until it is stopped.
func spawn(cmd *exec.Cmd, logFile *os.File) (*relayProc, error) {
	p := &relayProc{cmd: cmd, logPath: logFile.Name(), exited: make(chan struct{}), stopRSS: make(chan struct{}), rssDone: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	go p.sampleRSS()
	return p, nil
}

// logScanner copies the relay's log to a file and picks the listen address
// out of its JSON "serving" line. exec.Cmd copies stderr into it and Wait
// waits for that copy, so no line is lost.
type logScanner struct {
	out     io.Writer
	addr    chan<- string
	partial []byte
}

func (l *logScanner) Write(b []byte) (int, error) {
	if _, err := l.out.Write(b); err != nil {
		return 0, err
	}
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := l.partial[:i]
		var rec struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if bytes.HasPrefix(line, []byte("{")) && json.Unmarshal(line, &rec) == nil && rec.Msg == "serving" && rec.Addr != "" {
			select {
			case l.addr <- rec.Addr:
			default:
			}
		}
		l.partial = l.partial[i+1:]
	}
	if len(l.partial) > 1<<20 {
		l.partial = nil // a runaway line: not a log record we need
	}
	return len(b), nil
}

// tail is the end of a log file, for error messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// sampleRSS records the largest VmRSS seen, every 50 ms, until stop.
func (p *relayProc) sampleRSS() {
	defer close(p.rssDone)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if st, err := procStatus(p.cmd.Process.Pid); err == nil {
			for _, m := range []struct {
				field string
				max   *atomic.Int64
			}{{"VmRSS", &p.rssMax}, {"RssAnon", &p.anonMax}, {"RssFile", &p.fileMax}} {
				if v := st[m.field]; v > m.max.Load() {
					m.max.Store(v)
				}
			}
		}
		select {
		case <-t.C:
		case <-p.stopRSS:
			return
		case <-p.exited:
			return
		}
	}
}

// PeakRSS is the kernel's high-water mark of the process's resident set
// (VmHWM), read while it runs; it falls back to the largest sample.
func (p *relayProc) PeakRSS() int64 {
	if p.hwm > 0 {
		return p.hwm
	}
	if hwm, err := procStatusBytes(p.cmd.Process.Pid, "VmHWM"); err == nil {
		return max(hwm, p.rssMax.Load())
	}
	return p.rssMax.Load()
}

// rss is a process's memory high-water marks.
type rss struct {
	Peak int64 `json:"peak_bytes"`      // VmHWM
	Anon int64 `json:"anon_peak_bytes"` // largest RssAnon sampled: Go heap, stacks
	File int64 `json:"file_peak_bytes"` // largest RssFile sampled: bbolt's mmap of the file, reclaimable page cache
	// Sampled means Peak is the largest process_resident_memory_bytes
	// the relay reported (--url), not its VmHWM.
	Sampled bool `json:"sampled,omitempty"`
}

// RSS returns the high-water marks; call it before stop or after.
func (p *relayProc) RSS() rss {
	return rss{Peak: p.PeakRSS(), Anon: p.anonMax.Load(), File: p.fileMax.Load()}
}

// procStatusBytes reads a "kB" field of /proc/<pid>/status.
func procStatusBytes(pid int, field string) (int64, error) {
	st, err := procStatus(pid)
	if err != nil {
		return 0, err
	}
	v, ok := st[field]
	if !ok {
		return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
	}
	return v, nil
}

// procStatus reads the "kB" fields of /proc/<pid>/status, in bytes.
func procStatus(pid int) (map[string]int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		num, isKB := strings.CutSuffix(strings.TrimSpace(rest), " kB")
		if !isKB {
			continue
		}
		if kb, err := strconv.ParseInt(num, 10, 64); err == nil {
			out[name] = kb << 10
		}
	}
	return out, nil
}

// stop asks the relay to shut down (SIGTERM) and waits; after timeout it
// kills it. It returns the time the shutdown took.
func (p *relayProc) stop(timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	var err error
	p.stopOnce.Do(func() {
		p.endSampling()
		if sigErr := p.cmd.Process.Signal(syscall.SIGTERM); sigErr != nil && !errors.Is(sigErr, os.ErrProcessDone) {
			err = fmt.Errorf("signal relay: %w", sigErr)
		}
		select {
		case <-p.exited:
		case <-time.After(timeout):
			p.kill()
			err = fmt.Errorf("relay did not stop within %s: killed", timeout)
		}
	})
	return time.Since(start), err
}

// crash kills the relay (SIGKILL) as a crash would: it writes nothing
// more, and its file stays as its last commit left it.
func (p *relayProc) crash() {
	p.stopOnce.Do(func() {
		p.endSampling()
		p.kill()
	})
}

// endSampling stops the RSS sampler and keeps the peak: /proc/<pid> goes
// with the process.
func (p *relayProc) endSampling() {
	close(p.stopRSS)
	<-p.rssDone
	p.hwm = p.PeakRSS()
}

// dropPageCache writes dirty pages back and drops the kernel's page cache,
// so that the next open reads the relay's file from the disk.
func dropPageCache() error {
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		return fmt.Errorf("drop the page cache (--drop-caches needs Linux and root): %w", err)
	}
	return nil
}

func (p *relayProc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// writtenBytes is what the process has sent to the storage device so far
// (write_bytes of /proc/<pid>/io): page-cache write-back it caused included,
// rewrites of the same page counted each time, reads not at all. The relay
// fsyncs every commit, so by the end of a drain it is complete.
func (p *relayProc) writtenBytes() (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.cmd.Process.Pid), "io"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no write_bytes in /proc/%d/io", p.cmd.Process.Pid)
}
