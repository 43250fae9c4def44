package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// configReloader reloads the relay's configuration, one reload at a time,
// on SIGHUP and on POST /-/reload: the auth and TLS files, then the config
// file (receivers and destinations). It exports the outcome the way
// Prometheus does, so one alert covers a reload that did not take.
type configReloader struct {
	mu     sync.Mutex
	acc    *access
	rt     *runningRelay
	load   func() (Config, error) // nil: only the access files reload
	log    *slog.Logger
	ok     prometheus.Gauge
	okTime prometheus.Gauge
	closed bool // set by watch's stop: the relay is shutting down
}

// errShuttingDown refuses a reload that arrives while the relay stops.
var errShuttingDown = errors.New("the relay is shutting down")

func newConfigReloader(acc *access, rt *runningRelay, load func() (Config, error), log *slog.Logger, reg prometheus.Registerer) *configReloader {
	r := &configReloader{acc: acc, rt: rt, load: load, log: log,
		ok: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pyrorelay_config_last_reload_successful",
			Help: "Whether the last configuration reload (SIGHUP or POST /-/reload) succeeded; 1 before the first.",
		}),
		okTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pyrorelay_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful configuration reload, or of the start.",
		}),
	}
	reg.MustRegister(r.ok, r.okTime)
	r.ok.Set(1)
	r.okTime.SetToCurrentTime()
	return r
}

// Reload re-reads everything and applies what loads; what fails keeps the
// version in force and is returned.
func (r *configReloader) Reload(ctx context.Context, trigger string) error {
	return r.reload(ctx, trigger, r.load)
}

// reload is Reload with the configuration read by load (nil: only the
// access files reload).
func (r *configReloader) reload(ctx context.Context, trigger string, load func() (Config, error)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errShuttingDown
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r.log.Info("reload: reading the configuration again", "trigger", trigger)
	errs := []error{r.acc.reload()}
	if load != nil {
		cfg, err := load()
		if err != nil {
			r.log.Error("reload: the configuration does not load: keeping the one in force", "err", err)
			errs = append(errs, fmt.Errorf("the configuration does not load: %w", err))
		} else {
			errs = append(errs, r.rt.reload(cfg))
		}
	}
	err := errors.Join(errs...)
	if err != nil {
		r.ok.Set(0)
		return err
	}
	r.ok.Set(1)
	r.okTime.Set(float64(time.Now().UnixNano()) / 1e9)
	return nil
}

// watch reloads on SIGHUP until ctx ends or stop is called; stop waits for
// a reload in progress, and no reload starts after it. SIGHUP is caught from here on even when there is
// nothing to reload, because its default action would kill the relay.
func (r *configReloader) watch(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_ = r.Reload(ctx, "SIGHUP")
			}
		}
	}()
	return func() {
		cancel()
		<-done
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
	}
}
