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
	fmt.Fprintf(w, "store commits     %.0f for %.0f writes: %.3f commits (x2 fdatasync) per request, %.1f writes per commit, %.2f ms per commit\n",
		r.Commits, r.Writes, r.CommitsPerReq, r.WritesPerCommit, r.CommitMs)
	fmt.Fprintf(w, "CPU in load       machine %.0f%% busy of %d cores; relay %.2f cores (%.2f ms per request), this tool with its sinks %.2f cores\n",
		100*r.CPU.MachineBusy, r.CPU.Cores, r.CPU.Relay, r.CPU.RelayMsPerReq, r.CPU.Tool)
	fmt.Fprintf(w, "queued in load    most entries waiting (sampled every 250 ms):")
	for _, q := range slices.Sorted(maps.Keys(r.MaxQueued)) {
		fmt.Fprintf(w, " %s %.0f", q, r.MaxQueued[q])
	}
	fmt.Fprintln(w)
	if r.Drained {
		fmt.Fprintf(w, "drain             queues empty %s after the load stopped", r.DrainTime.Round(time.Millisecond))
		if r.Backlog == nil {
			// What the relay sustains: acknowledged and delivered everywhere.
			fmt.Fprintf(w, ": %.0f/s delivered to every sink over load and drain", float64(r.Load.Acked)/(r.Load.Elapsed+r.DrainTime).Seconds())
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintf(w, "drain             NOT DRAINED %s after the load stopped\n", r.DrainTime.Round(time.Millisecond))
	}
	if b := r.Backlog; b != nil {
		fmt.Fprintf(w, "backlog           %.0f entries, %.1f MiB per down destination (%d down; bbolt file %.1f MiB), built at %.0f acked/s\n",
			b.Entries, b.Bytes/(1<<20), b.Down, float64(b.FileBytes)/(1<<20), b.IngestPerS)
		if b.RestartReady > 0 {
			fmt.Fprintf(w, "restart           shutdown %s, ready again on the backlog in %s\n", b.ShutdownTime.Round(time.Millisecond), b.RestartReady.Round(time.Millisecond))
		}
		fmt.Fprintf(w, "catch-up          %.0f entries per destination in %s: %.0f/s per destination, %.2fx the ingest rate (%.2f ms per commit)\n",
			b.Drained, b.DrainTime.Round(time.Millisecond), b.DrainPerS, b.DrainVsIngest, b.DrainCommitMs)
		fmt.Fprintf(w, "CPU in catch-up   machine %.0f%% busy; relay %.2f cores (%.2f ms per backlog entry)\n",
			100*b.DrainCPU.MachineBusy, b.DrainCPU.Relay, b.DrainCPU.RelayMsPerReq)
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

// comparison is group commit against one fsync'd transaction per write.
type comparison struct {
	ThroughputRatio float64 `json:"throughput_ratio"` // group / no-group acked/s
	P99Ratio        float64 `json:"p99_ratio"`        // group / no-group p99
	CommitsPerReq   [2]float64
}

func compare(gc, nogc *result) *comparison {
	c := &comparison{CommitsPerReq: [2]float64{gc.CommitsPerReq, nogc.CommitsPerReq}}
	if nogc.AckedPerS > 0 {
		c.ThroughputRatio = gc.AckedPerS / nogc.AckedPerS
	}
	if nogc.P99 > 0 {
		c.P99Ratio = gc.P99 / nogc.P99
	}
	return c
}

func (c *comparison) print(w io.Writer) {
	fmt.Fprintf(w, "\n== group commit vs one commit per write (same run)\n")
	fmt.Fprintf(w, "throughput        %.2fx\n", c.ThroughputRatio)
	fmt.Fprintf(w, "p99 latency       %.2fx\n", c.P99Ratio)
	fmt.Fprintf(w, "commits/request   %.3f vs %.3f\n", c.CommitsPerReq[0], c.CommitsPerReq[1])
}

func (m rss) String() string {
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	if m.Sampled {
		return fmt.Sprintf("%.1f MiB (largest process_resident_memory_bytes sampled every 250 ms)", mib(m.Peak))
	}
	return fmt.Sprintf("%.1f MiB (VmHWM); sampled peaks: anonymous %.1f MiB (heap, stacks), file-backed %.1f MiB (bbolt mmap, reclaimable)",
		mib(m.Peak), mib(m.Anon), mib(m.File))
}
