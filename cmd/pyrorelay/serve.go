package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"github.com/pyrorelay/pyrorelay/adminapi"
	"github.com/pyrorelay/pyrorelay/buildinfo"
	"github.com/pyrorelay/pyrorelay/daemon"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "accept profiles, store them durably, forward them to every destination",
		Description: `Examples:
   pyrorelay serve
   pyrorelay serve --data-dir /var/lib/pyrorelay \
     --forward-to staging=http://pyroscope-staging:4040 \
     --forward-to prod=https://profiles.example.com
   pyrorelay serve --config pyrorelay.yaml

With no destination, serve runs store-only: every push is kept on disk.`,
		Flags:  serveFlags(),
		Action: runServe,
	}
}

func runServe(c *cli.Context) error {
	cfg, err := configFromFlags(c)
	if err != nil {
		return err
	}
	log := cfg.NewLogger(c.App.ErrWriter)
	setGCDefault()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		// After the first signal, a second one exits at once. Everything
		// acknowledged is already on disk, so this loses nothing.
		<-ctx.Done()
		stop()
		again := make(chan os.Signal, 1)
		signal.Notify(again, syscall.SIGTERM, syscall.SIGINT)
		<-again
		log.Warn("second signal: exiting now")
		os.Exit(1)
	}()
	reg := prometheus.NewRegistry()
	buildinfo.Register(reg, buildinfo.Read(version, revision))
	// A reload reads the config file again, and the flags and environment
	// still override it.
	load := func() (daemon.Config, error) { return configFromFlags(c) }
	d, err := daemon.New(cfg, daemon.Options{Logger: log, Registry: reg, Version: version, Load: load, Export: adminapi.ExportHandler})
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

// defaultGOGC is the garbage collector's target for `serve` when the
// environment sets no GOGC. Every request allocates its body, and bbolt
// allocates the pages it writes: with the Go default of 100 the relay
// spends a large share of its CPU allocating and collecting, for a heap
// only a little smaller (BENCHMARKS.md has the figures). GOMEMLIMIT, if
// set, still caps the heap.
const defaultGOGC = 200

// setGCDefault applies defaultGOGC unless GOGC is set, as Prometheus does
// with its own default.
func setGCDefault() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGOGC)
	}
}
