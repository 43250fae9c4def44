package main

import (
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
