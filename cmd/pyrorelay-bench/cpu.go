package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuSnapshot is what the CPU did up to a moment: the machine's busy and
// total time (/proc/stat), and this process's own user+system time.
type cpuSnapshot struct {
	busy, total float64 // seconds, all CPUs
	self        float64 // seconds
	at          time.Time
}

func takeCPU() cpuSnapshot {
	s := cpuSnapshot{at: time.Now()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 5 || fields[0] != "cpu" {
		return s
	}
	// user nice system idle iowait irq softirq steal ...; idle and iowait
	// are the time nothing ran. Units are USER_HZ, 100 on Linux.
	for i, f := range fields[1:] {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			continue
		}
		if i >= 8 { // guest time is already counted in user
			break
		}
		s.total += v / 100
		if i != 3 && i != 4 {
			s.busy += v / 100
		}
	}
	return s
}

func tvSeconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}

// cpuUse is the CPU spent between two snapshots.
type cpuUse struct {
	// MachineBusy is the share of all CPUs busy (1 = every core), whoever
	// ran: the tool, the relay, and anything else on the machine.
	MachineBusy float64 `json:"machine_busy"`
	Cores       int     `json:"cores"`
	// Tool and Relay are CPU seconds per wall second (1 = one core).
	Tool  float64 `json:"tool_cores"`
	Relay float64 `json:"relay_cores"`
	// RelayMsPerReq is the relay's CPU per acknowledged request,
	// forwarding to every destination included.
	RelayMsPerReq float64 `json:"relay_cpu_ms_per_request"`
}

func measureCPU(a, b cpuSnapshot, relayCPU float64, acked int) cpuUse {
	wall := b.at.Sub(a.at).Seconds()
	u := cpuUse{Cores: numCPU()}
	if d := b.total - a.total; d > 0 {
		u.MachineBusy = (b.busy - a.busy) / d
	}
	if wall > 0 {
		u.Tool = (b.self - a.self) / wall
		u.Relay = relayCPU / wall
	}
	if acked > 0 {
		u.RelayMsPerReq = 1000 * relayCPU / float64(acked)
	}
	return u
}

func numCPU() int { return runtime.NumCPU() }

// clockTicks is USER_HZ, the unit of the times in /proc/<pid>/stat: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// processCPU is the user+system CPU time a process has used so far, in
// seconds, from /proc/<pid>/stat: what the process_cpu_seconds_total of a
// Go program's /metrics reports, read from outside, for a program that
// exposes no such metric where the tool can reach it.
func processCPU(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("cpu time of process %d: %w", pid, err)
	}
	// The command name, in parentheses, may hold spaces: count the fields
	// from after its closing one. utime and stime are fields 14 and 15;
	// state, field 3, is the first after the name.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("cpu time of process %d: no command name in its stat", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("cpu time of process %d: %d fields in its stat", pid, len(fields)+2)
	}
	utime, err1 := strconv.ParseFloat(fields[11], 64)
	stime, err2 := strconv.ParseFloat(fields[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("cpu time of process %d: %w", pid, err)
	}
	return (utime + stime) / clockTicks, nil
}
