package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// result is one run's figures.
type result struct {
	Label     string `json:"label"`
	Mode      string `json:"mode"`
	Endpoint  string `json:"endpoint"`
	Body      string `json:"body"`
	BodyBytes int    `json:"body_bytes"`
	Clients   int    `json:"clients"`
	Sinks     int    `json:"sinks"`
	// Reference is set for the in-memory reference relay's run, which has
	// no store: no commits, no queues.
	Reference bool `json:"reference,omitempty"`
	// External is set for another program's run (--compare-command): its
	// store and queues, if any, are not known to the tool.
	External bool `json:"external,omitempty"`

	Load       loadResult `json:"load"`
	AckedPerS  float64    `json:"acked_per_s"`
	P50        float64    `json:"p50_ms"`
	P99        float64    `json:"p99_ms"`
	P999       float64    `json:"p999_ms"`
	MaxLatency float64    `json:"max_ms"`

	// Store commits (each is two fdatasyncs in bbolt: data, then meta
	// page) and writes during the load, forwarders' acks included.
	Commits         float64 `json:"commits"`
	Writes          float64 `json:"writes"`
	CommitsPerReq   float64 `json:"commits_per_request"`
	WritesPerCommit float64 `json:"writes_per_commit"`
	// CommitMs is the mean time of one commit, fsyncs included, during
	// the load: near the disk's fsync time when the disk is the limit.
	CommitMs float64 `json:"commit_ms"`
	// MaxQueued is the most entries seen waiting in each queue while the
	// load ran (sampled): near zero when the forwarders keep up.
	MaxQueued map[string]float64 `json:"max_queued_during_load"`
	// CPU is who used the CPU during the load.
	CPU cpuUse `json:"cpu"`

	Drained   bool          `json:"drained"`
	DrainTime time.Duration `json:"drain_time_ns"` // load end to every queue empty

	// Backlog figures (down-then-up).
	Backlog *backlog `json:"backlog,omitempty"`

	StartReady time.Duration `json:"start_ready_ns,omitempty"`
	// RSS is the memory of the relay that took the load (and drained it,
	// without --restart).
	RSS *rss `json:"rss,omitempty"`
	// RSSAfterRestart is the restarted relay's, which opened the full
	// backlog and drained it.
	RSSAfterRestart *rss `json:"rss_after_restart,omitempty"`

	// Delivered is each sink's delivery while the load ran.
	Delivered []sinkDelivery `json:"delivered_in_load,omitempty"`
	// DiskWritten is what the relay wrote to the disk from the load's
	// start to the end of the drain, and WrittenPerByte that over the body
	// bytes acknowledged (1.0 would be each body written once).
	DiskWritten    int64   `json:"disk_written_bytes,omitempty"`
	WrittenPerByte float64 `json:"disk_written_per_body_byte,omitempty"`
	// DeadLettered is the entries in dead-letter after the drain.
	DeadLettered float64 `json:"dead_lettered"`
	// Outage is a long outage's figures (down-then-up, --down-for).
	Outage *outageFigures `json:"outage,omitempty"`

	Delivery *deliveryCheck `json:"delivery,omitempty"`
	Sink     []sinkStats    `json:"sinks_seen,omitempty"`
	WorkDir  string         `json:"work_dir,omitempty"`
}

// backlog describes a queue built behind down destinations and drained.
type backlog struct {
	Down          int           `json:"down_destinations"`
	Entries       float64       `json:"entries_per_destination"` // queued when the sinks came back
	Bytes         float64       `json:"bytes_per_destination"`
	FileBytes     int64         `json:"file_bytes,omitempty"` // bbolt file size when the sinks came back
	IngestPerS    float64       `json:"ingest_per_s"`         // acked/s while building it
	Drained       float64       `json:"drained_per_destination"`
	DrainTime     time.Duration `json:"drain_time_ns"` // sinks back to queues empty
	DrainPerS     float64       `json:"drain_per_s_per_destination"`
	DrainVsIngest float64       `json:"drain_vs_ingest"`
	DrainCommitMs float64       `json:"drain_commit_ms"` // mean commit time while draining
	DrainCPU      cpuUse        `json:"drain_cpu"`
	RestartReady  time.Duration `json:"restart_ready_ns,omitempty"`
	ShutdownTime  time.Duration `json:"shutdown_ns,omitempty"`
	Crashed       bool          `json:"crashed,omitempty"`       // killed, not stopped, before the restart
	CacheDropped  bool          `json:"cache_dropped,omitempty"` // page cache dropped before the restart
}

type sinkStats struct {
	Name     string `json:"name"`
	Requests uint64 `json:"requests"`
	Refused  uint64 `json:"refused"`
	Bytes    uint64 `json:"bytes"`
}

// runOnce runs one benchmark: sinks, relay, load, drain, checks.
func runOnce(ctx context.Context, cfg config, progress io.Writer) (*result, error) {
	logf := func(format string, args ...any) { fmt.Fprintf(progress, "bench: "+format+"\n", args...) }
	testdata, err := findTestdata(cfg.testdata)
	if err != nil {
		return nil, err
	}
	p, err := buildPayload(cfg.body, testdata, cfg.bodySize)
	if err != nil {
		return nil, err
	}
	bodyBytes := len(p.body)
	if cfg.endpoint == "push" {
		bodyBytes = len(p.profile)
	}
	res := &result{MaxQueued: map[string]float64{}, Mode: cfg.mode, Endpoint: cfg.endpoint, Body: cfg.body, BodyBytes: bodyBytes, Clients: cfg.clients}
	switch {
	case cfg.url != "":
		res.Label = "relay at " + cfg.url
	case cfg.external:
		res.Label, res.External = cfg.other.name, true
	case cfg.reference:
		res.Label, res.Reference = fmt.Sprintf("in-memory reference (%d B write buffer)", cfg.refWriteBuffer), true
	case cfg.noGroupCommit:
		res.Label = "no group commit"
	default:
		res.Label = "group commit"
	}

	// Sinks.
	var sinks []*sink
	defer func() {
		for _, s := range sinks {
			s.close()
		}
	}()
	addrs := cfg.sinkListen
	if cfg.relayBin != "" {
		addrs = make([]string, cfg.sinks)
		for i := range addrs {
			addrs[i] = "127.0.0.1:0"
		}
	}
	for i, a := range addrs {
		s, err := startSink("sink"+strconv.Itoa(i+1), a)
		if err != nil {
			return nil, err
		}
		sinks = append(sinks, s)
	}
	res.Sinks = len(sinks)
	switch cfg.mode {
	case "down-then-up":
		for i, s := range sinks {
			if cfg.downSinks == 0 || i < cfg.downSinks {
				s.down.Store(true)
			}
		}
	case "one-slow":
		if len(sinks) > 0 {
			sinks[0].delay.Store(int64(cfg.slowDelay))
		}
	}
	applyFaults(cfg, sinks, time.Now())

	// Relay.
	target := cfg.url
	var relay *relayProc
	var dataDir, relayCfg string
	var relayArgs []string
	if cfg.relayBin != "" {
		work := cfg.workDir
		if work == "" {
			if work, err = os.MkdirTemp("", "pyrorelay-bench-"); err != nil {
				return nil, fmt.Errorf("work dir: %w", err)
			}
			if !cfg.keep {
				defer os.RemoveAll(work)
			}
		} else {
			work, err = os.MkdirTemp(work, "run-")
			if err != nil {
				return nil, fmt.Errorf("work dir: %w", err)
			}
		}
		if cfg.keep {
			res.WorkDir = work
		}
		dataDir = filepath.Join(work, "data")
		relayCfg = filepath.Join(work, "relay.yaml")
		if err := writeRelayConfig(relayCfg, cfg, sinks); err != nil {
			return nil, err
		}
		relayArgs = []string{"--config", relayCfg}
		if cfg.noGroupCommit {
			relayArgs = append(relayArgs, "--no-group-commit")
		}
		if cfg.fwdConc > 0 {
			relayArgs = append(relayArgs, "--forward-concurrency", strconv.Itoa(cfg.fwdConc))
		}
		relayArgs = append(relayArgs, cfg.relayFlags...)
		bin, args := cfg.relayBin, serveArgs(dataDir, relayArgs)
		if cfg.reference {
			if bin, err = os.Executable(); err != nil {
				return nil, fmt.Errorf("reference relay: %w", err)
			}
			args = []string{referenceCommand, "--listen", "127.0.0.1:0", "--write-buffer", strconv.Itoa(cfg.refWriteBuffer)}
			for _, s := range sinks {
				args = append(args, "--forward", s.URL())
			}
		}
		if cfg.external {
			relay, err = cfg.other.start(ctx, sinks, work)
		} else {
			relay, err = startRelay(ctx, bin, args, filepath.Join(work, "relay.log"), 60*time.Second)
		}
		if err != nil {
			return nil, err
		}
		defer func() {
			if relay != nil {
				_, _ = relay.stop(30 * time.Second)
			}
		}()
		target = relay.url
		res.StartReady = relay.Ready
		logf("%s: relay %s ready in %s (log %s)", res.Label, target, relay.Ready.Round(time.Millisecond), relay.logPath)
	}

	mc := &http.Client{Timeout: 10 * time.Second}
	// scrape reads the relay's metrics; another program's are what /proc
	// tells of it (see processMetrics).
	scrape := func(ctx context.Context) (relayMetrics, error) {
		if cfg.external {
			return processMetrics(relay)
		}
		return scrapeMetrics(ctx, mc, target)
	}
	before, err := scrape(ctx)
	if err != nil {
		return nil, err
	}

	// While the load runs: sample the queues (do the forwarders keep up?)
	// and, in down-then-up with --down-for, bring the sinks back on time.
	var acks ackCounter
	var urlRSS int64 // sampled process_resident_memory_bytes, with --url
	var up *sinksUp
	loadCtx, stopSampling := context.WithCancel(ctx)
	var samplers sync.WaitGroup
	samplers.Add(1)
	go func() {
		defer samplers.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-loadCtx.Done():
				return
			case <-t.C:
			}
			if m, err := scrape(loadCtx); err == nil {
				for q, v := range m.queues("pyrorelay_queue_entries") {
					res.MaxQueued[q] = max(res.MaxQueued[q], v)
				}
				// A relay the tool did not start: its own report of its
				// resident memory, sampled, is all there is.
				if relay == nil {
					urlRSS = max(urlRSS, int64(m["process_resident_memory_bytes"]))
				}
			}
		}
	}()
	var mark *minuteMark
	outageOver := make(chan struct{})
	endOutage := sync.OnceFunc(func() { close(outageOver) })
	if cfg.mode == "down-then-up" && cfg.downFor > time.Minute {
		samplers.Go(func() { mark = markMinute(outageOver, sinks, time.Minute) })
	}
	if cfg.mode == "down-then-up" && cfg.downFor > 0 {
		samplers.Add(1)
		go func() {
			defer samplers.Done()
			select {
			case <-loadCtx.Done():
			case <-time.After(cfg.downFor):
				u, err := bringUp(loadCtx, mc, target, sinks, &acks, dataDir)
				if err == nil {
					up = u
				}
				endOutage()
			}
		}()
	}

	logf("%s: %d clients, %s %s bodies of %d bytes, mode %s", res.Label, cfg.clients, cfg.endpoint, cfg.body, bodyBytes, cfg.mode)
	delivered0 := deliveredCounts(sinks)
	var written0 int64 = -1
	if relay != nil && !cfg.reference {
		if w, err := relay.writtenBytes(); err == nil {
			written0 = w
		}
	}
	cpu0 := takeCPU()
	loadStart := time.Now()
	res.Load = runLoad(ctx, loadSpec{
		url: target, endpoint: cfg.endpoint, clients: cfg.clients, duration: cfg.duration, count: cfg.count,
		timeout: cfg.timeout, rate: cfg.rate, payload: p,
	}, &acks)
	loadEnd := time.Now()
	cpu1 := takeCPU()
	stopSampling()
	endOutage() // a minute mark not taken by the end of the load is not taken
	samplers.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	lat := res.Load.latencies
	res.AckedPerS = float64(res.Load.Acked) / res.Load.Elapsed.Seconds()
	res.P50, res.P99, res.P999 = ms(percentile(lat, 0.50)), ms(percentile(lat, 0.99)), ms(percentile(lat, 0.999))
	if len(lat) > 0 {
		res.MaxLatency = ms(lat[len(lat)-1])
	}
	after, err := scrape(ctx)
	if err != nil {
		return nil, err
	}
	res.Commits = after["pyrorelay_store_commits_total"] - before["pyrorelay_store_commits_total"]
	res.Writes = after["pyrorelay_store_writes_total"] - before["pyrorelay_store_writes_total"]
	if res.Load.Acked > 0 {
		res.CommitsPerReq = res.Commits / float64(res.Load.Acked)
	}
	if res.Commits > 0 {
		res.WritesPerCommit = res.Writes / res.Commits
	}
	res.CommitMs = meanMs(before, after, "pyrorelay_store_commit_duration_seconds")
	res.Delivered = loadDelivery(sinks, delivered0, res.Load.Acked, res.Load.Elapsed, after.queues("pyrorelay_queue_entries"))
	res.CPU = measureCPU(cpu0, cpu1, after["process_cpu_seconds_total"]-before["process_cpu_seconds_total"], res.Load.Acked)
	logf("%s: %d acked in %s (%.0f/s), p99 %.1f ms; draining", res.Label, res.Load.Acked, res.Load.Elapsed.Round(time.Millisecond), res.AckedPerS, res.P99)

	if cfg.mode == "down-then-up" && up == nil {
		if cfg.downFor > 0 {
			logf("the load ended before --down-for: bringing the sinks back now")
		}
		res.Backlog = &backlog{}
		if cfg.restart {
			m := relay.RSS()
			res.RSS = &m
			if cfg.crash {
				relay.crash()
				res.Backlog.Crashed = true
			} else {
				shutdown, err := relay.stop(60 * time.Second)
				if err != nil {
					return nil, err
				}
				res.Backlog.ShutdownTime = shutdown
			}
			relay = nil
			if cfg.dropCaches {
				if err := dropPageCache(); err != nil {
					return nil, err
				}
				res.Backlog.CacheDropped = true
			}
			relay, err = startRelay(ctx, cfg.relayBin, serveArgs(dataDir, relayArgs), filepath.Join(filepath.Dir(dataDir), "relay-restarted.log"), 60*time.Second)
			if err != nil {
				return nil, err
			}
			target = relay.url
			res.Backlog.RestartReady = relay.Ready
			logf("restarted on the backlog: ready in %s", relay.Ready.Round(time.Millisecond))
		}
		if up, err = bringUp(ctx, mc, target, sinks, &acks, dataDir); err != nil {
			return nil, err
		}
	}

	// Drain: every queue of the relay empty.
	drainDeadline := time.Now().Add(cfg.drainTimeout)
	drainStart, err := scrape(ctx)
	if err != nil {
		return nil, err
	}
	drainCPU0 := takeCPU()
	var drainEnd relayMetrics
	for {
		m, err := scrape(ctx)
		if err != nil {
			return nil, err
		}
		drainEnd = m
		if m.sum("pyrorelay_queue_entries") == 0 {
			res.Drained = true
			break
		}
		if time.Now().After(drainDeadline) || ctx.Err() != nil {
			logf("queues not empty after %s: %v", cfg.drainTimeout, m.queues("pyrorelay_queue_entries"))
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	drained := time.Now()
	drainCPU1 := takeCPU()
	res.DrainTime = drained.Sub(loadEnd)
	res.DeadLettered = drainEnd.sum("pyrorelay_dead_letter_entries")
	if written0 >= 0 && !cfg.restart {
		if w, err := relay.writtenBytes(); err == nil && res.Load.Acked > 0 {
			res.DiskWritten = w - written0
			res.WrittenPerByte = float64(res.DiskWritten) / float64(res.Load.Acked*bodyBytes)
		}
	}
	if up != nil && cfg.downFor > 0 {
		res.Outage = outage(mark, up, sinks)
	}
	if up != nil {
		b := res.Backlog
		if b == nil {
			b = &backlog{}
			res.Backlog = b
		}
		b.Down, b.Entries, b.Bytes, b.FileBytes = up.down, up.entries, up.bytes, up.fileBytes
		// What built the backlog: acks before the sinks came back.
		buildEnd := up.at
		if buildEnd.After(loadEnd) {
			buildEnd = loadEnd
		}
		buildTime := buildEnd.Sub(loadStart)
		b.IngestPerS = float64(up.ackedBefore) / buildTime.Seconds()
		// Delivered per destination from the sinks' return to empty
		// queues: the backlog, plus what was acked meanwhile.
		b.Drained = up.entries + float64(acks.n.Load()-up.ackedBefore)
		b.DrainTime = drained.Sub(up.at)
		if b.DrainTime > 0 {
			b.DrainPerS = b.Drained / b.DrainTime.Seconds()
		}
		if b.IngestPerS > 0 {
			b.DrainVsIngest = b.DrainPerS / b.IngestPerS
		}
		b.DrainCommitMs = meanMs(drainStart, drainEnd, "pyrorelay_store_commit_duration_seconds")
		b.DrainCPU = measureCPU(drainCPU0, drainCPU1, drainEnd["process_cpu_seconds_total"]-drainStart["process_cpu_seconds_total"], int(b.Drained))
	}

	if relay == nil && urlRSS > 0 {
		res.RSS = &rss{Peak: urlRSS, Sampled: true}
	}
	if relay != nil {
		m := relay.RSS()
		if cfg.restart {
			res.RSSAfterRestart = &m
		} else {
			res.RSS = &m
		}
	}
	if len(sinks) > 0 {
		d := checkDelivery(res.Load.ackedIDs, sinks)
		res.Delivery = &d
		for _, s := range sinks {
			res.Sink = append(res.Sink, sinkStats{Name: s.name, Requests: s.requests.Load(), Refused: s.refused.Load(), Bytes: s.bytes.Load()})
		}
	}
	return res, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// meanMs is the mean of a histogram between two scrapes, in milliseconds.
func meanMs(before, after relayMetrics, histogram string) float64 {
	n := after[histogram+"_count"] - before[histogram+"_count"]
	if n <= 0 {
		return 0
	}
	return 1000 * (after[histogram+"_sum"] - before[histogram+"_sum"]) / n
}
