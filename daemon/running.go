package daemon

// The part of a running relay that a config reload (SIGHUP) changes: its
// receivers and its forwarders, by name, over the one store. A reload
// starts what was added, stops what was removed and restarts what changed;
// everything else keeps running untouched, so the clients of a receiver
// that did not change see no interruption.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyrorelay/pyrorelay/httpserver"
	"github.com/pyrorelay/pyrorelay/relay"
	"github.com/pyrorelay/pyrorelay/route"
	"github.com/pyrorelay/pyrorelay/store"
)

// runningRelay holds the running receivers and forwarders by name.
type runningRelay struct {
	st      *store.Store
	reg     *prometheus.Registry
	log     *slog.Logger
	metrics *relay.Metrics
	dropped *prometheus.CounterVec
	acc     *access
	ready   *atomic.Bool
	// errs carries a receiver's Serve failing by itself (not by a
	// shutdown): the relay stops, as it did with one listener.
	errs chan error

	// mu serialises reloads and the final shutdown.
	mu         sync.Mutex
	cfg        Config // the configuration in force
	receivers  map[string]*receiverRun
	forwarders map[string]*forwarderRun
	orphans    prometheus.Collector
	// feedsNow is what the admin API shows: destination -> receivers.
	feedsNow atomic.Pointer[map[string][]string]
	// dests is every configured destination, for the self-profiler.
	dests atomic.Pointer[[]string]
	// reloadAPI serves POST /-/reload on every receiver; set before the
	// receivers start.
	reloadAPI func(context.Context) error
	// exportAPI serves GET /api/v1/export on every receiver.
	exportAPI http.Handler
	// budget bounds the request bytes all receivers hold in memory.
	budget *httpserver.Budget
	// version is shown in the "serving" lines.
	version string
}

// receiverRun is one serving receiver.
type receiverRun struct {
	spec    Receiver
	router  *swapRouter
	srv     *httpserver.Server
	addr    string        // the address ln listens on
	done    chan struct{} // closed when Serve has returned
	metrics *trackingRegisterer
}

// forwarderRun is one running forwarder.
type forwarderRun struct {
	dest   relay.Destination
	cancel context.CancelFunc
	done   chan struct{} // closed when Run has returned (last acks durable)
}

// swapRouter is a receiver's route table, replaced in place when a reload
// changes only forward_to or routes, so that the receiver keeps its
// listener and its connections.
type swapRouter struct {
	table atomic.Pointer[route.Table]
}

// RouteBy implements httpserver.Router.
func (s *swapRouter) RouteBy(labels func() map[string]string, tenant string) []string {
	return s.table.Load().RouteBy(labels, tenant)
}

// trackingRegisterer registers with reg and remembers what, so that a
// stopped receiver's metrics can be unregistered and a receiver of the same
// name started again.
type trackingRegisterer struct {
	reg prometheus.Registerer
	mu  sync.Mutex
	cs  []prometheus.Collector
}

// Register implements prometheus.Registerer.
func (t *trackingRegisterer) Register(c prometheus.Collector) error {
	if err := t.reg.Register(c); err != nil {
		return err
	}
	t.mu.Lock()
	t.cs = append(t.cs, c)
	t.mu.Unlock()
	return nil
}

// MustRegister implements prometheus.Registerer.
func (t *trackingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := t.Register(c); err != nil {
			panic(err)
		}
	}
}

// Unregister implements prometheus.Registerer.
func (t *trackingRegisterer) Unregister(c prometheus.Collector) bool { return t.reg.Unregister(c) }

func (t *trackingRegisterer) unregisterAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.cs {
		t.reg.Unregister(c)
	}
	t.cs = nil
}

// newRunningRelay returns a runningRelay for cfg with nothing running yet.
func newRunningRelay(cfg Config, st *store.Store, reg *prometheus.Registry, log *slog.Logger, metrics *relay.Metrics,
	dropped *prometheus.CounterVec, acc *access, ready *atomic.Bool) *runningRelay {
	return &runningRelay{
		cfg: cfg, st: st, reg: reg, log: log, metrics: metrics, dropped: dropped, acc: acc, ready: ready,
		errs:       make(chan error, 1),
		receivers:  map[string]*receiverRun{},
		forwarders: map[string]*forwarderRun{},
		budget:     newRequestBudget(cfg.RequestLimits, reg),
	}
}

// startForwarders builds and starts a forwarder per destination; nothing
// is started when one cannot be built.
func (rt *runningRelay) startForwarders() error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	fs := make([]*relay.Forwarder, 0, len(rt.cfg.Destinations))
	for _, d := range rt.cfg.Destinations {
		f, err := relay.NewForwarder(d, rt.st, rt.metrics, rt.log)
		if err != nil {
			return err
		}
		fs = append(fs, f)
	}
	for i, f := range fs {
		rt.runForwarder(rt.cfg.Destinations[i], f)
	}
	rt.publish(rt.cfg)
	return nil
}

func (rt *runningRelay) runForwarder(d relay.Destination, f *relay.Forwarder) {
	// Every series at zero from the start: increase() and alerts see
	// the first event, dashboards show 0 instead of no data.
	rt.metrics.InitDestination(d.Name)
	rt.dropped.WithLabelValues(d.Name)
	ctx, cancel := context.WithCancel(context.Background())
	fr := &forwarderRun{dest: d, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(fr.done)
		f.Run(ctx)
	}()
	rt.forwarders[d.Name] = fr
}

// stop ends the forwarder after its attempts in flight (bounded by the
// destination's timeout) and the acks of those that succeeded.
func (fr *forwarderRun) stop() {
	fr.cancel()
	<-fr.done
}

// publish makes cfg's destinations and feeds visible to the admin API, the
// orphan metric and the self-profiler.
func (rt *runningRelay) publish(cfg Config) {
	names := cfg.DestinationNames()
	rt.dests.Store(&names)
	f := feeds(cfg.receivers)
	rt.feedsNow.Store(&f)
	if rt.orphans != nil {
		rt.reg.Unregister(rt.orphans)
	}
	rt.orphans = newOrphanCollector(rt.st, names)
	rt.reg.MustRegister(rt.orphans)
}

func (rt *runningRelay) feeds() map[string][]string { return *rt.feedsNow.Load() }

// Put stores e for every configured destination, whatever queues says: the
// self-profiler's view of the store, which follows reloads.
func (rt *runningRelay) Put(ctx context.Context, e *store.Entry, _ []string) error {
	return rt.st.Put(ctx, e, *rt.dests.Load())
}

// listenAll binds a listener per receiver; on an error it closes those it
// bound and names the receiver.
func listenAll(rs []Receiver) (map[string]net.Listener, error) {
	lns := map[string]net.Listener{}
	for _, r := range rs {
		ln, err := net.Listen("tcp", r.Listen)
		if err != nil {
			closeAll(lns)
			return nil, fmt.Errorf("receiver %q: listen: %w", r.Name, err)
		}
		lns[r.Name] = ln
	}
	return lns, nil
}

func closeAll(lns map[string]net.Listener) {
	for _, ln := range lns {
		_ = ln.Close()
	}
}

// startReceivers binds every receiver of rt.cfg and serves on each: none
// serves unless all could bind.
func (rt *runningRelay) startReceivers() error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	lns, err := listenAll(rt.cfg.receivers)
	if err != nil {
		return err
	}
	for _, r := range rt.cfg.receivers {
		rt.startReceiver(r, lns[r.Name])
	}
	return nil
}

// startReceiver serves spec on ln and logs the "serving" line (one per
// receiver, with its address and destinations).
func (rt *runningRelay) startReceiver(spec Receiver, ln net.Listener) {
	rr := &receiverRun{spec: spec, router: &swapRouter{}, addr: ln.Addr().String(), done: make(chan struct{}),
		metrics: &trackingRegisterer{reg: rt.reg}}
	rr.router.table.Store(spec.table)
	rr.srv = httpserver.New(rt.cfg.serverLimits(httpserver.Config{
		Name:              spec.Name,
		Router:            rr.router,
		MaxBodySize:       int64(spec.MaxBodySize),
		MaxConnections:    spec.MaxConnections,
		ReadTimeout:       spec.ReadTimeout,
		WriteTimeout:      spec.WriteTimeout,
		IdleTimeout:       spec.IdleTimeout,
		TenantPassthrough: rt.cfg.TenantPassthrough,
		Auth:              rt.acc.auth,
		ProtectMetrics:    rt.cfg.AuthProtectMetrics,
		TLS:               rt.acc.tlsConfig(),
	}), httpserver.Options{Store: rt.st, Logger: rt.log, Registry: rr.metrics, Gatherer: rt.reg,
		Ready: rt.ready.Load, Status: rt.st, Feeds: rt.feeds, Reload: rt.reloadAPI, Export: rt.exportAPI, Budget: rt.budget})
	go func() {
		defer close(rr.done)
		if err := rr.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			select {
			case rt.errs <- fmt.Errorf("receiver %q: serve: %w", spec.Name, err):
			default:
			}
		}
	}()
	rt.receivers[spec.Name] = rr
	rt.log.Info("serving", "receiver", spec.Name, "addr", ln.Addr().String(), "data_dir", rt.cfg.DataDir,
		"destinations", strings.Join(spec.table.Destinations(), ","), "routes", len(spec.Routes), "version", rt.version)
}

// stopReceiver stops accepting on rr, waits (up to timeout) for the
// requests in progress, and so for their commits, then drops its metrics.
func (rt *runningRelay) stopReceiver(rr *receiverRun, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := rr.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		rt.log.Warn("requests still in progress at the shutdown deadline", "receiver", rr.spec.Name, "err", err)
	}
	<-rr.done
	rr.metrics.unregisterAll()
}

// shutdown stops every receiver (at once, each finishing its requests in
// progress), then every forwarder.
func (rt *runningRelay) shutdown(timeout time.Duration) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var wg sync.WaitGroup
	for _, rr := range rt.receivers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rt.stopReceiver(rr, timeout)
		}()
	}
	wg.Wait()
	rt.receivers = map[string]*receiverRun{}
	rt.stopForwarders(slices.Collect(maps.Keys(rt.forwarders)))
}

// stopForwarders stops the named forwarders, at once.
func (rt *runningRelay) stopForwarders(names []string) {
	var wg sync.WaitGroup
	for _, n := range names {
		fr := rt.forwarders[n]
		delete(rt.forwarders, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fr.stop()
		}()
	}
	wg.Wait()
}

// addrs maps each serving receiver to its listening address.
func (rt *runningRelay) addrs() map[string]string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	out := make(map[string]string, len(rt.receivers))
	for n, rr := range rt.receivers {
		out[n] = rr.addr
	}
	return out
}
