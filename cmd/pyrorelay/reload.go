package main

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
	"reflect"
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
}

// receiverRun is one serving receiver.
type receiverRun struct {
	spec    Receiver
	router  *swapRouter
	srv     *httpserver.Server
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

// destinationNames lists cfg's destinations in config order.
func destinationNames(cfg Config) []string {
	names := make([]string, 0, len(cfg.Destinations))
	for _, d := range cfg.Destinations {
		names = append(names, d.Name)
	}
	return names
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
	names := destinationNames(cfg)
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
	rr := &receiverRun{spec: spec, router: &swapRouter{}, done: make(chan struct{}),
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
		"destinations", strings.Join(spec.table.Destinations(), ","), "routes", len(spec.Routes), "version", version)
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

// reload moves the relay from the configuration in force to next:
// destinations added get forwarders, removed ones have them stopped (their
// queues stay, as orphans), changed ones are restarted; receivers added
// are started, removed ones stopped gracefully, those with a new address or
// new limits restarted, those with new forward_to or routes re-routed in
// place. Anything that fails before the switch (a forwarder that cannot be
// built, an address that cannot be bound) keeps the old configuration and
// is returned; so is a receiver that could not be restarted after it.
func (rt *runningRelay) reload(next Config) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	old := rt.cfg
	if fields := restartOnlyChanges(old, next); len(fields) > 0 {
		rt.log.Warn("reload: these settings take effect only at a restart: keeping the running values", "settings", strings.Join(fields, ","))
		next = keepStatic(old, next)
	}

	// Destinations.
	oldDests := map[string]relay.Destination{}
	for _, d := range old.Destinations {
		oldDests[d.Name] = d
	}
	newFwd := map[string]*relay.Forwarder{}
	var addedDests, changedDests, removedDests []string
	for _, d := range next.Destinations {
		od, had := oldDests[d.Name]
		if had && reflect.DeepEqual(od, d) {
			continue
		}
		f, err := relay.NewForwarder(d, rt.st, rt.metrics, rt.log)
		if err != nil {
			rt.log.Error("reload: new configuration not applied: keeping the one in force", "err", err)
			return fmt.Errorf("new configuration not applied: %w", err)
		}
		newFwd[d.Name] = f
		if had {
			changedDests = append(changedDests, d.Name)
		} else {
			addedDests = append(addedDests, d.Name)
		}
	}
	nextDests := map[string]bool{}
	for _, d := range next.Destinations {
		nextDests[d.Name] = true
	}
	for _, d := range old.Destinations {
		if !nextDests[d.Name] {
			removedDests = append(removedDests, d.Name)
		}
	}

	// Receivers: bind the new addresses before anything changes, so
	// that a busy port leaves the old configuration whole.
	var added, restarted, rerouted, removed []string
	var bind []Receiver
	nextRecv := map[string]Receiver{}
	for _, r := range next.receivers {
		nextRecv[r.Name] = r
		rr, had := rt.receivers[r.Name]
		switch {
		case !had:
			added = append(added, r.Name)
			bind = append(bind, r)
		case !rr.spec.sameListener(r):
			restarted = append(restarted, r.Name)
			// A new address can be bound while the old one serves.
			if rr.spec.Listen != r.Listen {
				bind = append(bind, r)
			}
		case !rr.spec.sameRouting(r):
			rerouted = append(rerouted, r.Name)
		}
	}
	for name := range rt.receivers {
		if _, ok := nextRecv[name]; !ok {
			removed = append(removed, name)
		}
	}
	slices.Sort(removed)
	// An address a stopping receiver holds (a receiver renamed, or two
	// that swap ports) is free only once it stopped: bound after.
	freed := map[string]bool{}
	for _, n := range append(slices.Clone(removed), restarted...) {
		freed[rt.receivers[n].spec.Listen] = true
	}
	bind = slices.DeleteFunc(bind, func(r Receiver) bool {
		_, port, _ := net.SplitHostPort(r.Listen)
		return freed[r.Listen] && port != "0"
	})
	lns, err := listenAll(bind)
	if err != nil {
		rt.log.Error("reload: new configuration not applied: keeping the one in force", "err", err)
		return fmt.Errorf("new configuration not applied: %w", err)
	}

	// Switch. Destinations first, so that every queue a receiver may
	// route to has its forwarder; removed destinations last, once no
	// receiver routes to them.
	for _, n := range addedDests {
		rt.runForwarder(destByName(next, n), newFwd[n])
	}
	for _, n := range changedDests {
		rt.stopForwarders([]string{n})
		rt.runForwarder(destByName(next, n), newFwd[n])
	}
	rt.cfg = next
	for _, n := range rerouted {
		rr := rt.receivers[n]
		rr.router.table.Store(nextRecv[n].table)
		rr.spec = nextRecv[n]
	}
	var wg sync.WaitGroup
	for _, n := range append(slices.Clone(removed), restarted...) {
		rr := rt.receivers[n]
		delete(rt.receivers, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rt.stopReceiver(rr, next.ShutdownTimeout)
		}()
	}
	wg.Wait()
	for _, n := range removed {
		rt.log.Info("receiver stopped", "receiver", n)
	}
	var notRestarted []error
	for _, n := range append(slices.Clone(added), restarted...) {
		r := nextRecv[n]
		ln := lns[n]
		if ln == nil {
			// An address a stopped receiver held, free only now.
			if ln, err = net.Listen("tcp", r.Listen); err != nil {
				rt.log.Error("reload: receiver not restarted: its address cannot be bound; fix it and reload", "receiver", n, "err", err)
				notRestarted = append(notRestarted, fmt.Errorf("receiver %q not restarted: %w", n, err))
				continue
			}
		}
		rt.startReceiver(r, ln)
	}
	if len(removedDests) > 0 {
		rt.stopForwarders(removedDests)
		stats, _ := rt.st.Stats()
		for _, n := range removedDests {
			rt.log.Warn("destination removed: its forwarder is stopped, its queue is kept as an orphan", "destination", n,
				"entries", stats[n].Entries, "dead_letters", stats[n].DeadEntries)
		}
	}
	rt.publish(next)
	// Only what changed, so the line says at a glance what a reload did.
	var attrs []any
	for _, c := range []struct {
		key   string
		names []string
	}{
		{"receivers_added", added}, {"receivers_removed", removed},
		{"receivers_restarted", restarted}, {"receivers_rerouted", rerouted},
		{"destinations_added", addedDests}, {"destinations_removed", removedDests},
		{"destinations_changed", changedDests},
	} {
		if len(c.names) > 0 {
			attrs = append(attrs, c.key, strings.Join(c.names, ","))
		}
	}
	if len(attrs) == 0 {
		rt.log.Info("reload: configuration reloaded: no receiver or destination changed")
	} else {
		rt.log.Info("reload: configuration reloaded", attrs...)
	}
	return errors.Join(notRestarted...)
}

func destByName(cfg Config, name string) relay.Destination {
	for _, d := range cfg.Destinations {
		if d.Name == name {
			return d
		}
	}
	return relay.Destination{}
}

// reloadable are the Config fields a reload applies: the receivers and the
// destinations, and the top-level settings that only feed their defaults.
var reloadable = map[string]bool{
	"Receivers": true, "receivers": true, "Destinations": true,
	"Listen": true, "MaxBodySize": true, "MaxConnections": true,
	"ReadTimeout": true, "WriteTimeout": true, "IdleTimeout": true,
	"ForwardConcurrency": true, "ForwardMaxConcurrency": true, "MaxAttempts": true, "MaxAge": true,
	"ShutdownTimeout": true,
}

// restartOnlyChanges lists, by YAML key, the settings that differ between
// old and next and that a reload cannot apply (the store, logging, auth
// and TLS files, ...).
func restartOnlyChanges(old, next Config) []string {
	var out []string
	ov, nv := reflect.ValueOf(old), reflect.ValueOf(next)
	t := ov.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if reloadable[f.Name] || !f.IsExported() {
			continue
		}
		if !reflect.DeepEqual(ov.Field(i).Interface(), nv.Field(i).Interface()) {
			key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if key == "" || key == "-" {
				key = f.Name
			}
			out = append(out, key)
		}
	}
	return out
}

// keepStatic returns next with every setting a reload cannot apply taken
// from old.
func keepStatic(old, next Config) Config {
	ov, nv := reflect.ValueOf(old), reflect.ValueOf(&next).Elem()
	t := ov.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if reloadable[f.Name] || !f.IsExported() {
			continue
		}
		nv.Field(i).Set(ov.Field(i))
	}
	return next
}
