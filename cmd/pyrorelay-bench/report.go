package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"time"
)

func (r *result) print(w io.Writer) {
	fmt.Fprintf(w, "\n== %s: %s, %d clients, %s %s body %d B, %d sinks\n", r.Label, r.Mode, r.Clients, r.Endpoint, r.Body, r.BodyBytes, r.Sinks)
	fmt.Fprintf(w, "acknowledged      %d of %d in %s: %.0f/s (%.1f MiB/s of bodies)\n",
		r.Load.Acked, r.Load.Sent, r.Load.Elapsed.Round(time.Millisecond), r.AckedPerS, r.AckedPerS*float64(r.BodyBytes)/(1<<20))
	fmt.Fprintf(w, "answer latency    p50 %.2f ms  p99 %.2f ms  p99.9 %.2f ms  max %.2f ms\n", r.P50, r.P99, r.P999, r.MaxLatency)
	if len(r.Load.Errors) == 0 {
		fmt.Fprintf(w, "errors            none\n")
	} else {
		fmt.Fprintf(w, "errors           ")
		for _, k := range slices.Sorted(maps.Keys(r.Load.Errors)) {
			fmt.Fprintf(w, " %s: %d", k, r.Load.Errors[k])
		}
		fmt.Fprintln(w)
	}
	switch {
	case r.Reference:
		fmt.Fprintf(w, "store             none: the reference keeps nothing\n")
	case r.External:
		fmt.Fprintf(w, "store             not known: %s is not pyrorelay (disk writes below)\n", r.Label)
	default:
		fmt.Fprintf(w, "store commits     %.0f for %.0f writes: %.3f commits (x2 fdatasync) per request, %.1f writes per commit, %.2f ms per commit\n",
			r.Commits, r.Writes, r.CommitsPerReq, r.WritesPerCommit, r.CommitMs)
	}
	fmt.Fprintf(w, "CPU in load       machine %.0f%% busy of %d cores; relay %.2f cores (%.2f ms per request), this tool with its sinks %.2f cores\n",
		100*r.CPU.MachineBusy, r.CPU.Cores, r.CPU.Relay, r.CPU.RelayMsPerReq, r.CPU.Tool)
	switch {
	case r.Reference:
		fmt.Fprintf(w, "queues            none: every answer came after every sink's\n")
	case r.External:
		fmt.Fprintf(w, "queues            not known: the delivery check below tells what reached the sinks\n")
	case r.Drained:
		r.printQueued(w)
		fmt.Fprintf(w, "drain             queues empty %s after the load stopped", r.DrainTime.Round(time.Millisecond))
		if r.Backlog == nil {
			// What the relay sustains: acknowledged and delivered everywhere.
			fmt.Fprintf(w, ": %.0f/s delivered to every sink over load and drain", float64(r.Load.Acked)/(r.Load.Elapsed+r.DrainTime).Seconds())
		}
		fmt.Fprintln(w)
	default:
		r.printQueued(w)
		fmt.Fprintf(w, "drain             NOT DRAINED %s after the load stopped\n", r.DrainTime.Round(time.Millisecond))
	}
	if b := r.Backlog; b != nil {
		fmt.Fprintf(w, "backlog           %.0f entries, %.1f MiB per down destination (%d down; bbolt file %.1f MiB), built at %.0f acked/s\n",
			b.Entries, b.Bytes/(1<<20), b.Down, float64(b.FileBytes)/(1<<20), b.IngestPerS)
		if b.RestartReady > 0 {
			how := "shutdown " + b.ShutdownTime.Round(time.Millisecond).String()
			if b.Crashed {
				how = "killed (SIGKILL)"
			}
			if b.CacheDropped {
				how += ", page cache dropped"
			}
			fmt.Fprintf(w, "restart           %s, ready again on the backlog in %s\n", how, b.RestartReady.Round(time.Millisecond))
		}
		fmt.Fprintf(w, "catch-up          %.0f entries per destination in %s: %.0f/s per destination, %.2fx the ingest rate (%.2f ms per commit)\n",
			b.Drained, b.DrainTime.Round(time.Millisecond), b.DrainPerS, b.DrainVsIngest, b.DrainCommitMs)
		fmt.Fprintf(w, "CPU in catch-up   machine %.0f%% busy; relay %.2f cores (%.2f ms per backlog entry)\n",
			100*b.DrainCPU.MachineBusy, b.DrainCPU.Relay, b.DrainCPU.RelayMsPerReq)
	}
	if len(r.Delivered) > 0 && !r.Reference {
		fmt.Fprintf(w, "delivered in load")
		for _, d := range r.Delivered {
			if r.External {
				fmt.Fprintf(w, "  %s %.0f/s (%.2fx acked)", d.Name, d.PerS, d.VsAcked)
			} else {
				fmt.Fprintf(w, "  %s %.0f/s (%.2fx acked, %.0f queued at the end)", d.Name, d.PerS, d.VsAcked, d.QueuedAtEnd)
			}
			if d.Faults != "" {
				fmt.Fprintf(w, " [%s]", d.Faults)
			}
		}
		fmt.Fprintln(w)
		if !r.External {
			fmt.Fprintf(w, "dead letters      %.0f after the drain\n", r.DeadLettered)
		}
	}
	if r.DiskWritten > 0 {
		fmt.Fprintf(w, "disk writes       %.1f MiB over load and drain: %.2f bytes per body byte acknowledged\n",
			float64(r.DiskWritten)/(1<<20), r.WrittenPerByte)
	}
	if o := r.Outage; o != nil {
		fmt.Fprintf(w, "outage            %.2f requests/s per down sink after its first minute; first delivery %s after the sinks came back\n",
			o.RequestsPerS, o.ResumeAfter.Round(time.Millisecond))
	}
	if r.StartReady > 0 {
		fmt.Fprintf(w, "relay start       ready in %s\n", r.StartReady.Round(time.Millisecond))
	}
	if r.RSS != nil {
		fmt.Fprintf(w, "relay peak RSS    %s\n", r.RSS)
	}
	if r.RSSAfterRestart != nil {
		fmt.Fprintf(w, "  after restart   %s\n", r.RSSAfterRestart)
	}
	if d := r.Delivery; d != nil {
		verdict := "OK"
		if d.Missing > 0 {
			verdict = fmt.Sprintf("FAILED, e.g. %v", d.MissingSample)
		}
		fmt.Fprintf(w, "delivery          %d acked ids x %d sinks: %d missing, %d duplicates, %d delivered but not acked, %d without id: %s\n",
			d.Acked, d.Sinks, d.Missing, d.Duplicates, d.Unacked, d.NoID, verdict)
		for _, s := range r.Sink {
			fmt.Fprintf(w, "  %-8s        %d requests (%d refused), %.1f MiB\n", s.Name, s.Requests, s.Refused, float64(s.Bytes)/(1<<20))
		}
	} else {
		fmt.Fprintf(w, "delivery          not checked: no sinks (give --sink-listen and point the relay at them)\n")
	}
	if r.WorkDir != "" {
		fmt.Fprintf(w, "work dir          %s\n", r.WorkDir)
	}
}

// printQueued prints the most entries seen waiting in each queue.
func (r *result) printQueued(w io.Writer) {
	fmt.Fprintf(w, "queued in load    most entries waiting (sampled every 250 ms):")
	for _, q := range slices.Sorted(maps.Keys(r.MaxQueued)) {
		fmt.Fprintf(w, " %s %.0f", q, r.MaxQueued[q])
	}
	fmt.Fprintln(w)
}

// comparison is two runs of the same load: group commit against one
// fsync'd transaction per write, or pyrorelay against the in-memory
// reference relay or another program. Ratios are the first run's over
// the second's.
type comparison struct {
	Title           string     `json:"title"`
	ThroughputRatio float64    `json:"throughput_ratio"` // acked/s
	P99Ratio        float64    `json:"p99_ratio"`
	CommitsPerReq   [2]float64 `json:"commits_per_request"`
	// CPUPerReq is each relay's CPU per acknowledged request, ms.
	CPUPerReq [2]float64 `json:"relay_cpu_ms_per_request"`
	// PeakRSS is each relay's peak resident memory, bytes.
	PeakRSS [2]int64 `json:"relay_peak_rss_bytes"`
}

func compare(title string, a, b *result) *comparison {
	c := &comparison{
		Title:         title,
		CommitsPerReq: [2]float64{a.CommitsPerReq, b.CommitsPerReq},
		CPUPerReq:     [2]float64{a.CPU.RelayMsPerReq, b.CPU.RelayMsPerReq},
	}
	if b.AckedPerS > 0 {
		c.ThroughputRatio = a.AckedPerS / b.AckedPerS
	}
	if b.P99 > 0 {
		c.P99Ratio = a.P99 / b.P99
	}
	for i, r := range []*result{a, b} {
		if r.RSS != nil {
			c.PeakRSS[i] = r.RSS.Peak
		}
	}
	return c
}

func (c *comparison) print(w io.Writer) {
	fmt.Fprintf(w, "\n== %s (same run)\n", c.Title)
	fmt.Fprintf(w, "throughput        %.2fx\n", c.ThroughputRatio)
	fmt.Fprintf(w, "p99 latency       %.2fx\n", c.P99Ratio)
	fmt.Fprintf(w, "commits/request   %.3f vs %.3f\n", c.CommitsPerReq[0], c.CommitsPerReq[1])
	fmt.Fprintf(w, "relay CPU         %.2f vs %.2f ms per request\n", c.CPUPerReq[0], c.CPUPerReq[1])
	if c.PeakRSS[0] > 0 && c.PeakRSS[1] > 0 {
		fmt.Fprintf(w, "relay peak RSS    %.1f vs %.1f MiB: %.2fx\n", float64(c.PeakRSS[0])/(1<<20), float64(c.PeakRSS[1])/(1<<20), float64(c.PeakRSS[0])/float64(c.PeakRSS[1]))
	}
}

func (m rss) String() string {
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	if m.Sampled {
		return fmt.Sprintf("%.1f MiB (largest process_resident_memory_bytes sampled every 250 ms)", mib(m.Peak))
	}
	return fmt.Sprintf("%.1f MiB (VmHWM); sampled peaks: anonymous %.1f MiB (heap, stacks), file-backed %.1f MiB (the binary, bbolt's mmap; reclaimable)",
		mib(m.Peak), mib(m.Anon), mib(m.File))
}
